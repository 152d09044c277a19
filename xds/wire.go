package xds

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// wireResources maps each served Secret holding a large bytes field to
// its lazyResource, across publishes, so a Secret served again keeps its
// stub (and its version for delta clients).
type wireResources map[types.Resource]*lazyResource

// wireSnapshot is snap as the snapshot cache holds it when the server's
// codec is wireCodec: the same versions and names, each large Secret as a
// lazyResource. snap itself, the one Served exposes, is not touched. w
// keeps the lazy resources of what snap serves, and no others.
func (w wireResources) snapshot(snap *cache.Snapshot) (*cache.Snapshot, error) {
	st := cache.GetResponseType(resource.SecretType)
	secrets := snap.Resources[st]
	out := *snap
	items := make(map[string]types.ResourceWithTTL, len(secrets.Items))
	live := make(map[types.Resource]bool, len(secrets.Items))
	for name, it := range secrets.Items {
		live[it.Resource] = true
		l, ok := w[it.Resource]
		if !ok {
			var err error
			if l, err = newLazy(it.Resource, name); err != nil {
				return nil, err
			}
			w[it.Resource] = l // nil too: small, sent as it is
		}
		if l != nil {
			it.Resource = l
		}
		items[name] = it
	}
	for r := range w {
		if !live[r] {
			delete(w, r)
		}
	}
	out.Resources[st] = cache.Resources{Version: secrets.Version, Items: items}
	out.VersionMap = nil
	return &out, nil
}
