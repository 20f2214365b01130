package check

import (
	"crypto/subtle"
	"fmt"
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

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
)

const headerAuthorization = "authorization"

// overwriteOrAdd is the action of every header we send. Envoy 1.40's gRPC
// ext_authz treats every action as a set anyway (envoy-facts F1); spelling
// it out keeps the response honest about what happens.
const overwriteOrAdd = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD

func headerOption(name, value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: action,
	}
}

// Group slots. Envoy 1.40's gRPC ext_authz applies every
// OkHttpResponse.headers entry as a set (it ignores append_action; the
// deprecated append=true comma-joins onto an existing line and adds nothing
// otherwise: docs/envoy-facts.md F1), so N groups can never arrive as N
// Impersonate-Group lines that way. Instead the reviewed route config adds
// one impersonate-group line per non-empty dynamic metadata key
// impersonate_group_0 .. impersonate_group_63 (F5), and the server fills
// those keys. The contract lives in envoy/contract.go (package envoy); a test
// pins these copies to it.
const (
	// MaxGroups is the number of group slots the Envoy route reads. A user
	// with more groups is denied, never truncated: a dropped group could
	// be one RBAC relies on, and truncation would hide a mapping error.
	MaxGroups = 64
	// groupSlotPrefix + index is a slot's dynamic metadata key.
	groupSlotPrefix = "impersonate_group_"
)

// groupSlotKeys are the slot keys, built once.
var groupSlotKeys = func() (keys [MaxGroups]string) {
	for i := range keys {
		keys[i] = groupSlotPrefix + strconv.Itoa(i)
	}
	return keys
}()

// okResponse builds the OK answer for the impersonation header lines of
// package impersonate: the single-valued ones as header sets (all
// OVERWRITE_IF_EXISTS_OR_ADD, which is what Envoy does with any action),
// the groups as dynamic metadata slots, and the upstream credential.
//
// Nothing we set is also listed in headers_to_remove: Envoy applies removals
// after the sets, so a header in both would be dropped (F3). With a bearer
// source the client's Authorization is overwritten; without one (mTLS to
// the upstream) it is removed.
func okResponse(hs []impersonate.Header, bearer string) (*authv3.CheckResponse, error) {
	opts := make([]*corev3.HeaderValueOption, 0, len(hs)+1)
	slots := map[string]*structpb.Value{}
	for _, h := range hs {
		if h.Name != impersonate.HeaderGroup {
			opts = append(opts, headerOption(h.Name, h.Value, overwriteOrAdd))
			continue
		}
		if len(slots) == MaxGroups {
			return nil, outcome.ErrTooManyGroups
		}
		slots[groupSlotKeys[len(slots)]] = structpb.NewStringValue(h.Value)
	}
	return withCredential(opts, bearer, slots), nil
}

// withCredential completes an OK answer: the header sets opts plus the
// upstream credential (the client's Authorization overwritten with the
// proxy's bearer token, or removed when the proxy authenticates with mTLS),
// and the dynamic metadata fields.
func withCredential(opts []*corev3.HeaderValueOption, bearer string, metadata map[string]*structpb.Value) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{Headers: opts}
	if bearer != "" {
		ok.Headers = append(ok.Headers, headerOption(headerAuthorization, "Bearer "+bearer, overwriteOrAdd))
	} else {
		ok.HeadersToRemove = []string{headerAuthorization}
	}
	return &authv3.CheckResponse{
		Status:          &status.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: &structpb.Struct{Fields: metadata},
	}
}

// nestedResponse builds the OK answer for an allowed nested impersonation:
// the header sets of impersonate.NestedHeaders and the upstream credential.
// No group slot is filled: the client's Impersonate-Group lines, each one
// authorized, pass through Envoy untouched (a slot line would be added next
// to them, envoy-facts F5), and so do its Impersonate-Extra-* lines. The
// client's Impersonate-User and -Uid lines are replaced by identical sets.
func nestedResponse(hs []impersonate.Header, bearer string) (*authv3.CheckResponse, error) {
	opts := make([]*corev3.HeaderValueOption, 0, len(hs)+1)
	for _, h := range hs {
		if h.Name == impersonate.HeaderGroup {
			return nil, fmt.Errorf("%w: nested impersonation sets no group line", outcome.ErrInternal)
		}
		opts = append(opts, headerOption(h.Name, h.Value, overwriteOrAdd))
	}
	return withCredential(opts, bearer, map[string]*structpb.Value{}), nil
}

// passthroughResponse is the OK answer that changes nothing: no header set
// or removed, no group slot filled. Envoy forwards the client's own
// Authorization and Impersonate-* lines, and the API server authenticates
// and authorizes the request itself (--passthrough-non-aws-tokens).
func passthroughResponse() *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status:          &status.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{}},
	}
}

// deniedResponse builds the answer for a refused request: the HTTP status,
// a Kubernetes Status body as application/json, WWW-Authenticate on a 401
// (RFC 9110 §11.6.1 requires a challenge), and Retry-After on a 429.
func deniedResponse(o *outcome.Outcome, body string, retryAfterSeconds int) *authv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{headerOption("content-type", "application/json", overwriteOrAdd)}
	if o.HTTPCode() == 401 {
		headers = append(headers, headerOption("www-authenticate", "Bearer", overwriteOrAdd))
	}
	if retryAfterSeconds > 0 {
		headers = append(headers, headerOption("retry-after", strconv.Itoa(retryAfterSeconds), overwriteOrAdd))
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(o.GRPCCode()), Message: o.Label()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(o.HTTPCode())},
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

// checkState is what one Check allocates, in one allocation: the decision,
// the context carrying its trace, and the per-request response envelope
// around a shared (immutable) answer.
type checkState struct {
	d    decision
	ctx  cache.TraceContext
	resp authv3.CheckResponse
	md   structpb.Struct
	id   structpb.Value
	ids  structpb.Value_StringValue
}

// respond wraps a shared (immutable) response in the per-request one: the
// inner messages and metadata values are shared, and the metadata map is
// copied with the decision id added. shared is never modified: cached OK
// responses are answered concurrently.
func (st *checkState) respond(shared *authv3.CheckResponse, id string) *authv3.CheckResponse {
	base := shared.GetDynamicMetadata().GetFields()
	fields := make(map[string]*structpb.Value, len(base)+1)
	for k, v := range base {
		fields[k] = v
	}
	st.ids.StringValue = id
	st.id.Kind = &st.ids
	fields[MetadataDecisionID] = &st.id
	st.md.Fields = fields
	st.resp.Status = shared.Status
	st.resp.HttpResponse = shared.HttpResponse
	st.resp.DynamicMetadata = &st.md
	return &st.resp
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

func (c *responseCache) get(k responseKey, user kubeuser.User, bearer string) *authv3.CheckResponse {
	if c.max <= 0 {
		return nil
	}
	v, ok := c.entries.Load().Load(k)
	if !ok {
		return nil
	}
	e := v.(*responseEntry)
	// The bearer is the proxy's own credential: compared in constant time,
	// like every secret, although no client controls either side.
	if e.username != user.Username || subtle.ConstantTimeCompare([]byte(e.bearer), []byte(bearer)) != 1 ||
		!slices.Equal(e.groups, user.Groups) {
		return nil
	}
	return e.resp
}

func (c *responseCache) put(k responseKey, user kubeuser.User, bearer string, resp *authv3.CheckResponse) {
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
