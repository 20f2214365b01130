// Package server is a test peer for kube-iam-authz: the stock generic
// handler chain of k8s.io/apiserver (authentication, the real impersonation
// filter, authorization) serving authentication.k8s.io/v1
// selfsubjectreviews, with a recorder of the exact headers each request
// arrived with. It is not product code.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/request"
	genericfeatures "k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	restclient "k8s.io/client-go/rest"
	"k8s.io/component-base/compatibility"
)

// binaryVersion is the Kubernetes minor the k8s.io/apiserver v0.37 library
// implements; /version reports it.
const (
	binaryVersion = "1.37"
	gitVersion    = "v1.37.2+apiserver-fake"
)

var errNoUser = errors.New("no user in request context")

// Server is one running peer.
type Server struct {
	opts     *Options
	recorder *Recorder
	caFile   string
	caPool   *x509.CertPool

	secureLn net.Listener
	recordLn net.Listener

	generic *genericapiserver.GenericAPIServer
	ready   chan struct{}
}

// New validates o, writes fresh certificates to o.CertDir, binds the
// listeners (so URL is known before Run) and assembles the API server.
func New(o *Options) (*Server, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	certs, err := GenerateServingCerts(o.Now())
	if err != nil {
		return nil, err
	}
	if err := certs.WriteTo(o.CertDir); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certs.CAPEM) {
		return nil, errors.New("generated CA does not parse")
	}
	s := &Server{
		opts:     o,
		recorder: NewRecorder(o.RecordCapacity, o.Now),
		caFile:   filepath.Join(o.CertDir, CAFile),
		caPool:   pool,
		ready:    make(chan struct{}),
	}
	s.secureLn, err = net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", o.Listen, err)
	}
	if o.RecordListen != "" {
		s.recordLn, err = net.Listen("tcp", o.RecordListen)
		if err != nil {
			s.secureLn.Close()
			return nil, fmt.Errorf("record listen %s: %w", o.RecordListen, err)
		}
	}
	if err := s.build(certs); err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, nil
}

func (s *Server) build(certs *ServingCerts) error {
	o := s.opts
	scheme, codecs, err := newScheme()
	if err != nil {
		return err
	}
	cfg := genericapiserver.NewConfig(codecs)

	// The feature gate is a copy, never the process-wide default, so two
	// peers in one test process can run different impersonation filters.
	gate := utilfeature.DefaultMutableFeatureGate.DeepCopy()
	if err := gate.SetFromMap(map[string]bool{
		string(genericfeatures.ConstrainedImpersonation): o.ImpersonationMode == ModeConstrained,
	}); err != nil {
		return fmt.Errorf("feature gate: %w", err)
	}
	cfg.FeatureGate = gate
	cfg.EffectiveVersion = reportedVersion{compatibility.NewEffectiveVersionFromString(binaryVersion, "", "")}

	certProvider, err := dynamiccertificates.NewStaticCertKeyContent("serving-cert", certs.CertPEM, certs.KeyPEM)
	if err != nil {
		return fmt.Errorf("serving cert: %w", err)
	}
	cfg.SecureServing = &genericapiserver.SecureServingInfo{
		Listener:      s.secureLn,
		Cert:          certProvider,
		MinTLSVersion: tls.VersionTLS12,
	}
	addr := s.secureLn.Addr().(*net.TCPAddr)
	cfg.ExternalAddress = addr.String()
	cfg.PublicAddress = addr.IP

	// Complete() adds a privileged (system:masters) authenticator for this
	// random token; nothing here uses the loopback client, but New()
	// requires one.
	cfg.LoopbackClientConfig = &restclient.Config{
		Host:            s.URL(),
		BearerToken:     randomHex(32),
		TLSClientConfig: restclient.TLSClientConfig{CAData: certs.CAPEM},
	}

	authn, err := newAuthenticator(o)
	if err != nil {
		return err
	}
	cfg.Authentication.Authenticator = recordingAuthenticator{next: authn}
	cfg.Authorization.Authorizer = withRecording(newProxyAuthorizer(o))

	cfg.BuildHandlerChainFunc = func(apiHandler http.Handler, c *genericapiserver.Config) http.Handler {
		return s.recorder.WrapOutermost(genericapiserver.DefaultBuildHandlerChain(s.recorder.WrapInnermost(apiHandler), c))
	}
	basicLongRunning := genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch"), sets.NewString())
	cfg.LongRunningFunc = func(r *http.Request, ri *request.RequestInfo) bool {
		// The upgrade endpoint hijacks the connection; the timeout filter
		// must not wrap it.
		return r.URL.Path == UpgradePath || basicLongRunning(r, ri)
	}
	cfg.EnableProfiling = false
	cfg.OpenAPIV3Config = openAPIV3Config(scheme)

	generic, err := cfg.Complete(nil).New("apiserver-fake", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return fmt.Errorf("new generic apiserver: %w", err)
	}
	group := genericapiserver.NewDefaultAPIGroupInfo(authenticationv1.GroupName, scheme, runtime.NewParameterCodec(scheme), codecs)
	group.VersionedResourcesStorageMap[authenticationv1.SchemeGroupVersion.Version] = map[string]rest.Storage{
		"selfsubjectreviews": selfSubjectReviewREST{now: o.Now},
	}
	if err := generic.InstallAPIGroup(&group); err != nil {
		return fmt.Errorf("install authentication.k8s.io: %w", err)
	}
	generic.Handler.NonGoRestfulMux.Handle(UpgradePath, upgradeEchoHandler())
	s.generic = generic
	return nil
}

