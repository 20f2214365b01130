package cache

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cache's Prometheus series. Label values come from a
// closed set.
type Metrics struct {
	hits         prometheus.Counter
	misses       prometheus.Counter
	negativeHits prometheus.Counter
	stale        prometheus.Counter
	evictions    prometheus.Counter
	entries      prometheus.Gauge
	shared       prometheus.Counter
}

// NewMetrics creates the cache metrics and registers them on reg. A nil reg
// registers nothing (useful in tests and tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kube_iam_authz_cache_requests_total",
		Help: "Verification cache lookups by result: hit (verified identity served), negative_hit (cached definitive rejection served), miss (upstream verifier consulted or joined), stale (a miss whose upstream failed transiently, answered with the identity verified earlier for the same unexpired token).",
	}, []string{"result"})
	evictions := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kube_iam_authz_cache_evictions_total",
		Help: "Live entries evicted from the verification cache because it was full (expired entries dropped are not counted).",
	})
	entries := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kube_iam_authz_cache_entries",
		Help: "Entries held by the verification cache, including expired ones not yet dropped.",
	})
	shared := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kube_iam_authz_cache_singleflight_shared_total",
		Help: "Cache misses answered by another request's in-flight upstream verification instead of a call of their own.",
	})
	m := &Metrics{
		// Resolving the children up front exports every label value from
		// the start (rate() sees no missing series) and keeps the lookup
		// path free of label hashing.
		hits:         requests.WithLabelValues("hit"),
		misses:       requests.WithLabelValues("miss"),
		negativeHits: requests.WithLabelValues("negative_hit"),
		stale:        requests.WithLabelValues("stale"),
		evictions:    evictions,
		entries:      entries,
		shared:       shared,
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{requests, evictions, entries, shared} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}
