package sar

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values of kube_iam_authz_sar_requests_total.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
	resultError   = "error"
)

// Metrics are the SubjectAccessReview series. Label values come from a
// closed set, resolved up front.
type Metrics struct {
	requests map[string]prometheus.Counter
	latency  prometheus.Observer
	hits     prometheus.Counter
	misses   prometheus.Counter
	shared   prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg; a nil reg
// registers nothing.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kube_iam_authz_sar_requests_total",
		Help: "SubjectAccessReviews sent to the API server by result: allowed, denied, error (unreachable, timeout, refused; the Check answers 503).",
	}, []string{"result"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kube_iam_authz_sar_request_duration_seconds",
		Help:    "Latency of one SubjectAccessReview call to the API server, errors included.",
		Buckets: prometheus.ExponentialBuckets(0.5e-3, 2.5, 12),
	})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kube_iam_authz_sar_cache_requests_total",
		Help: "SubjectAccessReview cache lookups by result: hit (a cached allowed or denied answer), miss (a review was sent or joined), shared (a miss answered by another request's in-flight review).",
	}, []string{"result"})
	m := &Metrics{
		requests: map[string]prometheus.Counter{},
		latency:  latency,
		hits:     cache.WithLabelValues("hit"),
		misses:   cache.WithLabelValues("miss"),
		shared:   cache.WithLabelValues("shared"),
	}
	for _, r := range []string{resultAllowed, resultDenied, resultError} {
		m.requests[r] = requests.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{requests, latency, cache} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
