package stsfake

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServeOptions say where and how a stand-in listens.
type ServeOptions struct {
	// Addr is the listen address; 127.0.0.1:0 (a free loopback port) when
	// empty.
	Addr string
	// TLS serves HTTPS with a certificate from a CA generated at start.
	TLS bool
	// DNSNames are extra names for the certificate, besides localhost,
	// 127.0.0.1 and ::1 (for example sts.amazonaws.com when a client is
	// pointed at the stand-in by name).
	DNSNames []string
	// ErrorLog receives the HTTP server's own errors; the standard logger
	// when nil.
	ErrorLog *log.Logger
}

// Running is a listening stand-in.
type Running struct {
	// URL is the base URL to send requests to (http://127.0.0.1:PORT or
	// https://...).
	URL string
	// Addr is the bound host:port.
	Addr string
	// CAPEM is the CA certificate to trust (nil for plain HTTP).
	CAPEM []byte

	srv       *http.Server
	done      chan error
	closeOnce sync.Once
	closeErr  error
}

// Start listens and serves s.Handler() until Close.
func (s *Server) Start(o ServeOptions) (*Running, error) {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          o.ErrorLog,
	}
	var caPEM []byte
	if o.TLS {
		now := s.now()
		ca, err := NewCA(now)
		if err != nil {
			return nil, fmt.Errorf("stsfake: %w", err)
		}
		cert, err := ca.Issue(now, append([]string{"localhost"}, o.DNSNames...), []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
		if err != nil {
			return nil, fmt.Errorf("stsfake: %w", err)
		}
		// HTTP/1.1 only, so that the connection-close fault can hijack.
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		}
		caPEM = ca.CertPEM
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stsfake: listen: %w", err)
	}
	scheme := "http"
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	r := &Running{
		URL:   scheme + "://" + ln.Addr().String(),
		Addr:  ln.Addr().String(),
		CAPEM: caPEM,
		srv:   srv,
		done:  make(chan error, 1),
	}
	go func() { r.done <- srv.Serve(ln) }()
	return r, nil
}

// Close stops listening and waits up to five seconds for requests in flight.
// It may be called more than once.
func (r *Running) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

func (r *Running) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = r.srv.Close()
	}
	if serveErr := <-r.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}
