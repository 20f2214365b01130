package check

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// The fuzz target's world: one token that STS would accept, and only for
// cluster A; cluster B is configured too, so a route selecting B must turn
// the same token away (cross-cluster replay).
const (
	fuzzToken     = "k8s-aws-v1.ZnV6ei12YWxpZC10b2tlbi1mb3ItY2x1c3Rlci1h"
	fuzzClusterA  = "cluster-a"
	fuzzClusterB  = "cluster-b"
	fuzzProxyAuth = "Bearer fuzz-proxy-sa-token"
)

var fuzzIdentity = identity.Identity{
	ARN:          "arn:aws:sts::111122223333:assumed-role/Dev/fuzz",
	CanonicalARN: "arn:aws:iam::111122223333:role/Dev",
	AccountID:    "111122223333",
	UserID:       "AROAFUZZ:fuzz",
	PrincipalID:  "AROAFUZZ",
	SessionName:  "fuzz",
	AccessKeyID:  "ASIAFUZZ",
	Kind:         identity.KindAssumedRole,
}

var fuzzUser = kubeuser.User{Username: "dev:fuzz", Groups: []string{"devs", "viewers"}}

// fuzzVerifier accepts exactly fuzzToken for fuzzClusterA. Any other token
// is an STS rejection, as a cluster-B verification of an A token would be.
type fuzzVerifier struct{}

func (fuzzVerifier) Verify(_ context.Context, tok, clusterID string) (verify.Result, error) {
	if tok == fuzzToken && clusterID == fuzzClusterA {
		return verify.Result{Identity: fuzzIdentity, Expiry: time.Unix(2e9, 0), STSRegion: "global"}, nil
	}
	return verify.Result{}, sts.ErrUnauthenticated
}

// fuzzMapper maps the one identity; cluster B's mapper maps nobody.
type fuzzMapper struct{ maps bool }

func (m fuzzMapper) Map(_ context.Context, id identity.Identity) (kubeuser.User, error) {
	if m.maps && id == fuzzIdentity {
		return fuzzUser, nil
	}
	return kubeuser.User{}, kubeuser.ErrUnmapped
}

type fuzzBearer struct{}

func (fuzzBearer) BearerToken() string { return strings.TrimPrefix(fuzzProxyAuth, "Bearer ") }

// FuzzCheck feeds Check arbitrary header lines in both of Envoy's
// representations and arbitrary route context, and holds every answer to
// the contract:
//   - Check never fails internally (a panic is recovered into a 500, which
//     this target counts as a failure);
//   - OK only for exactly one Authorization line "Bearer <the valid token>",
//     no Impersonate-* header in any case, and a route for cluster A;
//   - an OK sets only the allow-listed headers (docs/envoy-facts.md F4) with
//     the proxy's credential, puts the groups in the dynamic metadata slots
//     (F5) and removes nothing it sets (F3);
//   - a denial is a Kubernetes Status JSON body whose code is the HTTP
//     status, and never echoes the request's token or header values;
//   - the decision log never carries the token.
//
// headers is "name:value" lines separated by '\n'; mode bit 0 selects
// header_map (raw values, one entry per line, encode_raw_headers) over the
// headers map (comma-joined repeats, Envoy's default); bit 1 puts header_map
// values in value instead of raw_value. route selects the
// context_extensions: 0 none, 1 cluster_id A, 2 cluster_id B, 3 mapping B,
// 4 an unknown cluster id, 5 an empty mapping name.
func FuzzCheck(f *testing.F) {
	f.Add(uint8(0), uint8(0), "authorization:Bearer "+fuzzToken)
	f.Add(uint8(1), uint8(1), "authorization:Bearer "+fuzzToken)
	f.Add(uint8(3), uint8(0), "authorization:bearer "+fuzzToken)
	f.Add(uint8(1), uint8(2), "authorization:Bearer "+fuzzToken)
	f.Add(uint8(1), uint8(3), "authorization:Bearer "+fuzzToken)
	f.Add(uint8(1), uint8(4), "authorization:Bearer "+fuzzToken)
	f.Add(uint8(0), uint8(5), "authorization:Bearer "+fuzzToken)
	f.Add(uint8(1), uint8(0), "authorization:Bearer "+fuzzToken+"\nauthorization:Bearer "+fuzzToken)
	f.Add(uint8(0), uint8(0), "Authorization:Bearer "+fuzzToken+"\nauthorization:Bearer x")
	f.Add(uint8(0), uint8(0), "authorization:Bearer "+fuzzToken+",Bearer other")
	f.Add(uint8(1), uint8(0), "authorization:Bearer "+fuzzToken+"\niMpErSoNaTe-uSeR:admin")
	f.Add(uint8(0), uint8(0), "impersonate-group:system:masters")
	f.Add(uint8(1), uint8(0), "authorization:Bearer "+fuzzToken+"\nimpersonate-extra-:x")
	f.Add(uint8(1), uint8(0), "authorization:Bearer  "+fuzzToken)
	f.Add(uint8(1), uint8(0), "authorization:Bearer "+fuzzToken+" ")
	f.Add(uint8(1), uint8(0), "authorization:Bearer\t"+fuzzToken)
	f.Add(uint8(1), uint8(0), "authorization:Basic YWRtaW46YWRtaW4=")
	f.Add(uint8(1), uint8(0), "authorization:Bearer k8s-aws-v1.\xff\xfe\x00")
	f.Add(uint8(2), uint8(0), "authorization:Bearer "+strings.Repeat("A", 70000))
	f.Add(uint8(0), uint8(0), ":authority:x\n:path:/api\nx-forwarded-for:1.2.3.4")

	// One server for every input, as in production: the response cache and
	// counters carry over between requests. The fuzz function runs
	// sequentially within a worker process, so the log buffer is reset per
	// input without a lock.
	var logs bytes.Buffer
	s := newFuzzServer(f, &logs)
	f.Fuzz(func(t *testing.T, mode, route uint8, headers string) {
		logs.Reset()
		req, lines := fuzzRequest(mode, route, headers)

		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("Check returned a gRPC error (Envoy's failure mode would decide): %v", err)
		}
		if resp == nil {
			t.Fatal("nil response")
		}
		wantOK := fuzzWantOK(mode, route, lines)
		if ok := resp.GetOkResponse(); ok != nil {
			if !wantOK {
				t.Fatalf("OK for a request that must be denied (mode %d route %d):\n%q", mode, route, headers)
			}
			checkFuzzOK(t, resp)
		} else {
			if wantOK {
				t.Fatalf("denied (%s) a request with the one valid token and no impersonation header:\n%q",
					resp.GetStatus().GetMessage(), headers)
			}
			checkFuzzDenied(t, resp, lines)
		}
		checkNoTokenIn(t, "the decision log", logs.String(), lines)
	})
}

