package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certplane/certplane/proxy/mtls"
	"github.com/certplane/certplane/proxy/ocspcheck"
)

// ocspState is the proxy's OCSP checking of client certificates
// (client_auth.ocsp, carried in the filter chain's metadata: Envoy cannot
// do it). The lookup runs in VerifyConnection, after the chain, CRLs, SANs
// and pins passed, bounded by the policy's timeout; answers are cached
// until their nextUpdate.
type ocspState struct {
	checker *ocspcheck.Checker
	checks  *prometheus.CounterVec
	log     *slog.Logger
}

func newOCSPState(reg prometheus.Registerer, now func() time.Time, log *slog.Logger) *ocspState {
	s := &ocspState{
		log:     log,
		checker: ocspcheck.NewChecker(now),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certplane_proxy_ocsp_checks_total",
			Help: "OCSP lookups of client certificates by listener, result (good, ocsp_revoked, ocsp_unknown, ocsp_unavailable) and verdict (admitted, refused).",
		}, []string{"listener", "result", "verdict"}),
	}
	reg.MustRegister(s.checks)
	return s
}

// resultReasons maps a lookup's result to the handshake failure reason.
var resultReasons = map[ocspcheck.Result]mtls.Reason{
	ocspcheck.Revoked:     mtls.ReasonOCSPRevoked,
	ocspcheck.Unknown:     mtls.ReasonOCSPUnknown,
	ocspcheck.Unavailable: mtls.ReasonOCSPUnavailable,
}

// check asks about the client certificate of cs. revoked always refuses;
// unknown and unavailable refuse in require mode and are admitted, logged
// and counted, in best_effort mode.
func (s *ocspState) check(listener string, p *ocspcheck.Policy, v *mtls.Verifier, cs tls.ConnectionState) *mtls.Failure {
	if len(cs.PeerCertificates) == 0 {
		return nil // optional mode without a certificate: nothing to ask
	}
	leaf := cs.PeerCertificates[0]
	issuer := v.IssuerOf(leaf, cs.PeerCertificates[1:])
	var res ocspcheck.Result
	var err error
	if issuer == nil {
		res, err = ocspcheck.Unavailable, errors.New("the issuer of the client certificate is not known: no OCSP request can name it")
	} else {
		res, err = s.checker.Check(context.Background(), p, leaf, issuer)
	}
	if res == ocspcheck.Good {
		s.checks.WithLabelValues(listener, string(res), "admitted").Inc()
		return nil
	}
	if res != ocspcheck.Revoked && p.Mode == ocspcheck.BestEffort {
		s.checks.WithLabelValues(listener, string(res), "admitted").Inc()
		s.log.Warn("OCSP: client admitted without a good answer (best_effort)",
			"listener", listener, "reason", string(res), "peer_subject", leaf.Subject.String(), "err", err)
		return nil
	}
	s.checks.WithLabelValues(listener, string(res), "refused").Inc()
	return mtls.NewFailure(resultReasons[res], err)
}
