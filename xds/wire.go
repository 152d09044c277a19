package xds

import (
	"crypto/sha256"
	"fmt"
	"maps"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/certplane/certplane/internal/rope"
)

// wireResources maps the content hash of each served Secret holding a
// large bytes field to its lazyResource, across publishes, so a Secret
// served again, or rebuilt the same, keeps its stub (and so its version
// for delta clients, which go-control-plane hashes from the encoding).
type wireResources map[[sha256.Size]byte]*lazyResource

// wireSnapshot is snap as the snapshot cache holds it when the server's
// codec is wireCodec: the same versions and names, each large Secret as a
// lazyResource. snap itself, the one Served exposes, is not touched. w
// keeps the lazy resources of what snap serves, and no others.
func (w wireResources) snapshot(snap *cache.Snapshot, h *hasher) (*cache.Snapshot, error) {
	st := cache.GetResponseType(resource.SecretType)
	secrets := snap.Resources[st]
	out := *snap
	items := make(map[string]types.ResourceWithTTL, len(secrets.Items))
	live := make(map[[sha256.Size]byte]bool, len(secrets.Items))
	for name, it := range secrets.Items {
		sum, err := h.sum(it.Resource)
		if err != nil {
			return nil, err
		}
		live[sum] = true
		l, ok := w[sum]
		if l != nil && l.res != it.Resource {
			// Rebuilt the same: keep the stub, send from the bytes the
			// snapshot holds now so the old ones can go.
			enc, err := splice(it.Resource, lazyMinBytes)
			if err != nil {
				return nil, err
			}
			l.h.enc.Store(enc)
			l = &lazyResource{res: it.Resource, name: name, h: l.h}
			w[sum] = l
		}
		if !ok {
			if l, err = newLazy(it.Resource, name); err != nil {
				return nil, err
			}
			w[sum] = l // nil too: small, sent as it is
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

// materialized is snap with each Secret holding a rope's token (a large
// CRL bundle, see package rope) replaced by the Secret with its bytes:
// what a cache served by a stock codec must hold, which would send the
// token as it is, a Secret without its CRLs. snap is not touched.
func materialized(snap *cache.Snapshot) (*cache.Snapshot, error) {
	st := cache.GetResponseType(resource.SecretType)
	secrets := snap.Resources[st]
	var items map[string]types.ResourceWithTTL
	for name, it := range secrets.Items {
		if !rope.Has(it.Resource) {
			continue
		}
		if items == nil {
			items = maps.Clone(secrets.Items)
		}
		r, err := rope.Materialize(it.Resource)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		it.Resource = r
		items[name] = it
	}
	if items == nil {
		return snap, nil
	}
	out := *snap
	out.Resources[st] = cache.Resources{Version: secrets.Version, Items: items}
	out.VersionMap = nil
	return &out, nil
}
