package mapping

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Reload results, the closed label set of kube_iam_authz_mapping_reloads_total.
const (
	// ResultSuccess: a new snapshot was swapped in.
	ResultSuccess = "success"
	// ResultUnchanged: the file was read and is byte-identical to the
	// snapshot in force.
	ResultUnchanged = "unchanged"
	// ResultInvalid: the file failed to parse or validate; the last good
	// snapshot stays.
	ResultInvalid = "invalid"
	// ResultMissing: the file does not exist; the last good snapshot stays.
	ResultMissing = "missing"
	// ResultReadError: the file exists but could not be read (permissions,
	// too large); the last good snapshot stays.
	ResultReadError = "read_error"
)

var reloadResults = []string{ResultSuccess, ResultUnchanged, ResultInvalid, ResultMissing, ResultReadError}

// Metrics are the mapping store's Prometheus metrics. One Metrics serves
// every Store of a process: each series carries the store's name in the
// "mapping" label (one per cluster or mapping file, a closed set chosen by
// configuration).
type Metrics struct {
	reloads      *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	lastReloadOK *prometheus.GaugeVec
	entries      *prometheus.GaugeVec
	dropped      *prometheus.GaugeVec
	info         *prometheus.GaugeVec

	mu    sync.Mutex
	names map[string]bool
}

// NewMetrics registers the mapping metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("mapping: NewMetrics needs a prometheus.Registerer")
	}
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_iam_authz_mapping_reloads_total",
			Help: "Mapping file loads by result: success, unchanged, invalid, missing, read_error. Anything but success and unchanged keeps the last good mapping.",
		}, []string{"mapping", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_iam_authz_mapping_last_success_timestamp_seconds",
			Help: "Unix time at which the mapping in force was loaded.",
		}, []string{"mapping"}),
		lastReloadOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_iam_authz_mapping_last_reload_successful",
			Help: "1 if the last load of the mapping file succeeded (the file on disk is the mapping in force), 0 if the last good mapping is being kept.",
		}, []string{"mapping"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_iam_authz_mapping_entries",
			Help: "Entries of the mapping in force by kind: role, sso, user, account.",
		}, []string{"mapping", "kind"}),
		dropped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_iam_authz_mapping_dropped_entries",
			Help: "Entries of the mapping in force that are invalid on their own and were dropped (they grant nothing); the log lists each with FILE:LINE.",
		}, []string{"mapping"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_iam_authz_mapping_info",
			Help: "Always 1; sha256 is the content hash of the mapping file in force (compare with sha256sum).",
		}, []string{"mapping", "sha256"}),
		names: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{m.reloads, m.lastSuccess, m.lastReloadOK, m.entries, m.dropped, m.info} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mapping: registering metrics: %w", err)
		}
	}
	return m, nil
}

// claim reserves a store name so that two stores do not write one series.
func (m *Metrics) claim(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[name] {
		return fmt.Errorf("mapping: a store named %q already reports to these metrics", name)
	}
	m.names[name] = true
	for _, r := range reloadResults {
		m.reloads.WithLabelValues(name, r) // export zeros so rate() works from the start
	}
	return nil
}

// storeMetrics is one store's view; a nil *storeMetrics records nothing.
type storeMetrics struct {
	m    *Metrics
	name string
}

func (s *storeMetrics) reload(result string) {
	if s == nil {
		return
	}
	s.m.reloads.WithLabelValues(s.name, result).Inc()
	ok := 0.0
	if result == ResultSuccess || result == ResultUnchanged {
		ok = 1
	}
	s.m.lastReloadOK.WithLabelValues(s.name).Set(ok)
}

func (s *storeMetrics) swapped(snap *Snapshot, unixSeconds float64) {
	if s == nil {
		return
	}
	s.m.lastSuccess.WithLabelValues(s.name).Set(unixSeconds)
	c := snap.Counts()
	s.m.entries.WithLabelValues(s.name, "role").Set(float64(c.Roles))
	s.m.entries.WithLabelValues(s.name, "sso").Set(float64(c.SSO))
	s.m.entries.WithLabelValues(s.name, "user").Set(float64(c.Users))
	s.m.entries.WithLabelValues(s.name, "account").Set(float64(c.Accounts))
	s.m.dropped.WithLabelValues(s.name).Set(float64(c.Dropped))
	s.m.info.DeletePartialMatch(prometheus.Labels{"mapping": s.name})
	s.m.info.WithLabelValues(s.name, snap.Hash()).Set(1)
}
