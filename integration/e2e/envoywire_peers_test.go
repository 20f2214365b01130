//go:build integration

package e2e

// The peers the Envoy wire tests put around a real Envoy: a scriptable ext_authz gRPC
// server and an upstream that records the raw bytes of every request head it receives.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// caseHeader routes a test request to its scripted authz answer and labels what the
// upstream records. It is an ordinary header, so both peers see it.
const caseHeader = "x-wire-case"

// checkFunc scripts the authz server's answer to one case.
type checkFunc func(*authv3.CheckRequest) (*authv3.CheckResponse, error)

// fakeAuthz is an ext_authz gRPC server whose answers are scripted per case. It records
// every CheckRequest it receives.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer

	mu       sync.Mutex
	handlers map[string]checkFunc
	seen     map[string][]*authv3.CheckRequest
}

func newFakeAuthz() *fakeAuthz {
	return &fakeAuthz{handlers: map[string]checkFunc{}, seen: map[string][]*authv3.CheckRequest{}}
}

func (f *fakeAuthz) handle(c string, fn checkFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[c] = fn
}

func (f *fakeAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	c := firstHeader(req, caseHeader)
	f.mu.Lock()
	f.seen[c] = append(f.seen[c], proto.Clone(req).(*authv3.CheckRequest))
	fn := f.handlers[c]
	f.mu.Unlock()
	if fn == nil {
		return deny(599, "no handler for case "+c), nil
	}
	return fn(req)
}

// requests returns the CheckRequests recorded for a case.
func (f *fakeAuthz) requests(c string) []*authv3.CheckRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*authv3.CheckRequest(nil), f.seen[c]...)
}

// checkHeaders returns a request's headers as Envoy sent them: from header_map (one
// entry per line, with encode_raw_headers) and from the headers map (comma-joined).
func checkHeaders(req *authv3.CheckRequest) (lines [][2]string, joined map[string]string) {
	h := req.GetAttributes().GetRequest().GetHttp()
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		lines = append(lines, [2]string{hv.GetKey(), v})
	}
	return lines, h.GetHeaders()
}

// headerLines returns the values of every header_map entry named name (exact match).
func headerLines(req *authv3.CheckRequest, name string) []string {
	lines, _ := checkHeaders(req)
	var out []string
	for _, kv := range lines {
		if kv[0] == name {
			out = append(out, kv[1])
		}
	}
	return out
}

// firstHeader finds a header in either representation.
func firstHeader(req *authv3.CheckRequest, name string) string {
	if v := headerLines(req, name); len(v) > 0 {
		return v[0]
	}
	return req.GetAttributes().GetRequest().GetHttp().GetHeaders()[name]
}

// startAuthz serves f on addr until the returned stop is called (or the test ends).
func startAuthz(t *testing.T, addr string, f *fakeAuthz) (stop func()) {
	t.Helper()
	var l net.Listener
	var err error
	// The port may still be in TIME_WAIT after a restart; retry briefly.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if l, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("authz listen %s: %v", addr, err)
	}
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			s.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// ok builds an OK CheckResponse with header mutations.
func ok(headers []*corev3.HeaderValueOption, remove ...string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: headers, HeadersToRemove: remove,
		}},
	}
}

// deny builds a Denied CheckResponse with a status and body.
func deny(code int, body string, headers ...*corev3.HeaderValueOption) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)}, Headers: headers, Body: body,
		}},
	}
}

func hv(key, value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}, AppendAction: action}
}

// upstreamRequest is one request as the upstream received it.
type upstreamRequest struct {
	// Head is the raw request line and header lines, exactly as read from the wire.
	Head   string
	Method string
	Path   string
	Proto  string
}

// lines returns the values of every raw header line named name (case-insensitively),
// in wire order: N lines are N values, a comma-joined line is one value.
func (r upstreamRequest) lines(name string) []string {
	var out []string
	for _, l := range strings.Split(r.Head, "\r\n")[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// names returns every header name in the head, lower-cased.
func (r upstreamRequest) names() []string {
	var out []string
	for _, l := range strings.Split(r.Head, "\r\n")[1:] {
		if k, _, ok := strings.Cut(l, ":"); ok {
			out = append(out, strings.ToLower(k))
		}
	}
	return out
}

// rawUpstream is a TLS HTTP/1.1 server standing in for the API server. Keep-alives are
// off, so each connection carries one request and the bytes read on it are exactly that
// request's head. It answers 200, echoes upgraded connections, and streams on /stream.
type rawUpstream struct {
	Addr string

	mu   sync.Mutex
	seen map[string][]upstreamRequest
	srv  *http.Server
}

type connKey struct{}

func startUpstream(t *testing.T, cert tls.Certificate) *rawUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{Addr: l.Addr().String(), seen: map[string][]upstreamRequest{}}
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	u.srv = &http.Server{
		Handler:           http.HandlerFunc(u.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	u.srv.SetKeepAlivesEnabled(false)
	go func() { _ = u.srv.Serve(teeListener{tl}) }()
	t.Cleanup(func() { _ = u.srv.Close() })
	return u
}

func (u *rawUpstream) serve(w http.ResponseWriter, r *http.Request) {
	tc, _ := r.Context().Value(connKey{}).(*teeConn)
	head := ""
	if tc != nil {
		raw := tc.captured()
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			head = string(raw[:i])
		}
	}
	u.mu.Lock()
	c := r.Header.Get(caseHeader)
	u.seen[c] = append(u.seen[c], upstreamRequest{Head: head, Method: r.Method, Path: r.URL.RequestURI(), Proto: r.Proto})
	u.mu.Unlock()

	switch {
	case r.Header.Get("Upgrade") != "":
		u.echoUpgrade(w, r)
	case r.URL.Path == "/stream":
		// A watch: one chunk every 100ms until the client or Envoy goes away.
		w.Header().Set("Content-Type", "application/json")
		fl := w.(http.Flusher)
		for {
			if _, err := io.WriteString(w, "{\"type\":\"BOOKMARK\"}\n"); err != nil {
				return
			}
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	default:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream-ok")
	}
}

// echoUpgrade answers 101 with the requested protocol and echoes bytes back.
func (u *rawUpstream) echoUpgrade(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\n\r\n")
	_ = brw.Flush()
	_, _ = io.Copy(conn, brw)
}

func (u *rawUpstream) requests(c string) []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRequest(nil), u.seen[c]...)
}

// teeListener wraps accepted (TLS) connections so that the plaintext read from them is
// kept: the raw request head, before Go's parser folds anything.
type teeListener struct{ net.Listener }

func (l teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c}, nil
}

type teeConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

// maxCapture bounds what a teeConn keeps (request heads are small, the largest being
// every group slot filled with a 1024-byte name, 66 KiB; upgraded streams are not
// recorded past this).
const maxCapture = 256 << 10

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if c.buf.Len() < maxCapture {
		c.buf.Write(p[:n])
	}
	c.mu.Unlock()
	return n, err
}

func (c *teeConn) captured() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}

// readResponseHead reads an HTTP/1.1 response head from br.
func readResponseHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
		if sb.Len() > 64<<10 {
			return sb.String(), errors.New("response head too large")
		}
	}
}