// URL is the secure base URL, e.g. https://127.0.0.1:6443.
func (s *Server) URL() string { return "https://" + s.secureLn.Addr().String() }

// RecordURL is the recorder's base URL, or "" when not listening.
func (s *Server) RecordURL() string {
	if s.recordLn == nil {
		return ""
	}
	return "http://" + s.recordLn.Addr().String()
}

// CAFile is the path of the CA certificate clients should trust.
func (s *Server) CAFile() string { return s.caFile }

// Recorder gives in-process tests direct access to the records.
func (s *Server) Recorder() *Recorder { return s.recorder }

// Ready is closed once /readyz answers 200.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	var recordSrv *http.Server
	recordErr := make(chan error, 1)
	if s.recordLn != nil {
		recordSrv = &http.Server{
			Handler:           s.recorder.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
		}
		go func() { recordErr <- recordSrv.Serve(s.recordLn) }()
	}
	go s.waitReady(ctx)

	err := s.generic.PrepareRun().RunWithContext(ctx)

	if recordSrv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := recordSrv.Shutdown(shutdownCtx); serr != nil {
			err = errors.Join(err, serr)
		}
		if rerr := <-recordErr; rerr != nil && !errors.Is(rerr, http.ErrServerClosed) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// waitReady polls /readyz (anonymous access is allowed there) so Ready
// means "the full chain answers", not merely "the socket is bound".
func (s *Server) waitReady(ctx context.Context) {
	client := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: s.caPool, MinVersion: tls.VersionTLS12},
		},
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/readyz", nil)
		if err != nil {
			return
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				close(s.ready)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) closeListeners() {
	s.secureLn.Close()
	if s.recordLn != nil {
		s.recordLn.Close()
	}
}

// reportedVersion gives /version a recognisable gitVersion; the library's
// own is "v0.0.0-master+$Format:%H$" when not built by the kube release
// tooling.
type reportedVersion struct {
	compatibility.EffectiveVersion
}

func (v reportedVersion) Info() *apimachineryversion.Info {
	info := v.EffectiveVersion.Info()
	if info != nil {
		info.GitVersion = gitVersion
	}
	return info
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Go ≥ 1.24
	return hex.EncodeToString(b)
}