func newFuzzServer(t testing.TB, logs *bytes.Buffer) *Server {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(logs), zapcore.DebugLevel))
	s, err := New(Options{
		Verifier: fuzzVerifier{},
		Clusters: []Cluster{
			{Name: "a", ID: fuzzClusterA, Mapper: fuzzMapper{maps: true}},
			{Name: "b", ID: fuzzClusterB, Mapper: fuzzMapper{}},
		},
		Upstream:   fuzzBearer{},
		Logger:     log,
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type headerLine struct{ name, value string }

func fuzzRequest(mode, route uint8, headers string) (*authv3.CheckRequest, []headerLine) {
	var lines []headerLine
	for _, l := range strings.Split(headers, "\n") {
		name, value, _ := strings.Cut(l, ":")
		if l == "" {
			continue
		}
		lines = append(lines, headerLine{name, value})
	}
	httpReq := &authv3.AttributeContext_HttpRequest{Id: "fuzz", Method: "GET", Path: "/api"}
	if mode&1 != 0 {
		hm := &corev3.HeaderMap{}
		for _, l := range lines {
			hv := &corev3.HeaderValue{Key: l.name}
			if mode&2 != 0 {
				hv.Value = l.value
			} else {
				hv.RawValue = []byte(l.value)
			}
			hm.Headers = append(hm.Headers, hv)
		}
		httpReq.HeaderMap = hm
	} else {
		// Envoy's headers map: one key per name, repeats comma-joined.
		m := map[string]string{}
		for _, l := range lines {
			if prev, ok := m[l.name]; ok {
				m[l.name] = prev + "," + l.value
			} else {
				m[l.name] = l.value
			}
		}
		httpReq.Headers = m
	}
	var ext map[string]string
	switch route % 6 {
	case 1:
		ext = map[string]string{ExtensionClusterID: fuzzClusterA}
	case 2:
		ext = map[string]string{ExtensionClusterID: fuzzClusterB}
	case 3:
		ext = map[string]string{ExtensionMapping: "b"}
	case 4:
		ext = map[string]string{ExtensionClusterID: "cluster-z"}
	case 5:
		ext = map[string]string{ExtensionMapping: ""}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: httpReq},
		ContextExtensions: ext,
	}}, lines
}

