// Package hardening_test measures what certplane promises operators who put
// it in front of payment traffic: a bad file never takes traffic down, a
// hostile client never gets in or starves the others, the xDS endpoint is
// never open by accident. Every test runs the real control plane
// (controlplane.Runner), the real fallback proxy fed by it over ADS, and the
// real `certplane` binary, on loopback.
//
// The figures these tests log (go test -v) are the ones docs/security.md
// quotes; docs/security.md gives the exact commands.
package hardening_test
