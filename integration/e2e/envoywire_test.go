//go:build integration

package e2e

// Facts about the real Envoy (KIA_ENVOY, 1.40.0) that decide kube-iam-authz's design,
// proven on the wire against the reviewed configs in envoy/. docs/envoy-facts.md lists
// them, each with the test that proves it.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	appendOrAdd = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	overwrite   = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	addIfAbsent = corev3.HeaderValueOption_ADD_IF_ABSENT
)

// TestEnvoyWireOKMutations (F1-F4): what the upstream receives for each way the authz
// server can mutate request headers in an OK response. The semantics are shown on
// Impersonate-Extra-Team, a header the reviewed mutation allow-list admits; the server
// cannot touch Impersonate-Group at all (last cases).
func TestEnvoyWireOKMutations(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	const extra = "Impersonate-Extra-Team"
	three := func(mk func(string) *corev3.HeaderValueOption) []*corev3.HeaderValueOption {
		return []*corev3.HeaderValueOption{mk("a"), mk("b"), mk("c")}
	}
	action := func(a corev3.HeaderValueOption_HeaderAppendAction) func(string) *corev3.HeaderValueOption {
		return func(v string) *corev3.HeaderValueOption { return hv(extra, v, a) }
	}
	deprecated := func(appendBool bool) func(string) *corev3.HeaderValueOption {
		return func(v string) *corev3.HeaderValueOption {
			//lint:ignore SA1019 the deprecated field's behaviour is what this case records.
			return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: extra, Value: v}, Append: wrapperspb.Bool(appendBool)}
		}
	}
	tests := map[string]struct {
		clientHeaders http.Header
		response      *authv3.CheckResponse
		wantStatus    int
		header        string   // upstream header to inspect
		wantLines     []string // its raw lines at the upstream (nil: absent)
	}{
		// F1: Envoy 1.40's gRPC client ignores append_action. Every entry without the
		// deprecated append=true is a SET: the last value wins, on one line.
		"APPEND_IF_EXISTS_OR_ADD x3 (the zero value)": {
			response: ok(three(action(appendOrAdd))), wantStatus: http.StatusOK,
			header: extra, wantLines: []string{"c"},
		},
		"ADD_IF_ABSENT x3": {
			response: ok(three(action(addIfAbsent))), wantStatus: http.StatusOK,
			header: extra, wantLines: []string{"c"},
		},
		"OVERWRITE_IF_EXISTS_OR_ADD x3": {
			response: ok(three(action(overwrite))), wantStatus: http.StatusOK,
			header: extra, wantLines: []string{"c"},
		},
		"deprecated append=false x3": {
			response: ok(three(deprecated(false))), wantStatus: http.StatusOK,
			header: extra, wantLines: []string{"c"},
		},
		"a set replaces the client's header": {
			clientHeaders: http.Header{extra: {"client"}},
			response:      ok(three(action(appendOrAdd))), wantStatus: http.StatusOK,
			header: extra, wantLines: []string{"c"},
		},
		// F1: the deprecated append=true appends to an EXISTING header only, comma-joined
		// into its line; with no such header it adds nothing at all.
		"deprecated append=true x3, header absent": {
			response: ok(three(deprecated(true))), wantStatus: http.StatusOK,
			header: extra, wantLines: nil,
		},
		"deprecated append=true x3, client header present": {
			clientHeaders: http.Header{extra: {"client"}},
			response:      ok(three(deprecated(true))), wantStatus: http.StatusOK,
			header: extra, wantLines: []string{"client,a,b,c"},
		},
		// F2: so the client's Authorization is replaced by any non-append entry.
		"Authorization replaced (OVERWRITE)": {
			clientHeaders: http.Header{"Authorization": {"Bearer k8s-aws-v1.client"}},
			response:      ok([]*corev3.HeaderValueOption{hv("authorization", "Bearer proxy-token", overwrite)}),
			wantStatus:    http.StatusOK, header: "Authorization", wantLines: []string{"Bearer proxy-token"},
		},
		"Authorization replaced (zero append_action)": {
			clientHeaders: http.Header{"Authorization": {"Bearer k8s-aws-v1.client"}},
			response:      ok([]*corev3.HeaderValueOption{hv("authorization", "Bearer proxy-token", appendOrAdd)}),
			wantStatus:    http.StatusOK, header: "Authorization", wantLines: []string{"Bearer proxy-token"},
		},
		"headers_to_remove removes the client's Authorization": {
			clientHeaders: http.Header{"Authorization": {"Bearer k8s-aws-v1.client"}},
			response:      ok(nil, "authorization"),
			wantStatus:    http.StatusOK, header: "Authorization", wantLines: nil,
		},
		// F3 (finding 2, C.9): removal runs after the sets: a header both set and listed
		// for removal is lost, and the request goes upstream un-impersonated.
		"set and headers_to_remove: the set header is lost": {
			response:   ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite)}, "impersonate-user"),
			wantStatus: http.StatusOK, header: "Impersonate-User", wantLines: nil,
		},
		// C.11: percent-encoded extra keys pass the allow-list and validation (Envoy
		// lower-cases the name, %2F becomes %2f; the API server unescapes either).
		"Impersonate-Extra with a percent-encoded key": {
			response:   ok([]*corev3.HeaderValueOption{hv("Impersonate-Extra-Example.com%2Fteam", "a", overwrite)}),
			wantStatus: http.StatusOK, header: "impersonate-extra-example.com%2fteam", wantLines: []string{"a"},
		},
		// A CheckResponse without a status counts as OK.
		"no status is OK": {
			response: &authv3.CheckResponse{HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite)},
			}}},
			wantStatus: http.StatusOK, header: "Impersonate-User", wantLines: []string{"alice"},
		},
		// F4: decoder_header_mutation_rules (reviewed config): a header outside the
		// allow-list fails the request instead of reaching the API server.
		"Impersonate-Group from ext_authz is a 500": {
			response:   ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite), hv("impersonate-group", "dev", appendOrAdd)}),
			wantStatus: http.StatusInternalServerError,
		},
		"X-Forwarded-For from ext_authz is a 500": {
			response:   ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite), hv("x-forwarded-for", "10.0.0.1", overwrite)}),
			wantStatus: http.StatusInternalServerError,
		},
		// validate_mutations (reviewed config): a CR/LF in a value fails the request.
		"CR LF in a value is a 500": {
			response:   ok([]*corev3.HeaderValueOption{hv("impersonate-user", "evil\r\nimpersonate-group: system:masters", overwrite)}),
			wantStatus: http.StatusInternalServerError,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s.authz.handle(name, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) { return tc.response, nil })
			resp := s.do(t, s.h1, "", http.MethodGet, "/api/v1/namespaces", name, tc.clientHeaders)
			if resp.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", resp.status, tc.wantStatus, resp.body)
			}
			got := s.upstreams["apiserver"].requests(name)
			if tc.wantStatus != http.StatusOK {
				if len(got) != 0 {
					t.Fatalf("upstream received %d requests, want none", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			if lines := got[0].lines(tc.header); !slices.Equal(lines, tc.wantLines) {
				t.Fatalf("upstream %s lines = %q, want %q\nraw head:\n%s", tc.header, lines, tc.wantLines, got[0].Head)
			}
		})
	}
}

