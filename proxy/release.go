package proxy

import (
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/certplane/certplane/xds/client"
)

// releaseSecrets is the view a committed state keeps: each applied Secret
// without its CRL (client.ReleaseSecret), known by its digest. The CRL
// lives on only as the secret's index; keeping the view as received would
// hold the Secret's PEM (46 MB for 1,000,000 serials) until the next
// update. A Secret that kept a previous version (problems) stays whole,
// so that the next build reports its own error again. res is not mutated:
// the xDS client handed it out.
func releaseSecrets(res client.Resources, problems map[string]string) client.Resources {
	if len(res.Secrets) == 0 {
		return res
	}
	secrets := make(map[string]*tlsv3.Secret, len(res.Secrets))
	digests := make(map[string]client.Digest, len(res.Secrets))
	released := make(map[string]bool, len(res.Secrets))
	for name, s := range res.Secrets {
		secrets[name] = s
		d, ok := res.SecretDigests[name]
		if !ok {
			d = client.SecretDigest(s)
		}
		digests[name] = d
		if res.ReleasedSecrets[name] {
			released[name] = true
			continue
		}
		if _, failed := problems["secret/"+name]; failed {
			continue
		}
		if rs := client.ReleaseSecret(s); rs != s {
			secrets[name], released[name] = rs, true
		}
	}
	res.Secrets, res.SecretDigests, res.ReleasedSecrets = secrets, digests, released
	return res
}
