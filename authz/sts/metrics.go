package sts

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Result labels: a closed set.
const (
	resultOK              = "ok"
	resultUnauthenticated = "unauthenticated"
	resultThrottled       = "throttled"
	resultRateLimited     = "rate_limited"
	resultUnavailable     = "unavailable"
)

// Metrics of STS calls.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the STS metrics on reg:
//
//	kube_iam_authz_sts_requests_total{result,region}
//	kube_iam_authz_sts_request_duration_seconds{result}
//
// result is one of ok, unauthenticated, throttled, rate_limited (refused by
// our own limiter, nothing sent), unavailable; region is the token's
// RegionLabel, bounded by the parser's host allow-list.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_iam_authz_sts_requests_total",
			Help: "STS GetCallerIdentity calls by result and STS region.",
		}, []string{"result", "region"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kube_iam_authz_sts_request_duration_seconds",
			Help:    "Duration of STS GetCallerIdentity calls that were sent, by result.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sts metrics: %w", err)
		}
	}
	for _, r := range []string{resultOK, resultUnauthenticated, resultThrottled, resultUnavailable} {
		m.duration.WithLabelValues(r)
	}
	return m, nil
}

func (m *Metrics) observe(result, region string, d time.Duration, sent bool) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(result, region).Inc()
	if sent {
		m.duration.WithLabelValues(result).Observe(d.Seconds())
	}
}
