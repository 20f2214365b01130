package check

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Test-side spelling of the wire contract. These are written out here, not
// taken from the production code, so that a change to what we send fails a
// test.

const (
	setH    = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	appendH = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
)

type hdr struct {
	name, value string
	action      corev3.HeaderValueOption_HeaderAppendAction
}

// wantOK is an OK answer: header sets, group slots in dynamic metadata
// (impersonate_group_<i>, see envoy/contract.go), removals.
func wantOK(headers []hdr, groups []string, remove ...string) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{HeadersToRemove: remove}
	slots := map[string]*structpb.Value{}
	for i, g := range groups {
		slots[fmt.Sprintf("impersonate_group_%d", i)] = structpb.NewStringValue(g)
	}
	for _, h := range headers {
		ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: h.name, Value: h.value}, AppendAction: h.action,
		})
	}
	return &authv3.CheckResponse{
		Status:          &status.Status{Code: 0},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: &structpb.Struct{Fields: slots},
	}
}

// denial is the expected shape of a Denied response.
type denial struct {
	code       int
	grpcCode   codes.Code
	label      string
	reason     string
	message    string
	retryAfter string
}

// Every Denied shape, keyed by metric reason label.
var denials = map[string]denial{
	"no_token": {401, codes.Unauthenticated, "no_token", "Unauthorized",
		"Unauthorized: this endpoint needs an AWS IAM bearer token (as made by aws eks get-token)", ""},
	"multiple_authorization": {401, codes.Unauthenticated, "multiple_authorization", "Unauthorized",
		"Unauthorized: the request carries more than one Authorization value", ""},
	"not_bearer": {401, codes.Unauthenticated, "not_bearer", "Unauthorized",
		"Unauthorized: the Authorization scheme must be Bearer", ""},
	"empty_token": {401, codes.Unauthenticated, "empty_token", "Unauthorized",
		"Unauthorized: the bearer token is empty", ""},
	"malformed_authorization": {401, codes.Unauthenticated, "malformed_authorization", "Unauthorized",
		"Unauthorized: the Authorization header is malformed", ""},
	"not_aws_token": {401, codes.Unauthenticated, "not_aws_token", "Unauthorized",
		"Unauthorized: the bearer token is not a k8s-aws-v1 token (as made by aws eks get-token)", ""},
	"malformed_token": {401, codes.Unauthenticated, "malformed_token", "Unauthorized",
		"Unauthorized: the token is malformed or expired; get a new one", ""},
	"sts_rejected": {401, codes.Unauthenticated, "sts_rejected", "Unauthorized",
		"Unauthorized: AWS STS did not accept the token (expired or revoked credentials, or a token for another cluster)", ""},
	"impersonation_header": {403, codes.PermissionDenied, "impersonation_header", "Forbidden",
		"Forbidden: Impersonate-* headers are not accepted through this proxy (kubectl --as is not supported here)", ""},
	"impersonation_without_user": {400, codes.InvalidArgument, "impersonation_without_user", "BadRequest",
		"Bad request: Impersonate-Group, Impersonate-Uid and Impersonate-Extra-* need Impersonate-User", ""},
	"impersonation_invalid": {400, codes.InvalidArgument, "impersonation_invalid", "BadRequest",
		"Bad request: the Impersonate-* headers cannot be passed on unambiguously (a repeated Impersonate-User or Impersonate-Uid, an empty value, a comma or control character in a name, an unknown Impersonate-* header, or more than 32 attributes)", ""},
	"reserved_extra": {403, codes.PermissionDenied, "reserved_extra", "Forbidden",
		"Forbidden: Impersonate-Extra keys under kube-iam-authz.io/ are set only by this proxy", ""},
	// The generic form; a real refusal carries the API server's wording
	// (wantImpersonationDenied).
	"impersonation_denied": {403, codes.PermissionDenied, "impersonation_denied", "Forbidden",
		"Forbidden: the impersonation is not allowed", ""},
	"sar_unavailable": {503, codes.Unavailable, "sar_unavailable", "ServiceUnavailable",
		"Service unavailable: the API server could not be asked whether the impersonation is allowed; retry later", "1"},
	"unmapped": {403, codes.PermissionDenied, "unmapped", "Forbidden",
		"Forbidden: the AWS identity is not mapped to a Kubernetes user on this cluster", ""},
	"mapping_refused": {403, codes.PermissionDenied, "mapping_refused", "Forbidden",
		"Forbidden: the mapping for this AWS identity was refused", ""},
	"invalid_mapping": {403, codes.PermissionDenied, "invalid_mapping", "Forbidden",
		"Forbidden: the mapping for this AWS identity produced a user that cannot be sent to the API server", ""},
	"too_many_groups": {403, codes.PermissionDenied, "too_many_groups", "Forbidden",
		"Forbidden: the AWS identity maps to more groups than this proxy can pass on", ""},
	"unsupported_identity": {403, codes.PermissionDenied, "unsupported_identity", "Forbidden",
		"Forbidden: this kind of AWS identity is not supported", ""},
	"throttled": {429, codes.ResourceExhausted, "throttled", "TooManyRequests",
		"Too many requests: token verification is being rate limited; retry later", "1"},
	"sts_unavailable": {503, codes.Unavailable, "sts_unavailable", "ServiceUnavailable",
		"Service unavailable: AWS STS could not be reached to verify the token; retry later", "1"},
	"mapping_unavailable": {503, codes.Unavailable, "mapping_unavailable", "ServiceUnavailable",
		"Service unavailable: the identity mapping could not be evaluated right now; retry later", "1"},
	"not_ready": {503, codes.Unavailable, "not_ready", "ServiceUnavailable",
		"Service unavailable: the authenticating proxy is starting; retry later", "1"},
	"timeout": {503, codes.Unavailable, "timeout", "ServiceUnavailable",
		"Service unavailable: token verification timed out; retry later", "1"},
	"canceled": {503, codes.Unavailable, "canceled", "ServiceUnavailable",
		"Service unavailable: the request was cancelled", "1"},
	"unknown_cluster": {500, codes.Internal, "unknown_cluster", "InternalError",
		"Internal error: this route is not configured correctly on the authenticating proxy", ""},
	"internal": {500, codes.Internal, "internal", "InternalError",
		"Internal error: the request could not be authenticated", ""},
}

