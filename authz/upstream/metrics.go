package upstream

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of upstream token files. One Metrics serves every TokenFile of a
// process; the "name" label tells them apart (a closed set chosen by
// configuration).
type Metrics struct {
	reads       *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

// NewMetrics registers the metrics on reg:
//
//	kube_iam_authz_upstream_token_reads_total{name,result}  result: success, failure
//	kube_iam_authz_upstream_token_last_success_timestamp_seconds{name}
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("upstream token: NewMetrics needs a prometheus.Registerer")
	}
	m := &Metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_iam_authz_upstream_token_reads_total",
			Help: "Reads of the upstream token file by result (success, failure). After a failure the last good token stays in use.",
		}, []string{"name", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kube_iam_authz_upstream_token_last_success_timestamp_seconds",
			Help: "Unix time of the last successful read of the upstream token file.",
		}, []string{"name"}),
	}
	for _, c := range []prometheus.Collector{m.reads, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("upstream token: metrics: %w", err)
		}
	}
	return m, nil
}

// init exports zeros for a file's series so rate() works from the start.
func (m *Metrics) init(name string) {
	m.reads.WithLabelValues(name, "success")
	m.reads.WithLabelValues(name, "failure")
}

// read records one read; a nil *Metrics records nothing.
func (m *Metrics) read(name string, ok bool, at time.Time) {
	if m == nil {
		return
	}
	if !ok {
		m.reads.WithLabelValues(name, "failure").Inc()
		return
	}
	m.reads.WithLabelValues(name, "success").Inc()
	m.lastSuccess.WithLabelValues(name).Set(float64(at.UnixNano()) / 1e9)
}
