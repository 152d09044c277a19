package config

// CacheRead reads path as the loader does and looks it up in c.
func CacheRead(c *ParseCache, path string) error {
	b, info, err := readFile(path, 1<<20)
	if err != nil {
		return err
	}
	lookup(c, path, b, info, func() int { return len(b) })
	return nil
}

// CacheSettled reports whether the next load would take path's cached
// value without reading it.
func CacheSettled(c *ParseCache, path string) (bool, error) {
	info, err := statFollow(path)
	if err != nil {
		return false, err
	}
	_, ok := settled[int](c, path, info)
	return ok, nil
}