func wantDenied(t *testing.T, label string) *authv3.CheckResponse {
	t.Helper()
	d, ok := denials[label]
	if !ok {
		t.Fatalf("no expected denial %q", label)
	}
	return d.response()
}

func (d denial) withRetryAfter(s string) denial { d.retryAfter = s; return d }

func (d denial) response() *authv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}, AppendAction: setH}}
	if d.code == 401 {
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: "Bearer"}, AppendAction: setH})
	}
	if d.retryAfter != "" {
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "retry-after", Value: d.retryAfter}, AppendAction: setH})
	}
	body := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`,
		d.message, d.reason, d.code)
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(d.grpcCode), Message: d.label},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.code)},
			Headers: headers,
			Body:    body,
		}},
	}
}

// assertResponse compares the entire CheckResponse and checks the
// invariants every response must hold.
func assertResponse(t *testing.T, got, want *authv3.CheckResponse) {
	t.Helper()
	checkInvariants(t, got)
	want = proto.Clone(want).(*authv3.CheckResponse)
	if want.DynamicMetadata == nil {
		want.DynamicMetadata = &structpb.Struct{}
	}
	if want.DynamicMetadata.Fields == nil {
		want.DynamicMetadata.Fields = map[string]*structpb.Value{}
	}
	want.DynamicMetadata.Fields["decision_id"] = structpb.NewStringValue(decisionID(t, got))
	if !proto.Equal(got, want) {
		t.Errorf("CheckResponse mismatch\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
}

// checkInvariants: no header is both set and removed (Envoy removes after
// mutating, so it would be lost); an OK sets exactly one impersonate-user
// and never forwards a client credential; a denial has a body.
func checkInvariants(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	if resp == nil {
		t.Fatal("nil CheckResponse")
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		if resp.GetStatus().GetCode() == 0 {
			t.Error("OK status without an OkHttpResponse")
		}
		if resp.GetDeniedResponse().GetBody() == "" {
			t.Error("denial without a body")
		}
		return
	}
	if resp.GetStatus().GetCode() != 0 {
		t.Errorf("OkHttpResponse with status %d", resp.GetStatus().GetCode())
	}
	if len(ok.GetHeaders()) == 0 && len(ok.GetHeadersToRemove()) == 0 {
		// A pass-through (--passthrough-non-aws-tokens) changes nothing:
		// then it must fill no group slot either.
		for k := range resp.GetDynamicMetadata().GetFields() {
			if strings.HasPrefix(k, "impersonate_group_") {
				t.Errorf("pass-through OK fills group slot %q", k)
			}
		}
		return
	}
	set := map[string]int{}
	for _, h := range ok.GetHeaders() {
		set[strings.ToLower(h.GetHeader().GetKey())]++
	}
	for _, r := range ok.GetHeadersToRemove() {
		if set[strings.ToLower(r)] > 0 {
			t.Errorf("header %q is both set and removed", r)
		}
	}
	for name, n := range set {
		if !allowedMutation.MatchString(name) {
			t.Errorf("OK sets %q, which Envoy's decoder_header_mutation_rules refuse (500)", name)
		}
		if n != 1 {
			t.Errorf("OK sets %q %d times; Envoy keeps only the last (envoy-facts F1)", name, n)
		}
	}
	if set["impersonate-user"] != 1 {
		t.Errorf("OK sets impersonate-user %d times, want 1", set["impersonate-user"])
	}
	if set["authorization"] == 0 && !contains(ok.GetHeadersToRemove(), "authorization") {
		t.Error("OK neither replaces nor removes the client's authorization")
	}
}

// decisionID returns the response's decision id after checking its form.
func decisionID(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	id := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	if !decisionIDPattern.MatchString(id) {
		t.Errorf("decision_id %q is not 16 hex digits", id)
	}
	return id
}

// allowedMutation is the reviewed Envoy allow-list (envoy/sidecar.yaml
// decoder_header_mutation_rules).
var allowedMutation = regexp.MustCompile(`^(authorization|impersonate-user|impersonate-uid|impersonate-extra-.+)$`)

var decisionIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// request builds a CheckRequest with the headers map (Envoy's default).
func request(headers map[string]string, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: "GET", Path: "/api", Headers: headers,
		}},
		ContextExtensions: ext,
	}}
}

// rawRequest builds a CheckRequest with header_map raw values (Envoy's
// encode_raw_headers), one entry per header line.
func rawRequest(lines ...string) *authv3.CheckRequest {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(lines); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: lines[i], RawValue: []byte(lines[i+1])})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: "GET", Path: "/api", HeaderMap: hm,
		}},
	}}
}