// fuzzWantOK is the specification, written independently of request.go:
// exactly one Authorization value (after Envoy's joining), "Bearer" in any
// case, one space, the valid token; no header named impersonate-* in any
// case; a route whose cluster id and mapping are cluster A's.
func fuzzWantOK(mode, route uint8, lines []headerLine) bool {
	if r := route % 6; r != 0 && r != 1 {
		return false
	}
	var auth []string
	if mode&1 == 0 {
		joined := map[string][]string{}
		var order []string
		for _, l := range lines {
			if _, ok := joined[l.name]; !ok {
				order = append(order, l.name)
			}
			joined[l.name] = append(joined[l.name], l.value)
		}
		for _, name := range order {
			if strings.EqualFold(name, "authorization") {
				auth = append(auth, strings.Join(joined[name], ","))
			}
		}
	} else {
		for _, l := range lines {
			if strings.EqualFold(l.name, "authorization") {
				auth = append(auth, l.value)
			}
		}
	}
	for _, l := range lines {
		if len(l.name) >= len("impersonate-") && strings.EqualFold(l.name[:len("impersonate-")], "impersonate-") {
			return false
		}
	}
	if len(auth) != 1 || len(auth[0]) < len("Bearer ") {
		return false
	}
	return strings.EqualFold(auth[0][:len("Bearer ")], "Bearer ") && auth[0][len("Bearer "):] == fuzzToken
}

// fuzzAllowedOKHeaders is the reviewed Envoy config's
// decoder_header_mutation_rules allow-list (docs/envoy-facts.md F4).
func fuzzAllowedOKHeader(name string) bool {
	switch name {
	case "authorization", "impersonate-user", "impersonate-uid":
		return true
	}
	return strings.HasPrefix(name, "impersonate-extra-") && len(name) > len("impersonate-extra-")
}

func checkFuzzOK(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	if c := resp.GetStatus().GetCode(); c != 0 {
		t.Errorf("OK response with gRPC status %d", c)
	}
	ok := resp.GetOkResponse()
	count := map[string]int{}
	for _, h := range ok.GetHeaders() {
		name := h.GetHeader().GetKey()
		count[name]++
		if !fuzzAllowedOKHeader(name) {
			t.Errorf("OK sets %q, outside the reviewed mutation allow-list", name)
		}
		if strings.ContainsAny(h.GetHeader().GetValue(), "\r\n\x00") {
			t.Errorf("OK header %s has a CR, LF or NUL", name)
		}
	}
	if count["impersonate-user"] != 1 || count["authorization"] != 1 {
		t.Errorf("OK sets impersonate-user %d and authorization %d times, want 1 each", count["impersonate-user"], count["authorization"])
	}
	for _, h := range ok.GetHeaders() {
		if h.GetHeader().GetKey() == "authorization" && h.GetHeader().GetValue() != fuzzProxyAuth {
			t.Error("OK does not replace the client's Authorization with the proxy's")
		}
		if h.GetHeader().GetKey() == "impersonate-user" && h.GetHeader().GetValue() != fuzzUser.Username {
			t.Errorf("impersonate-user %q, want %q", h.GetHeader().GetValue(), fuzzUser.Username)
		}
	}
	for _, r := range ok.GetHeadersToRemove() {
		if count[strings.ToLower(r)] > 0 {
			t.Errorf("%q is both set and removed: Envoy removes after setting", r)
		}
	}
	md := resp.GetDynamicMetadata().GetFields()
	var groups []string
	for i := 0; i < envoy.GroupSlots; i++ {
		if v, ok := md[envoy.GroupSlotKey(i)]; ok && v.GetStringValue() != "" {
			groups = append(groups, v.GetStringValue())
		}
	}
	if strings.Join(groups, "\n") != strings.Join(fuzzUser.Groups, "\n") {
		t.Errorf("group slots %q, want %q", groups, fuzzUser.Groups)
	}
}

