// Package xds serves certplane's model to Envoy (and to certplane's own
// proxy) over the aggregated discovery service.
//
// The Publisher turns each config.Model into one go-control-plane snapshot:
// per-listener units from package envoy, merged with the last good unit of
// every listener whose inputs are now invalid, validated as a whole, and
// versioned per resource type by content hash so that a rotated certificate
// or a new CRL re-sends Secrets and nothing else. Each Update leaves one
// immutable Served value (versions, per-listener provenance, summaries of
// what is served) from which status, expiry and metrics are computed. The
// Server records which nodes are connected and what they ACKed or NACKed,
// and keeps a NACK from turning into a resend loop.
//
// The loop that watches the directories, loads them and publishes is the
// controlplane package's; xds never reads files or watches them. The ADS
// client used by the proxy lives in xds/client.
package xds
