package check

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
)

// Result label values.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
)

// metrics of the Check service. Counters for every (result, reason) pair
// are created up front: label values come from the status table only, and
// the hot path does no label hashing.
type metrics struct {
	checks  map[*outcome.Outcome]prometheus.Counter
	allowed prometheus.Observer
	denied  prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_iam_authz",
		Name:      "checks_total",
		Help:      "ext_authz Check decisions by result (allowed, denied) and reason (ok, impersonated, passthrough, or the status table's reason).",
	}, []string{"result", "reason"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kube_iam_authz",
		Name:      "check_duration_seconds",
		Help:      "Time to answer a Check, by result. Cache hits land in the lowest buckets; STS calls in the millisecond ones.",
		// 25µs .. ~3.3s: a cache hit is microseconds, an STS round trip
		// tens of milliseconds, and Envoy's ext_authz timeout caps the rest.
		Buckets: prometheus.ExponentialBuckets(25e-6, 2.5, 14),
	}, []string{"result"})
	for _, c := range []prometheus.Collector{checks, latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m := &metrics{
		checks:  map[*outcome.Outcome]prometheus.Counter{},
		allowed: latency.WithLabelValues(resultAllowed),
		denied:  latency.WithLabelValues(resultDenied),
	}
	for _, o := range outcome.Allowed() {
		m.checks[o] = checks.WithLabelValues(resultAllowed, o.Label())
	}
	for _, o := range outcome.Denials() {
		m.checks[o] = checks.WithLabelValues(resultDenied, o.Label())
	}
	return m, nil
}