func checkFuzzDenied(t *testing.T, resp *authv3.CheckResponse, lines []headerLine) {
	t.Helper()
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("neither OK nor Denied: %v", resp)
	}
	if resp.GetStatus().GetCode() == 0 {
		t.Error("Denied response with gRPC status OK")
	}
	code := int(d.GetStatus().GetCode())
	switch code {
	case 401, 403, 429, 503:
	case 500:
		// unknown_cluster is a 500 for a misconfigured route; anything else
		// is a recovered panic or an unclassified error.
		if resp.GetStatus().GetMessage() != "unknown_cluster" {
			t.Fatalf("internal error (%s) for request %q", resp.GetStatus().GetMessage(), lines)
		}
	default:
		t.Fatalf("denied with HTTP %d", code)
	}
	var st metav1.Status
	dec := json.NewDecoder(strings.NewReader(d.GetBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("denial body is not a Status: %v\n%s", err, d.GetBody())
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure || int(st.Code) != code || st.Message == "" {
		t.Errorf("denial body %+v does not describe HTTP %d", st, code)
	}
	var contentType, retryAfter bool
	for _, h := range d.GetHeaders() {
		name := h.GetHeader().GetKey()
		retryAfter = retryAfter || (name == "retry-after" && h.GetHeader().GetValue() != "")
		if strings.HasPrefix(strings.ToLower(name), "impersonate-") || strings.EqualFold(name, "authorization") {
			t.Errorf("denial sets %q", name)
		}
		contentType = contentType || (name == "content-type" && h.GetHeader().GetValue() == "application/json")
	}
	if !contentType {
		t.Error("denial without content-type: application/json")
	}
	// A 429 or 503 says when to come back: client-go retries only then.
	if (code == 429 || code == 503) != retryAfter {
		t.Errorf("HTTP %d with Retry-After %v", code, retryAfter)
	}
	checkNoTokenIn(t, "the denial body", d.GetBody(), lines)
	if ok := resp.GetOkResponse(); ok != nil {
		t.Error("denial carries an OkHttpResponse")
	}
}

// checkNoTokenIn fails if text holds a bearer token of the request.
func checkNoTokenIn(t *testing.T, where, text string, lines []headerLine) {
	t.Helper()
	if leaksToken(text, lines) {
		t.Errorf("%s contains the request's token", where)
	}
}

// leaksToken reports whether text holds a k8s-aws-v1 token of the request.
// Short values are skipped: they can be substrings of fixed text by chance.
func leaksToken(text string, lines []headerLine) bool {
	for _, l := range lines {
		_, tok, _ := strings.Cut(l.value, " ")
		if len(tok) >= 16 && strings.HasPrefix(tok, "k8s-aws-v1.") && strings.Contains(text, tok) {
			return true
		}
	}
	return false
}

// TestFuzzCheckOracle pins the fuzz target's own specification on cases
// whose answer is known, so that a broken oracle (one that always says
// "deny", say) cannot make the fuzz target vacuous.
func TestFuzzCheckOracle(t *testing.T) {
	cases := map[string]struct {
		mode, route uint8
		headers     string
		wantOK      bool
	}{
		"valid, headers map":                 {0, 0, "authorization:Bearer " + fuzzToken, true},
		"valid, header_map raw":              {1, 1, "Authorization:bearer " + fuzzToken, true},
		"valid, header_map value":            {3, 0, "authorization:BEARER " + fuzzToken, true},
		"cluster B route":                    {1, 2, "authorization:Bearer " + fuzzToken, false},
		"mapping B route":                    {1, 3, "authorization:Bearer " + fuzzToken, false},
		"unknown route":                      {1, 4, "authorization:Bearer " + fuzzToken, false},
		"two lines":                          {1, 0, "authorization:Bearer " + fuzzToken + "\nauthorization:Bearer " + fuzzToken, false},
		"two lines joined by map":            {0, 0, "authorization:Bearer " + fuzzToken + "\nauthorization:Bearer " + fuzzToken, false},
		"mixed-case impersonation":           {1, 0, "authorization:Bearer " + fuzzToken + "\nIMPERSONATE-group:x", false},
		"impersonation with an empty value":  {0, 0, "authorization:Bearer " + fuzzToken + "\nimpersonate-uid:", false},
		"two spaces":                         {1, 0, "authorization:Bearer  " + fuzzToken, false},
		"trailing space":                     {1, 0, "authorization:Bearer " + fuzzToken + " ", false},
		"other token":                        {1, 0, "authorization:Bearer k8s-aws-v1.other", false},
		"no token":                           {1, 0, "x:y", false},
		"comma-joined second Bearer":         {1, 0, "authorization:Bearer " + fuzzToken + ",Bearer x", false},
		"authorization under two name cases": {0, 0, "Authorization:Bearer " + fuzzToken + "\nauthorization:Bearer " + fuzzToken, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			s := newFuzzServer(t, &logs)
			req, lines := fuzzRequest(tc.mode, tc.route, tc.headers)
			if got := fuzzWantOK(tc.mode, tc.route, lines); got != tc.wantOK {
				t.Fatalf("oracle says OK=%v, want %v", got, tc.wantOK)
			}
			resp, err := s.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if gotOK := resp.GetOkResponse() != nil; gotOK != tc.wantOK {
				t.Fatalf("Check OK=%v (%s), want %v", gotOK, resp.GetStatus().GetMessage(), tc.wantOK)
			}
			if tc.wantOK {
				checkFuzzOK(t, resp)
			} else {
				checkFuzzDenied(t, resp, lines)
			}
		})
	}
}

// TestFuzzCheckDetectsLeaks proves the leak check can fail: a text that
// holds the token must be reported, one that holds its fingerprint not.
func TestFuzzCheckDetectsLeaks(t *testing.T) {
	lines := []headerLine{{"authorization", "Bearer " + fuzzToken}}
	if !leaksToken(`{"msg":"decision","token":"`+fuzzToken+`"}`, lines) {
		t.Error("a log containing the token was not reported")
	}
	if leaksToken(`{"msg":"decision","token":"`+token.Fingerprint(fuzzToken)+`"}`, lines) {
		t.Error("a log containing only the fingerprint was reported")
	}
}
