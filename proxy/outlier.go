package proxy

import (
	"errors"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// outlierConfig is what the proxy honours of OutlierDetection, with Envoy's
// defaults for unset fields.
type outlierConfig struct {
	consecutive5xx     int
	consecutiveGateway int
	// enforceGateway is enforcing_consecutive_gateway_failure, which Envoy
	// defaults to 0%: gateway failures are counted but only the 5xx detector
	// ejects. Connect failures count as 503, so they reach that detector.
	enforceGateway   bool
	interval         time.Duration
	baseEjectionTime time.Duration
	maxEjectionTime  time.Duration
	maxEjectionPct   int
}

func buildOutlier(od *clusterv3.OutlierDetection) (*outlierConfig, error) {
	if od == nil {
		return nil, nil
	}
	// Envoy enables success-rate ejection unless enforcing_success_rate is 0;
	// the proxy implements only the consecutive-failure detectors.
	if od.GetEnforcingSuccessRate() == nil || od.GetEnforcingSuccessRate().GetValue() != 0 {
		return nil, errors.New("outlier_detection: success-rate ejection (enforcing_success_rate other than 0) is not implemented by certplane proxy")
	}
	c := &outlierConfig{
		consecutive5xx:     5,
		consecutiveGateway: 5,
		interval:           10 * time.Second,
		baseEjectionTime:   30 * time.Second,
		maxEjectionTime:    300 * time.Second,
		maxEjectionPct:     10,
	}
	if v := od.GetConsecutive_5Xx(); v != nil {
		c.consecutive5xx = int(v.GetValue())
	}
	if v := od.GetConsecutiveGatewayFailure(); v != nil {
		c.consecutiveGateway = int(v.GetValue())
	}
	if v := od.GetInterval(); v != nil {
		c.interval = v.AsDuration()
	}
	if v := od.GetBaseEjectionTime(); v != nil {
		c.baseEjectionTime = v.AsDuration()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		c.maxEjectionPct = int(v.GetValue())
	}
	return c, nil
}

// outcome is what one upstream attempt tells the outlier detector.
type outcome int

const (
	outcomeOK outcome = iota
	outcome5xx
	outcomeGateway // 502, 503, 504, or a connect failure (seen as 503)
)

func outcomeOf(status int) outcome {
	switch {
	case status == 502 || status == 503 || status == 504:
		return outcomeGateway
	case status >= 500:
		return outcome5xx
	}
	return outcomeOK
}

// report feeds one result to the detector and reports whether the host was
// ejected by it.
func (c *clusterState) report(h *host, o outcome, now time.Time) bool {
	od := c.outlier
	if od == nil {
		return false
	}
	h.mu.Lock()
	switch o {
	case outcomeOK:
		h.cons5xx, h.consGateway = 0, 0
		h.mu.Unlock()
		return false
	case outcome5xx:
		h.cons5xx++
		h.consGateway = 0
	case outcomeGateway:
		h.cons5xx++
		h.consGateway++
	}
	trip := (od.consecutive5xx > 0 && h.cons5xx >= od.consecutive5xx) ||
		(od.enforceGateway && od.consecutiveGateway > 0 && h.consGateway >= od.consecutiveGateway)
	already := now.Before(h.ejectedUntil)
	h.mu.Unlock()
	if !trip || already || !c.mayEject(now) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// Envoy lowers the multiplier while a host stays healthy; approximate
	// that by restarting it when the host was back for longer than its
	// last ejection.
	if !h.ejectedUntil.IsZero() && now.Sub(h.ejectedUntil) > od.baseEjectionTime*time.Duration(h.ejections) {
		h.ejections = 0
	}
	h.ejections++
	d := od.baseEjectionTime * time.Duration(h.ejections)
	if d > od.maxEjectionTime {
		d = od.maxEjectionTime
	}
	h.ejectedUntil = now.Add(d)
	h.cons5xx, h.consGateway = 0, 0
	return true
}

// mayEject applies max_ejection_percent; at least one host may always be
// ejected, as in current Envoy.
func (c *clusterState) mayEject(now time.Time) bool {
	ejected := 0
	for _, h := range c.hosts {
		if h.ejected(now) {
			ejected++
		}
	}
	if ejected == 0 {
		return true
	}
	return (ejected+1)*100 <= c.outlier.maxEjectionPct*len(c.hosts)
}

// unejectOnHealthCheck ends an outlier ejection: a successful active health
// check un-ejects the host, as in Envoy.
func (h *host) unejectOnHealthCheck(now time.Time) {
	h.mu.Lock()
	if now.Before(h.ejectedUntil) {
		h.ejectedUntil = now
	}
	h.mu.Unlock()
}
