package ec2dns

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Lookup results, the closed label set of kube_iam_authz_ec2dns_lookups_total.
const (
	resultHit         = "hit"
	resultNegativeHit = "negative_hit"
	resultFound       = "found"
	resultNotFound    = "not_found"
	resultError       = "error"
	resultShed        = "shed"
	resultInvalid     = "invalid"
)

// Call results, the closed label set of kube_iam_authz_ec2dns_calls_total.
const (
	callOK          = "ok"
	callError       = "error"
	callRateLimited = "rate_limited"
)

func callResult(err error) string {
	switch {
	case err == nil:
		return callOK
	case errors.Is(err, errRateLimited):
		return callRateLimited
	}
	return callError
}

// Metrics are the resolver's Prometheus metrics.
type Metrics struct {
	lookups  *prometheus.CounterVec
	calls    *prometheus.CounterVec
	batch    prometheus.Histogram
	latency  prometheus.Histogram
	cacheLen prometheus.Gauge
}

// NewMetrics registers the resolver metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("ec2dns: NewMetrics needs a prometheus.Registerer")
	}
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_iam_authz_ec2dns_lookups_total",
			Help: "{{EC2PrivateDNSName}} lookups by result: hit, negative_hit, found, not_found, error, shed, invalid.",
		}, []string{"result"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_iam_authz_ec2dns_calls_total",
			Help: "EC2 DescribeInstances calls by result: ok, error, rate_limited.",
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kube_iam_authz_ec2dns_batch_size",
			Help:    "Instance IDs per DescribeInstances call.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kube_iam_authz_ec2dns_call_duration_seconds",
			Help:    "DescribeInstances call latency, rate-limiter wait included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		cacheLen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kube_iam_authz_ec2dns_cache_entries",
			Help: "Instances in the private DNS name cache, not-found entries included.",
		}),
	}
	for _, c := range []prometheus.Collector{m.lookups, m.calls, m.batch, m.latency, m.cacheLen} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ec2dns: registering metrics: %w", err)
		}
	}
	for _, r := range []string{resultHit, resultNegativeHit, resultFound, resultNotFound, resultError, resultShed, resultInvalid} {
		m.lookups.WithLabelValues(r)
	}
	for _, r := range []string{callOK, callError, callRateLimited} {
		m.calls.WithLabelValues(r)
	}
	return m, nil
}

func (m *Metrics) lookup(result string) {
	if m != nil {
		m.lookups.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) call(result string, ids int, d time.Duration) {
	if m != nil {
		m.calls.WithLabelValues(result).Inc()
		m.batch.Observe(float64(ids))
		m.latency.Observe(d.Seconds())
	}
}

func (m *Metrics) cacheSize(n int) {
	if m != nil {
		m.cacheLen.Set(float64(n))
	}
}
