package check

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

const headerAuthorization = "authorization"

var (
	appendOrAdd    = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	overwriteOrAdd = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
)

func headerOption(name, value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: action,
	}
}

// okResponse builds the OK answer: the impersonation headers and the
// upstream credential.
//
// Single-valued headers use OVERWRITE_IF_EXISTS_OR_ADD. Groups must reach
// the API server as one line each: the first group overwrites, the others
// use APPEND_IF_EXISTS_OR_ADD, which Envoy applies to a header that is not
// one of its predefined inline headers by adding a separate entry (only
// inline headers are comma-concatenated). The request cannot already carry
// an impersonate-group line (Check refuses those), so the overwrite is
// defence in depth.
//
// Nothing we set is also listed in headers_to_remove: Envoy applies removals
// after mutations, so a header in both would be dropped. With a bearer
// source, the client's Authorization is overwritten; without one (mTLS to
// the upstream) it is removed.
func okResponse(hs []impersonate.Header, bearer string) *authv3.CheckResponse {
	opts := make([]*corev3.HeaderValueOption, 0, len(hs)+1)
	seenGroup := false
	for _, h := range hs {
		action := overwriteOrAdd
		if h.Name == impersonate.HeaderGroup {
			if seenGroup {
				action = appendOrAdd
			}
			seenGroup = true
		}
		opts = append(opts, headerOption(h.Name, h.Value, action))
	}
	ok := &authv3.OkHttpResponse{Headers: opts}
	if bearer != "" {
		ok.Headers = append(ok.Headers, headerOption(headerAuthorization, "Bearer "+bearer, overwriteOrAdd))
	} else {
		ok.HeadersToRemove = []string{headerAuthorization}
	}
	return &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// deniedResponse builds the answer for a refused request: the HTTP status,
// a Kubernetes Status body as application/json, WWW-Authenticate on a 401
// (RFC 9110 §11.6.1 requires a challenge), and Retry-After on a 429.
func deniedResponse(o *outcome, body string, retryAfterSeconds int) *authv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{headerOption("content-type", "application/json", overwriteOrAdd)}
	if o.httpCode == 401 {
		headers = append(headers, headerOption("www-authenticate", "Bearer", overwriteOrAdd))
	}
	if retryAfterSeconds > 0 {
		headers = append(headers, headerOption("retry-after", strconv.Itoa(retryAfterSeconds), overwriteOrAdd))
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(o.grpcCode), Message: o.label},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(o.httpCode)},
			Headers: headers,
			Body:    body,
		}},
	}
}

// MetadataDecisionID is the dynamic metadata key carrying the decision id.
// Envoy stores CheckResponse.dynamic_metadata under the filter's namespace,
// so an access log reads it as
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)% and joins the
// server's decision line without either carrying the token.
const MetadataDecisionID = "decision_id"

// withDecision wraps a shared (immutable) response in a per-request one
// carrying the decision id. The inner messages are shared, not copied.
func withDecision(shared *authv3.CheckResponse, id string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status:       shared.Status,
		HttpResponse: shared.HttpResponse,
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			MetadataDecisionID: structpb.NewStringValue(id),
		}},
	}
}

// responseKey identifies a cached OK response: the identity and the cluster
// whose mapping produced the user.
type responseKey struct {
	cluster int
	id      identity.Identity
}

type responseEntry struct {
	username string
	groups   []string
	bearer   string
	resp     *authv3.CheckResponse
}

// responseCache keeps built OK responses so that a cache-hit Check does not
// rebuild a dozen header protos. An entry is used only if the freshly
// mapped user and the current upstream token are the ones it was built for,
// so it can never answer with a stale mapping. The responses are shared
// between concurrent RPCs: gRPC only reads them (protobuf-go marshalling is
// safe for concurrent use) and nothing mutates them after construction.
//
// It is bounded by dropping everything when it grows past max: entries are
// cheap to rebuild, and the verification cache is the real cache.
type responseCache struct {
	max     int64
	entries atomic.Pointer[sync.Map]
	size    atomic.Int64
}

func newResponseCache(max int) *responseCache {
	c := &responseCache{max: int64(max)}
	c.entries.Store(new(sync.Map))
	return c
}

func (c *responseCache) get(k responseKey, user mapping.User, bearer string) *authv3.CheckResponse {
	if c.max <= 0 {
		return nil
	}
	v, ok := c.entries.Load().Load(k)
	if !ok {
		return nil
	}
	e := v.(*responseEntry)
	if e.username != user.Username || e.bearer != bearer || !slices.Equal(e.groups, user.Groups) {
		return nil
	}
	return e.resp
}

func (c *responseCache) put(k responseKey, user mapping.User, bearer string, resp *authv3.CheckResponse) {
	if c.max <= 0 {
		return
	}
	m := c.entries.Load()
	e := &responseEntry{username: user.Username, groups: slices.Clone(user.Groups), bearer: bearer, resp: resp}
	if _, loaded := m.Swap(k, e); loaded {
		return
	}
	if c.size.Add(1) > c.max {
		c.entries.Store(new(sync.Map))
		c.size.Store(0)
	}
}
