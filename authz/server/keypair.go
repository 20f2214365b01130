package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/internal/dirwatch"
)

// DefaultKeyPairInterval is the safety-net re-read period of the gRPC key
// pair. cert-manager renews at two thirds of a certificate's life (days or
// weeks); a minute is far inside any window and costs one file read.
const DefaultKeyPairInterval = time.Minute

// keyPair serves the gRPC listener's certificate and follows its files.
// Handshakes read the current pair through GetCertificate, so a renewed
// certificate is used by every new connection without a restart, while
// established connections (Envoy's long-lived HTTP/2 one) are left alone.
type keyPair struct {
	certFile, keyFile string
	interval          time.Duration
	log               *zap.Logger
	metrics           *keyPairMetrics
	now               func() time.Time
	current           atomic.Pointer[tls.Certificate]
}

func newKeyPair(certFile, keyFile string, interval time.Duration, m *keyPairMetrics, log *zap.Logger, now func() time.Time) (*keyPair, error) {
	if interval <= 0 {
		interval = DefaultKeyPairInterval
	}
	if now == nil {
		now = time.Now
	}
	k := &keyPair{
		certFile: certFile, keyFile: keyFile, interval: interval, metrics: m, now: now,
		log: log.With(zap.String("cert_file", certFile), zap.String("key_file", keyFile)),
	}
	// A pair that cannot be loaded at start is fatal: serving without a
	// certificate would fail every handshake with no clear cause.
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// GetCertificate is tls.Config.GetCertificate: the last good pair.
func (k *keyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.current.Load(), nil
}

// reload reads both files now. On failure (a half-written pair, a key that
// does not match the certificate, a missing file) the last good pair keeps
// serving: a certificate that is still valid is better than no TLS at all.
func (k *keyPair) reload() error {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		k.metrics.reload(false)
		return fmt.Errorf("gRPC TLS key pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		k.metrics.reload(false)
		return fmt.Errorf("gRPC TLS key pair: %s: %w", k.certFile, err)
	}
	cert.Leaf = leaf
	k.metrics.reload(true)
	old := k.current.Load()
	if old != nil && old.Leaf.Equal(leaf) {
		return nil
	}
	k.current.Store(&cert)
	k.metrics.notAfter.Set(float64(leaf.NotAfter.Unix()))
	fields := []zap.Field{
		zap.String("serial", leaf.SerialNumber.Text(16)),
		zap.Time("not_after", leaf.NotAfter),
	}
	if left := leaf.NotAfter.Sub(k.now()); left <= 0 {
		k.log.Warn("gRPC TLS certificate has expired", fields...)
	} else if old != nil {
		k.log.Info("gRPC TLS certificate reloaded", fields...)
	} else {
		k.log.Info("gRPC TLS certificate loaded", fields...)
	}
	return nil
}

// Run follows the files until ctx ends. Like the upstream token file, it
// watches the directories, not the files: a Secret volume is updated by
// swapping its ..data symlink, which a watch on the file never sees.
func (k *keyPair) Run(ctx context.Context) error {
	return dirwatch.Run(ctx, dirwatch.Options{
		Name:     "gRPC TLS key pair",
		Files:    []string{k.certFile, k.keyFile},
		Interval: k.interval,
		Reload: func(why string) {
			if err := k.reload(); err != nil {
				k.log.Warn("gRPC TLS key pair reload failed; keeping the last good certificate",
					zap.String("trigger", why), zap.Error(err))
			}
		},
		WatchError: func(err error) { k.log.Warn("gRPC TLS key pair watcher error", zap.Error(err)) },
	})
}

// keyPairMetrics: reloads by result, and the served certificate's expiry so
// that an alert can fire well before it (a renewal that never arrives is
// otherwise silent until handshakes fail).
type keyPairMetrics struct {
	reloads  *prometheus.CounterVec
	notAfter prometheus.Gauge
}

// newKeyPairMetrics registers, on reg (nil: unregistered, still usable):
//
//	kube_iam_authz_grpc_tls_reloads_total{result}  result: success, failure
//	kube_iam_authz_grpc_tls_cert_not_after_timestamp_seconds
func newKeyPairMetrics(reg prometheus.Registerer) (*keyPairMetrics, error) {
	m := &keyPairMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_iam_authz_grpc_tls_reloads_total",
			Help: "Reads of the gRPC listener's TLS key pair by result (success, failure). After a failure the last good pair keeps serving.",
		}, []string{"result"}),
		notAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kube_iam_authz_grpc_tls_cert_not_after_timestamp_seconds",
			Help: "Unix time at which the gRPC listener's served certificate expires.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reloads, m.notAfter} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("server: metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *keyPairMetrics) reload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
}
