package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Defaults.
const (
	DefaultShutdownGrace = 10 * time.Second
	DefaultReadyInterval = 250 * time.Millisecond
)

// Authorizer is the ext_authz service: check.Server implements it.
type Authorizer interface {
	Register(grpc.ServiceRegistrar)
	// Ready reports whether every mapping has been loaded.
	Ready() bool
}

// Options configure Run.
type Options struct {
	// GRPCAddr and HTTPAddr are listen addresses, used when the matching
	// listener is nil.
	GRPCAddr, HTTPAddr string
	// GRPCListener and HTTPListener, if set, are used as is (tests).
	GRPCListener, HTTPListener net.Listener
	// TLSCertFile and TLSKeyFile enable TLS on the gRPC listener (both or
	// neither). Plaintext is the normal setup: Envoy reaches the server
	// over the pod's loopback. The pair is re-read when either file's
	// directory changes (and every TLSReloadInterval); a broken pair keeps
	// the last good one.
	TLSCertFile, TLSKeyFile string
	// TLSReloadInterval is the safety-net re-read period of the key pair.
	// Default DefaultKeyPairInterval.
	TLSReloadInterval time.Duration
	// Registerer, if set, receives the server's own metrics (the gRPC TLS
	// key pair's reloads and expiry).
	Registerer prometheus.Registerer
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Authorizer is registered on the gRPC server.
	Authorizer Authorizer
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Logger for lifecycle events.
	Logger *zap.Logger
	// ShutdownGrace bounds the graceful drain on shutdown; in-flight
	// Checks past it are cut. Default DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// ReadyInterval is how often readiness is re-evaluated. Default
	// DefaultReadyInterval.
	ReadyInterval time.Duration
	// ReadyDetail, if set, returns lines that /readyz appends to its answer
	// (e.g. a mapping file that failed to reload while the last good one
	// keeps serving). It does not change the status code: a server serving
	// its last good mapping is ready.
	ReadyDetail func() []string
	// Background tasks (file watchers) run until the context ends; one
	// returning an error stops the server.
	Background []func(context.Context) error
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if o.GRPCListener == nil && o.GRPCAddr == "" {
		errs = append(errs, errors.New("server: a gRPC listen address is required"))
	}
	if o.HTTPListener == nil && o.HTTPAddr == "" {
		errs = append(errs, errors.New("server: an HTTP listen address is required"))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("server: TLS needs both a certificate and a key file"))
	}
	if o.Authorizer == nil {
		errs = append(errs, errors.New("server: Authorizer is required"))
	}
	if o.Gatherer == nil {
		errs = append(errs, errors.New("server: Gatherer is required"))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("server: Logger is required"))
	}
	if o.ShutdownGrace < 0 || o.ReadyInterval < 0 {
		errs = append(errs, errors.New("server: durations must not be negative"))
	}
	return errors.Join(errs...)
}

// healthServices are the names the gRPC health service reports on: the
// whole server ("") and the Authorization service.
var healthServices = []string{"", authv3.Authorization_ServiceDesc.ServiceName}

// Run serves until ctx ends, then drains: the health status turns
// NOT_SERVING, the gRPC server stops accepting and finishes in-flight
// Checks for at most ShutdownGrace, then closes.
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.ReadyInterval == 0 {
		o.ReadyInterval = DefaultReadyInterval
	}
	log := o.Logger

	var tlsConfig *tls.Config
	if o.TLSCertFile != "" {
		m, err := newKeyPairMetrics(o.Registerer)
		if err != nil {
			return err
		}
		kp, err := newKeyPair(o.TLSCertFile, o.TLSKeyFile, o.TLSReloadInterval, m, log, o.Now)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		tlsConfig = &tls.Config{GetCertificate: kp.GetCertificate, MinVersion: tls.VersionTLS12}
		o.Background = append(slices.Clip(o.Background), kp.Run)
	}
	grpcLis, err := listen(o.GRPCListener, o.GRPCAddr)
	if err != nil {
		return fmt.Errorf("server: gRPC listen: %w", err)
	}
	httpLis, err := listen(o.HTTPListener, o.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("server: HTTP listen: %w", err)
	}

	gs := newGRPCServer(tlsConfig)
	o.Authorizer.Register(gs)
	hs := health.NewServer()
	for _, svc := range healthServices {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	httpSrv := newHTTPServer(o.Gatherer, o.Authorizer.Ready, o.ReadyDetail, log)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		log.Info("gRPC server listening", zap.String("addr", grpcLis.Addr().String()), zap.Bool("tls", tlsConfig != nil))
		if err := gs.Serve(grpcLis); err != nil {
			return fmt.Errorf("server: gRPC: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		log.Info("HTTP server listening", zap.String("addr", httpLis.Addr().String()))
		if err := httpSrv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("server: HTTP: %w", err)
		}
		return nil
	})
	for _, task := range o.Background {
		g.Go(func() error { return task(gctx) })
	}
	g.Go(func() error {
		watchReadiness(gctx, o.Authorizer.Ready, hs, o.ReadyInterval, log)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdown(gs, hs, httpSrv, o.ShutdownGrace, log)
		return nil
	})
	err = g.Wait()
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func listen(l net.Listener, addr string) (net.Listener, error) {
	if l != nil {
		return l, nil
	}
	return net.Listen("tcp", addr)
}

// watchReadiness flips the health status when readiness changes: NOT_SERVING
// until the first mapping is loaded, so Envoy's health checks (and a
// Kubernetes readiness probe on /readyz) hold traffic back until then.
func watchReadiness(ctx context.Context, ready func() bool, hs *health.Server, every time.Duration, log *zap.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	serving := false
	for {
		if now := ready(); now != serving {
			serving = now
			status := healthpb.HealthCheckResponse_NOT_SERVING
			if serving {
				status = healthpb.HealthCheckResponse_SERVING
			}
			for _, svc := range healthServices {
				hs.SetServingStatus(svc, status)
			}
			log.Info("readiness changed", zap.Bool("ready", serving))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// shutdown drains both servers within grace.
func shutdown(gs *grpc.Server, hs *health.Server, httpSrv *http.Server, grace time.Duration, log *zap.Logger) {
	log.Info("shutting down", zap.Duration("grace", grace))
	// Health first: Envoy's active health checks see NOT_SERVING and stop
	// routing new Checks here while in-flight ones finish.
	hs.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	if err := httpSrv.Shutdown(ctx); err != nil {
		_ = httpSrv.Close()
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		log.Warn("graceful stop timed out; closing remaining gRPC streams")
		gs.Stop()
		<-stopped
	}
	log.Info("stopped")
}