// TestEnvoyWireDenied: a DeniedHttpResponse reaches the client unchanged and nothing
// reaches the upstream.
func TestEnvoyWireDenied(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	const status401 = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`
	tests := map[string]struct {
		code       int
		headers    map[string]string
		body       string
		wantStatus int
	}{
		"401 with www-authenticate": {
			code:       401,
			headers:    map[string]string{"content-type": "application/json", "www-authenticate": `Bearer realm="kube-iam-authz"`},
			body:       status401,
			wantStatus: 401,
		},
		"403": {
			code:       403,
			headers:    map[string]string{"content-type": "application/json"},
			body:       `{"kind":"Status","code":403}`,
			wantStatus: 403,
		},
		"429 with retry-after": {
			code:       429,
			headers:    map[string]string{"content-type": "application/json", "retry-after": "1"},
			body:       `{"kind":"Status","code":429}`,
			wantStatus: 429,
		},
		"503": {
			code:       503,
			headers:    map[string]string{"content-type": "application/json"},
			body:       `{"kind":"Status","code":503}`,
			wantStatus: 503,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var hs []*corev3.HeaderValueOption
			for k, v := range tc.headers {
				hs = append(hs, hv(k, v, overwrite))
			}
			s.authz.handle(name, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
				return deny(tc.code, tc.body, hs...), nil
			})
			for _, client := range []*http.Client{s.h1, s.h2} {
				resp := s.do(t, client, "", http.MethodGet, "/api", name, http.Header{"Authorization": {"Bearer k8s-aws-v1.x"}})
				if resp.status != tc.wantStatus || resp.body != tc.body {
					t.Fatalf("%s: got %d %q, want %d %q", resp.proto, resp.status, resp.body, tc.wantStatus, tc.body)
				}
				for k, v := range tc.headers {
					if got := resp.header.Values(k); !slices.Equal(got, []string{v}) {
						t.Errorf("%s: response %s = %q, want [%q]", resp.proto, k, got, v)
					}
				}
			}
			if n := len(s.upstreams["apiserver"].requests(name)); n != 0 {
				t.Fatalf("upstream received %d requests for a denied case", n)
			}
		})
	}
}

// TestEnvoyWireAuthzDown: fail closed with 503 while the authz server is down or slow,
// and recover without restarting Envoy.
func TestEnvoyWireAuthzDown(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	const c = "authz-down"
	s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite)}), nil
	})
	if resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, nil); resp.status != http.StatusOK {
		t.Fatalf("before: status %d, want 200", resp.status)
	}

	s.stopAuthz()
	for i := range 3 {
		resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, nil)
		if resp.status != http.StatusServiceUnavailable {
			t.Fatalf("down, request %d: status %d %q, want 503", i, resp.status, resp.body)
		}
	}
	if n := len(s.upstreams["apiserver"].requests(c)); n != 1 {
		t.Fatalf("upstream received %d requests, want only the one before the outage", n)
	}
	entries := s.accessLog(t, func(m map[string]any) bool { return m["response_code_details"] == "ext_authz_error" })
	if !slices.ContainsFunc(entries, func(m map[string]any) bool { return m["response_code_details"] == "ext_authz_error" }) {
		t.Errorf("no access log entry with response_code_details ext_authz_error")
	}

	startAuthz(t, s.authzAddr, s.authz)
	start := time.Now()
	for {
		resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, nil)
		if resp.status == http.StatusOK {
			t.Logf("recovered %s after the authz server came back", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("no recovery within 15s: last status %d", resp.status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEnvoyWireAuthzTimeout: an answer slower than the ext_authz timeout, or a gRPC
// error, is a 503.
func TestEnvoyWireAuthzTimeout(t *testing.T) {
	s := newWireStack(t, stackOptions{edit: setAuthzTimeout(time.Second)})
	const c = "slow"
	s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		time.Sleep(1500 * time.Millisecond)
		return ok(nil), nil
	})
	resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, nil)
	if resp.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.status)
	}
	if n := len(s.upstreams["apiserver"].requests(c)); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}

	// A gRPC error from the server (a bug, a panic turned into codes.Internal) is an
	// error too: status_on_error, not a denial and never an allow.
	const e = "rpc-error"
	s.authz.handle(e, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return nil, status.Error(codes.Internal, "boom")
	})
	if resp := s.do(t, s.h1, "", http.MethodGet, "/api", e, nil); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("rpc error: status %d, want 503", resp.status)
	}
	if n := len(s.upstreams["apiserver"].requests(e)); n != 0 {
		t.Fatalf("rpc error: upstream received %d requests", n)
	}
}

// TestEnvoyWireCheckRequestHeaders: how the client's headers reach the authz server.
func TestEnvoyWireCheckRequestHeaders(t *testing.T) {
	clientHeaders := http.Header{
		"Authorization":     {"Bearer k8s-aws-v1.first", "Bearer second"},
		"Impersonate-Group": {"a", "b"},
		"iMpErSoNaTe-uSeR":  {"mallory"},
		"X-Latin1":          {"caf\xe9"},
	}
	for _, raw := range []bool{true, false} {
		name := "encode_raw_headers=" + fmt.Sprint(raw)
		t.Run(name, func(t *testing.T) {
			var edit func(*bootstrapv3.Bootstrap) error
			if !raw {
				edit = setEncodeRawHeaders(false)
			}
			s := newWireStack(t, stackOptions{edit: edit})
			s.authz.handle(name, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) { return deny(403, "no"), nil })
			for _, client := range []*http.Client{s.h1, s.h2} {
				resp := s.do(t, client, "", http.MethodGet, "/api/v1/pods?watch=1", name, clientHeaders)
				if resp.status != 403 {
					t.Fatalf("status %d", resp.status)
				}
			}
			reqs := s.authz.requests(name)
			if len(reqs) != 2 {
				t.Fatalf("authz saw %d requests, want 2", len(reqs))
			}
			for i, req := range reqs {
				proto := []string{"HTTP/1.1", "HTTP/2"}[i]
				lines, joined := checkHeaders(req)
				http := req.GetAttributes().GetRequest().GetHttp()
				var keys []string
				for _, kv := range lines {
					keys = append(keys, kv[0])
				}
				for k := range joined {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				t.Logf("%s: header_map has %d entries, headers map has %d keys %q; path=%q source=%s",
					proto, len(lines), len(joined), keys, http.GetPath(), req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress())
				// Pseudo-headers are included: a server reading "the headers" sees them.
				for _, pseudo := range []string{":authority", ":method", ":path"} {
					if !slices.Contains(keys, pseudo) {
						t.Errorf("%s: %s missing from the Check headers", proto, pseudo)
					}
				}
				if raw {
					if len(joined) != 0 {
						t.Errorf("%s: headers map populated (%d keys) with encode_raw_headers", proto, len(joined))
					}
					for hdr, want := range map[string][]string{
						// F6: Authorization is one of Envoy's inline headers: its codec joins
						// repeats into one value before any filter runs, even in header_map.
						"authorization":     {"Bearer k8s-aws-v1.first,Bearer second"},
						"impersonate-group": {"a", "b"},
						"impersonate-user":  {"mallory"},
						"x-latin1":          {"caf\xe9"},
					} {
						if got := headerLines(req, hdr); !slices.Equal(got, want) {
							t.Errorf("%s: header_map %s = %q, want %q", proto, hdr, got, want)
						}
					}
					for _, kv := range lines {
						if kv[0] != strings.ToLower(kv[0]) {
							t.Errorf("%s: header_map key %q is not lower case", proto, kv[0])
						}
					}
					continue
				}
				if len(lines) != 0 {
					t.Errorf("%s: header_map populated without encode_raw_headers", proto)
				}
				for hdr, want := range map[string]string{
					"authorization":     "Bearer k8s-aws-v1.first,Bearer second",
					"impersonate-group": "a,b",
					"impersonate-user":  "mallory",
					"x-latin1":          "caf!",
				} {
					if got := joined[hdr]; got != want {
						t.Errorf("%s: headers[%s] = %q, want %q", proto, hdr, got, want)
					}
				}
				for k := range joined {
					if k != strings.ToLower(k) {
						t.Errorf("%s: headers key %q is not lower case", proto, k)
					}
				}
			}
		})
	}
}

// TestEnvoyWireForwardingHeaders (C.10): client-chosen forwarding and x-envoy-* headers
// never reach the upstream unchanged; underscore headers are rejected.
func TestEnvoyWireForwardingHeaders(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	const c = "forwarding"
	s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return ok([]*corev3.HeaderValueOption{hv("impersonate-user", "alice", overwrite)}), nil
	})
	resp := s.do(t, s.h1, "", http.MethodGet, "/api", c, http.Header{
		"X-Forwarded-For":                   {"1.2.3.4"},
		"X-Forwarded-Proto":                 {"http"},
		"X-Request-Id":                      {"client-chosen-id"},
		"X-Envoy-Retry-On":                  {"5xx"},
		"X-Envoy-Upstream-Rq-Timeout-Ms":    {"1"},
		"X-Envoy-Auth-Failure-Mode-Allowed": {"true"},
		"X-Envoy-Internal":                  {"true"},
		"X-Envoy-Original-Path":             {"/evil"},
		"X-Envoy-External-Address":          {"6.6.6.6"},
	})
	if resp.status != http.StatusOK {
		t.Fatalf("status %d", resp.status)
	}
	got := s.upstreams["apiserver"].requests(c)
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests", len(got))
	}
	up := got[0]
	for name, want := range map[string][]string{
		"X-Forwarded-For":          {"127.0.0.1"}, // the real peer only (route overwrite)
		"X-Forwarded-Proto":        {"https"},
		"X-Envoy-External-Address": {"127.0.0.1"}, // set by Envoy for external requests
	} {
		if got := up.lines(name); !slices.Equal(got, want) {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
	if rid := up.lines("X-Request-Id"); len(rid) != 1 || rid[0] == "client-chosen-id" {
		t.Errorf("upstream X-Request-Id = %q, want one Envoy-generated id", rid)
	}
	for _, name := range up.names() {
		if strings.HasPrefix(name, "x-envoy-") && name != "x-envoy-external-address" {
			t.Errorf("upstream received %s: %q", name, up.lines(name))
		}
	}

	// F8: what the authz server sees. Envoy strips the x-envoy-* headers it would act on,
	// but not x-envoy-auth-failure-mode-allowed (the route drops that one before the
	// upstream), and X-Forwarded-For still starts with the client's claim.
	check := s.authz.requests(c)
	if len(check) != 1 {
		t.Fatalf("authz saw %d requests", len(check))
	}
	var envoyHeaders []string
	lines, _ := checkHeaders(check[0])
	for _, kv := range lines {
		if strings.HasPrefix(kv[0], "x-envoy-") {
			envoyHeaders = append(envoyHeaders, kv[0]+"="+kv[1])
		}
	}
	slices.Sort(envoyHeaders)
	if want := []string{"x-envoy-auth-failure-mode-allowed=true", "x-envoy-external-address=127.0.0.1"}; !slices.Equal(envoyHeaders, want) {
		t.Errorf("authz saw x-envoy-* %q, want %q", envoyHeaders, want)
	}
	xff := headerLines(check[0], "x-forwarded-for")
	if len(xff) != 1 || !strings.HasPrefix(xff[0], "1.2.3.4,") {
		t.Errorf("authz saw X-Forwarded-For %q, want the client's 1.2.3.4 first, then an address Envoy appended", xff)
	}
	t.Logf("authz saw X-Forwarded-For %q (Envoy appends the host's own address for a loopback peer)", xff)
	if src := check[0].GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress(); src != "127.0.0.1" {
		t.Errorf("check source address = %q, want the real peer 127.0.0.1", src)
	}

	const u = "underscore"
	s.authz.handle(u, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) { return ok(nil), nil })
	resp = s.do(t, s.h1, "", http.MethodGet, "/api", u, http.Header{"impersonate_user": {"root"}})
	if resp.status != http.StatusBadRequest {
		t.Errorf("underscore header: status %d, want 400", resp.status)
	}
	if n := len(s.authz.requests(u)); n != 0 {
		t.Errorf("authz saw %d requests for an underscore header, want 0", n)
	}
}

// TestEnvoyWireAccessLog: the decision id from dynamic metadata lands in the access log
// (OK and Denied) and no token does.
func TestEnvoyWireAccessLog(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	const secret = "k8s-aws-v1.c2VjcmV0LXRva2VuLXZhbHVl"
	meta := func(id string) *structpb.Struct {
		st, _ := structpb.NewStruct(map[string]any{"decision_id": id})
		return st
	}
	s.authz.handle("log-ok", func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		r := ok([]*corev3.HeaderValueOption{hv("authorization", "Bearer proxy-secret-token", overwrite)})
		r.DynamicMetadata = meta("decision-ok-1")
		return r, nil
	})
	s.authz.handle("log-denied", func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
		r := deny(401, "{}")
		r.DynamicMetadata = meta("decision-denied-1")
		return r, nil
	})
	for _, c := range []string{"log-ok", "log-denied"} {
		s.do(t, s.h1, "", http.MethodGet, "/api/v1/secrets?labelSelector=a", c, http.Header{"Authorization": {"Bearer " + secret}})
	}
	entries := s.accessLog(t, func(m map[string]any) bool { return m["decision_id"] == "decision-denied-1" })
	for _, want := range []struct{ id, code string }{{"decision-ok-1", "200"}, {"decision-denied-1", "401"}} {
		if !slices.ContainsFunc(entries, func(m map[string]any) bool {
			return m["decision_id"] == want.id && fmt.Sprint(m["response_code"]) == want.code && m["path"] == "/api/v1/secrets"
		}) {
			t.Errorf("no access log entry with decision_id %s, response_code %s and path without query; entries: %v", want.id, want.code, entries)
		}
	}
	for _, out := range []string{s.envoy.Stdout(), s.envoy.Stderr()} {
		for _, leak := range []string{secret, "proxy-secret-token", "labelSelector"} {
			if strings.Contains(out, leak) {
				t.Errorf("Envoy output contains %q", leak)
			}
		}
	}
}

// TestEnvoyWireUpgrades: kubectl's exec/attach/port-forward upgrades pass through the
// reviewed config, after ext_authz replaced the credentials.
func TestEnvoyWireUpgrades(t *testing.T) {
	s := newWireStack(t, stackOptions{})
	for _, proto := range []string{"SPDY/3.1", "websocket"} {
		t.Run(proto, func(t *testing.T) {
			c := "upgrade-" + proto
			s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) {
				return ok([]*corev3.HeaderValueOption{hv("authorization", "Bearer proxy-token", overwrite), hv("impersonate-user", "alice", overwrite)}), nil
			})
			conn, br := s.upgrade(t, c, proto)
			defer conn.Close()
			for _, msg := range []string{"ping-1", "ping-2"} {
				if _, err := fmt.Fprint(conn, msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, len(msg))
				if _, err := ioReadFull(br, buf); err != nil || string(buf) != msg {
					t.Fatalf("echo = %q, %v; want %q", buf, err, msg)
				}
			}
			got := s.upstreams["apiserver"].requests(c)
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests", len(got))
			}
			if a := got[0].lines("Authorization"); !slices.Equal(a, []string{"Bearer proxy-token"}) {
				t.Errorf("upgrade request Authorization = %q, want the proxy's", a)
			}
		})
	}
}

// upgrade opens an HTTP/1.1 connection to Envoy and upgrades it to proto.
func (s *wireStack) upgrade(t *testing.T, c, proto string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	h1 := s.h1.Transport.(*http.Transport).TLSClientConfig.Clone()
	h1.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.url(""), "https://"), h1)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
		"Connection: Upgrade\r\nUpgrade: %s\r\nAuthorization: Bearer k8s-aws-v1.client\r\n%s: %s\r\n\r\n", proto, caseHeader, c)
	br := bufio.NewReader(conn)
	head, err := readResponseHead(br)
	if err != nil || !strings.HasPrefix(head, "HTTP/1.1 101") {
		conn.Close()
		t.Fatalf("upgrade %s: %v\n%s", proto, err, head)
	}
	return conn, br
}

// TestEnvoyWireMaxStreamDuration (C.14): max_stream_duration ends upgraded sessions and
// watches; with the reviewed 15 min this bounds how long a stream outlives its token.
// The test shortens it to 2s (the rule is the same).
func TestEnvoyWireMaxStreamDuration(t *testing.T) {
	const limit = 2 * time.Second
	s := newWireStack(t, stackOptions{edit: setMaxStreamDuration(limit)})
	okAll := func(*authv3.CheckRequest) (*authv3.CheckResponse, error) { return ok(nil), nil }

	t.Run("SPDY exec session", func(t *testing.T) {
		s.authz.handle("msd-upgrade", okAll)
		conn, br := s.upgrade(t, "msd-upgrade", "SPDY/3.1")
		defer conn.Close()
		start := time.Now()
		// Keep the session busy, so only the duration limit can end it.
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, 4)
			for {
				if _, err := fmt.Fprint(conn, "ping"); err != nil {
					errc <- err
					return
				}
				if _, err := ioReadFull(br, buf); err != nil {
					errc <- err
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		err := <-errc
		elapsed := time.Since(start)
		t.Logf("session ended after %s: %v", elapsed.Round(10*time.Millisecond), err)
		if elapsed < limit-200*time.Millisecond || elapsed > limit+5*time.Second {
			t.Fatalf("session ended after %s, want about %s", elapsed, limit)
		}
	})

	t.Run("watch", func(t *testing.T) {
		s.authz.handle("msd-watch", okAll)
		req, _ := http.NewRequest(http.MethodGet, s.url("")+"/stream", nil)
		req.Header.Set(caseHeader, "msd-watch")
		start := time.Now()
		resp, err := s.h2.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := ioCopyDiscard(resp.Body)
		elapsed := time.Since(start)
		t.Logf("watch ended after %s, %d bytes: %v", elapsed.Round(10*time.Millisecond), n, err)
		if n == 0 || elapsed < limit-200*time.Millisecond || elapsed > limit+5*time.Second {
			t.Fatalf("watch ended after %s with %d bytes, want about %s with data", elapsed, n, limit)
		}
	})
}

// TestEnvoyWireMultiCluster: each listener of multi-cluster.yaml sends its own
// context_extensions and reaches only its own API server.
func TestEnvoyWireMultiCluster(t *testing.T) {
	s := newWireStack(t, stackOptions{
		config: "../../envoy/multi-cluster.yaml",
		sans:   map[string]string{"apiserver-a": "prod-a.k8s.example.com", "apiserver-b": "prod-b.k8s.example.com"},
	})
	for listener, want := range map[string]struct{ id, cluster string }{
		"kube-api-a": {"prod-a", "apiserver-a"},
		"kube-api-b": {"prod-b", "apiserver-b"},
	} {
		c := "multi-" + listener
		s.authz.handle(c, func(*authv3.CheckRequest) (*authv3.CheckResponse, error) { return ok(nil), nil })
		if resp := s.do(t, s.h1, listener, http.MethodGet, "/api", c, nil); resp.status != http.StatusOK {
			t.Fatalf("%s: status %d %q", listener, resp.status, resp.body)
		}
		reqs := s.authz.requests(c)
		if len(reqs) != 1 {
			t.Fatalf("%s: authz saw %d requests", listener, len(reqs))
		}
		ext := reqs[0].GetAttributes().GetContextExtensions()
		if ext["cluster_id"] != want.id || ext["mapping"] != want.id {
			t.Errorf("%s: context_extensions = %v, want cluster_id=mapping=%s", listener, ext, want.id)
		}
		for cluster, up := range s.upstreams {
			n := len(up.requests(c))
			if wantN := map[bool]int{true: 1, false: 0}[cluster == want.cluster]; n != wantN {
				t.Errorf("%s: %s received %d requests, want %d", listener, cluster, n, wantN)
			}
		}
	}
}
