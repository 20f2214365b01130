package envoy

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ErrPolicy is wrapped by the error CheckPolicy returns when a config departs from the
// reviewed policy.
var ErrPolicy = errors.New("envoy config violates the kube-iam-authz policy")

// Rule names one policy rule. The values are stable: tests and operators match on them.
type Rule string

// The policy rules. Each comment says what the rule demands and why.
const (
	// RuleAdminLoopback: the admin interface listens on loopback only (it can quit
	// Envoy and change runtime values).
	RuleAdminLoopback Rule = "admin-loopback"
	// RuleDownstreamTLS: every client-facing filter chain terminates TLS (bearer tokens
	// travel in it).
	RuleDownstreamTLS Rule = "downstream-tls"
	// RuleFilterChain: every listener is an HTTP connection manager whose filters are
	// exactly ext_authz then router, so no request reaches a cluster unchecked.
	RuleFilterChain Rule = "filter-chain"
	// RuleRemoteAddress: use_remote_address true, xff_num_trusted_hops 0, no
	// internal_address_config, no original-IP extensions: the client cannot claim to
	// be internal and keep x-envoy-* headers or choose its X-Forwarded-For (anchors C.10).
	RuleRemoteAddress Rule = "remote-address"
	// RuleUnderscoreHeaders: headers with underscores are rejected (impersonate_user
	// smuggling through stacks that equate "_" and "-").
	RuleUnderscoreHeaders Rule = "underscore-headers"
	// RuleUpgrades: websocket and SPDY/3.1 upgrades are enabled (kubectl exec, attach,
	// port-forward) and the API server clusters speak HTTP/1.1, where SPDY exists.
	RuleUpgrades Rule = "upgrades"
	// RuleStreamBounds: max_stream_duration in (0, 15m] (one token lifetime: anchors
	// C.14), stream and connection idle timeouts set explicitly.
	RuleStreamBounds Rule = "stream-bounds"
	// RuleAccessLogSecrets: no access log format mentions Authorization, cookies or a
	// whole header map.
	RuleAccessLogSecrets Rule = "access-log-secrets"
	// RuleExtAuthzService: ext_authz uses the gRPC service, API V3, through an Envoy
	// cluster that exists and speaks HTTP/2.
	RuleExtAuthzService Rule = "ext-authz-service"
	// RuleFailureModeAllow: failure_mode_allow is false (CVE-2023-27488, CVE-2024-23324),
	// and routes drop a client-sent x-envoy-auth-failure-mode-allowed, which Envoy's
	// external-request sanitising does not strip.
	RuleFailureModeAllow Rule = "failure-mode-allow"
	// RuleExtAuthzTimeout: the gRPC timeout is explicit and at least MinExtAuthzTimeout
	// (Envoy's 200 ms default cannot cover an STS round trip).
	RuleExtAuthzTimeout Rule = "ext-authz-timeout"
	// RuleStatusOnError: status_on_error is 503.
	RuleStatusOnError Rule = "status-on-error"
	// RuleRequestBody: with_request_body is absent (decisions use headers only).
	RuleRequestBody Rule = "request-body"
	// RuleCheckHeaders: the Check request carries every header (no allowed_headers or
	// disallowed_headers), as raw lines (encode_raw_headers), so the server sees every
	// Impersonate-* and every repeated Authorization line.
	RuleCheckHeaders Rule = "check-headers"
	// RuleMutations: validate_mutations is on and decoder_header_mutation_rules restrict
	// the server to an allow-list (Authorization, Impersonate-User/Uid/Extra-*; not
	// Impersonate-Group, which ext_authz can only set or comma-join), failing the request
	// otherwise.
	RuleMutations Rule = "header-mutations"
	// RuleBypass: nothing can switch ext_authz off: no filter_enabled,
	// filter_enabled_metadata, shadow_mode, or per-route disabled.
	RuleBypass Rule = "ext-authz-bypass"
	// RuleRouteTimeout: routes to API servers have timeout 0s (watches, exec) set
	// explicitly; Envoy's 15s default would cut them.
	RuleRouteTimeout Rule = "route-timeout"
	// RuleUpstreamTLS: every API server cluster uses TLS with a trusted CA, SNI, and a
	// SAN matcher (a CA alone also accepts, e.g., kubelet serving certificates it signed).
	RuleUpstreamTLS Rule = "upstream-tls"
	// RuleGroupSlots: each route configuration adds Impersonate-Group lines from the
	// GroupSlots dynamic metadata slots, APPEND_IF_EXISTS_OR_ADD, skipping empty ones:
	// the only way Envoy 1.40 sends one line per group (docs/envoy-facts.md F1).
	RuleGroupSlots Rule = "group-slots"
	// RuleCertRotation: every certificate and CA (the listener's, each API server's CA,
	// any client certificate) comes through file-based SDS whose path_config_source has
	// a watched_directory holding it, and each SDS secret names its files by path and
	// watches their directory. Static tls_certificates and trusted_ca are read once at
	// start: a cert-manager renewal or a CA rotation would be ignored until a restart,
	// and a certificate could expire in service. Key material never sits inline in an
	// SDS file (it ships in a ConfigMap).
	RuleCertRotation Rule = "cert-rotation"
	// RuleClusterContext: with more than one API server, every route names its cluster
	// to the authz server (context_extensions cluster_id and mapping), one id per cluster.
	RuleClusterContext Rule = "cluster-context"
	// RuleStatsListener: a listener that routes to the admin interface (a cluster whose
	// endpoints are the admin address) is a stats listener: one HTTP connection manager
	// with only the router, and routes that answer directly or forward exactly
	// GET /stats/prometheus, unrewritten, to the admin. It is how Prometheus scrapes
	// Envoy without the admin interface (quitquitquit, runtime_modify) leaving loopback.
	RuleStatsListener Rule = "stats-listener"
)

// MinExtAuthzTimeout is the smallest ext_authz timeout the policy accepts. The server's
// own STS deadline must stay below the configured value (the reviewed configs use 6s
// against the server's 5s default).
const MinExtAuthzTimeout = time.Second

// MaxStreamDuration is the longest a stream may live: one k8s-aws-v1 token lifetime
// (STS honours a presigned GetCallerIdentity URL for 15 minutes after X-Amz-Date).
const MaxStreamDuration = 15 * time.Minute

// Context extension keys the authz server reads in multi-cluster mode.
const (
	ContextClusterID = "cluster_id"
	ContextMapping   = "mapping"
)

const (
	extAuthzFilter = "envoy.filters.http.ext_authz"
	tlsSocket      = "envoy.transport_sockets.tls"
	upstreamHTTP   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// accessLogForbidden are substrings (lower case) no access log configuration may
// contain: the places tokens live (Authorization, Sec-WebSocket-Protocol's
// "base64url.bearer.authorization.k8s.io." form, cookies) and whole-header dumps.
var accessLogForbidden = []string{"authorization", "cookie", "request.headers", "%req_without_query"}

// Violation is one way a config departs from the reviewed policy.
type Violation struct {
	Rule   Rule
	Where  string
	Detail string
}

func (v Violation) String() string { return fmt.Sprintf("[%s] %s: %s", v.Rule, v.Where, v.Detail) }

// PolicyError lists every violation found, so one run shows everything to fix.
type PolicyError struct{ Violations []Violation }

func (e *PolicyError) Error() string {
	lines := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		lines[i] = v.String()
	}
	return ErrPolicy.Error() + ":\n  " + strings.Join(lines, "\n  ")
}

// Unwrap lets errors.Is(err, ErrPolicy) match.
func (e *PolicyError) Unwrap() error { return ErrPolicy }

// CheckPolicy reports every way b departs from the reviewed policy, as a *PolicyError,
// or nil. It checks meaning, not layout: any config that keeps these properties passes.
func CheckPolicy(b *bootstrapv3.Bootstrap) error {
	c := &checker{b: b, clusters: map[string]*clusterv3.Cluster{}, clusterIDs: map[string]map[string]bool{}}
	for _, cl := range b.GetStaticResources().GetClusters() {
		c.clusters[cl.GetName()] = cl
	}
	c.statsListeners, c.adminClusters = statsParts(b)
	c.checkAdmin()
	for _, l := range b.GetStaticResources().GetListeners() {
		if c.statsListeners[l.GetName()] {
			c.checkStatsListener(l)
			continue
		}
		c.checkListener(l)
	}
	c.checkClusterContext()
	if len(c.violations) == 0 {
		return nil
	}
	return &PolicyError{Violations: c.violations}
}

type checker struct {
	b          *bootstrapv3.Bootstrap
	clusters   map[string]*clusterv3.Cluster
	violations []Violation
	// routed upstream cluster → set of cluster_id context extensions seen on its routes
	clusterIDs map[string]map[string]bool
	// stats listeners and admin clusters (statsParts): not API traffic.
	statsListeners, adminClusters map[string]bool
}

func (c *checker) add(rule Rule, where, format string, args ...any) {
	c.violations = append(c.violations, Violation{Rule: rule, Where: where, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) checkAdmin() {
	admin := c.b.GetAdmin()
	if admin == nil || admin.GetAddress() == nil {
		return // no admin interface at all
	}
	sa := admin.GetAddress().GetSocketAddress()
	if sa == nil || !isLoopback(sa.GetAddress()) {
		c.add(RuleAdminLoopback, "admin", "address %q is not a loopback IP", sa.GetAddress())
	}
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *checker) checkListener(l *listenerv3.Listener) {
	where := fmt.Sprintf("listener %q", l.GetName())
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
	}
	if len(chains) == 0 {
		c.add(RuleFilterChain, where, "no filter chain")
	}
	for i, fc := range chains {
		fcWhere := fmt.Sprintf("%s filter_chain[%d]", where, i)
		c.checkDownstreamTLS(fcWhere, fc.GetTransportSocket())
		filters := fc.GetFilters()
		if len(filters) != 1 {
			c.add(RuleFilterChain, fcWhere, "want exactly one network filter (http_connection_manager), got %d", len(filters))
		}
		for _, f := range filters {
			hcm := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig() == nil || f.GetTypedConfig().UnmarshalTo(hcm) != nil {
				c.add(RuleFilterChain, fcWhere, "network filter %q is not an http_connection_manager: traffic would bypass ext_authz", f.GetName())
				continue
			}
			c.checkHCM(fcWhere, hcm)
		}
	}
}

func (c *checker) checkDownstreamTLS(where string, ts *corev3.TransportSocket) {
	ctx := &tlsv3.DownstreamTlsContext{}
	if ts.GetTypedConfig() == nil || ts.GetTypedConfig().UnmarshalTo(ctx) != nil {
		c.add(RuleDownstreamTLS, where, "no TLS transport socket: bearer tokens would travel in clear text")
		return
	}
	common := ctx.GetCommonTlsContext()
	if len(common.GetTlsCertificates()) == 0 && len(common.GetTlsCertificateSdsSecretConfigs()) == 0 {
		c.add(RuleDownstreamTLS, where, "TLS context has no certificate")
	}
	c.checkRotatingCerts(where, common)
}

// checkRotatingCerts: certificates only through watched file-based SDS.
func (c *checker) checkRotatingCerts(where string, common *tlsv3.CommonTlsContext) {
	if len(common.GetTlsCertificates()) > 0 {
		c.add(RuleCertRotation, where, "static tls_certificates are read once at start; use tls_certificate_sds_secret_configs with a path_config_source")
	}
	for _, sc := range common.GetTlsCertificateSdsSecretConfigs() {
		c.checkSDSSource(where, sc)
	}
}

// checkSDSSource: an SDS secret config reads a file whose directory is watched (the
// kubelet replaces a ConfigMap's files by swapping the ..data symlink in it).
func (c *checker) checkSDSSource(where string, sc *tlsv3.SdsSecretConfig) {
	pc := sc.GetSdsConfig().GetPathConfigSource()
	switch {
	case pc == nil:
		c.add(RuleCertRotation, where, "SDS secret %q: want sds_config.path_config_source (file-based SDS), got %v", sc.GetName(), sc.GetSdsConfig().GetConfigSourceSpecifier())
	case pc.GetWatchedDirectory() == nil:
		c.add(RuleCertRotation, where, "SDS secret %q: path_config_source needs watched_directory (a ConfigMap update is a symlink swap in it)", sc.GetName())
	case path.Dir(pc.GetPath()) != path.Clean(pc.GetWatchedDirectory().GetPath()):
		c.add(RuleCertRotation, where, "SDS secret %q: watched_directory %s does not hold %s", sc.GetName(), pc.GetWatchedDirectory().GetPath(), pc.GetPath())
	}
}

func (c *checker) checkHCM(where string, h *hcmv3.HttpConnectionManager) {
	if !h.GetUseRemoteAddress().GetValue() {
		c.add(RuleRemoteAddress, where, "use_remote_address must be true")
	}
	if h.GetXffNumTrustedHops() != 0 {
		c.add(RuleRemoteAddress, where, "xff_num_trusted_hops must be 0, got %d", h.GetXffNumTrustedHops())
	}
	if h.GetInternalAddressConfig() != nil {
		c.add(RuleRemoteAddress, where, "internal_address_config must be absent (no client is internal)")
	}
	if len(h.GetOriginalIpDetectionExtensions()) > 0 {
		c.add(RuleRemoteAddress, where, "original_ip_detection_extensions must be absent")
	}

	common := h.GetCommonHttpProtocolOptions()
	if common.GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
		c.add(RuleUnderscoreHeaders, where, "headers_with_underscores_action must be REJECT_REQUEST, got %s", common.GetHeadersWithUnderscoresAction())
	}
	switch msd := common.GetMaxStreamDuration(); {
	case msd == nil || msd.AsDuration() <= 0:
		c.add(RuleStreamBounds, where, "common_http_protocol_options.max_stream_duration must be set (streams would outlive the token)")
	case msd.AsDuration() > MaxStreamDuration:
		c.add(RuleStreamBounds, where, "max_stream_duration %s exceeds one token lifetime (%s)", msd.AsDuration(), MaxStreamDuration)
	}
	if common.GetIdleTimeout() == nil {
		c.add(RuleStreamBounds, where, "common_http_protocol_options.idle_timeout must be set explicitly")
	}
	if h.GetStreamIdleTimeout() == nil {
		c.add(RuleStreamBounds, where, "stream_idle_timeout must be set explicitly")
	}

	upgrades := map[string]bool{}
	for _, u := range h.GetUpgradeConfigs() {
		if u.GetEnabled() == nil || u.GetEnabled().GetValue() {
			upgrades[strings.ToLower(u.GetUpgradeType())] = true
		}
	}
	for _, want := range []string{"websocket", "spdy/3.1"} {
		if !upgrades[want] {
			c.add(RuleUpgrades, where, "upgrade_configs lacks %q (kubectl exec/attach/port-forward)", want)
		}
	}

	for i, al := range h.GetAccessLog() {
		c.checkAccessLog(fmt.Sprintf("%s access_log[%d]", where, i), al)
	}

	authzClusters := c.checkHTTPFilters(where, h.GetHttpFilters())

	rc := h.GetRouteConfig()
	if rc == nil {
		c.add(RuleFilterChain, where, "route_config must be inline (RDS is not reviewed)")
		return
	}
	c.checkRouteHeaders(where+" route_config", rc)
	for _, vh := range rc.GetVirtualHosts() {
		c.checkPerFilterConfig(fmt.Sprintf("%s virtual_host %q", where, vh.GetName()), vh.GetTypedPerFilterConfig())
		for i, r := range vh.GetRoutes() {
			c.checkRoute(fmt.Sprintf("%s virtual_host %q route[%d]", where, vh.GetName(), i), vh, r, authzClusters)
		}
	}
}

// failOpenMarker is the request header Envoy adds when it lets a request through on an
// authz failure; a client can send it too.
const failOpenMarker = "x-envoy-auth-failure-mode-allowed"

func (c *checker) checkRouteHeaders(where string, rc *routev3.RouteConfiguration) {
	if !slices.ContainsFunc(rc.GetRequestHeadersToRemove(), func(h string) bool { return strings.EqualFold(h, failOpenMarker) }) {
		c.add(RuleFailureModeAllow, where, "request_headers_to_remove must contain %s", failOpenMarker)
	}
	slots := map[string]bool{}
	for _, h := range rc.GetRequestHeadersToAdd() {
		if !strings.EqualFold(h.GetHeader().GetKey(), "impersonate-group") {
			continue
		}
		//lint:ignore SA1019 the deprecated append field is read to make sure it is unset.
		deprecatedAppend := h.GetAppend()
		if h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD || deprecatedAppend != nil || h.GetKeepEmptyValue() {
			c.add(RuleGroupSlots, where, "impersonate-group %q must be APPEND_IF_EXISTS_OR_ADD without append or keep_empty_value", h.GetHeader().GetValue())
		}
		slots[h.GetHeader().GetValue()] = true
	}
	for i := range GroupSlots {
		if !slots[groupSlotValue(i)] {
			c.add(RuleGroupSlots, where, "no impersonate-group line from %s", groupSlotValue(i))
		}
	}
	if len(slots) > GroupSlots {
		c.add(RuleGroupSlots, where, "%d impersonate-group entries, want exactly the %d slots", len(slots), GroupSlots)
	}
}

func (c *checker) checkAccessLog(where string, al proto.Message) {
	js, err := protojson.Marshal(al)
	if err != nil {
		c.add(RuleAccessLogSecrets, where, "cannot inspect: %v", err)
		return
	}
	lower := strings.ToLower(string(js))
	for _, bad := range accessLogForbidden {
		if strings.Contains(lower, bad) {
			c.add(RuleAccessLogSecrets, where, "format mentions %q", bad)
		}
	}
}

// checkHTTPFilters checks the filter list and the ext_authz settings; it returns the
// clusters ext_authz calls (those are not API servers).
func (c *checker) checkHTTPFilters(where string, filters []*hcmv3.HttpFilter) map[string]bool {
	authzClusters := map[string]bool{}
	var authz *extauthzv3.ExtAuthz
	authzAt, routerAt := -1, -1
	for i, f := range filters {
		a := &extauthzv3.ExtAuthz{}
		r := &routerv3.Router{}
		switch {
		case f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(a) == nil:
			if authz != nil {
				c.add(RuleFilterChain, where, "more than one ext_authz filter")
			}
			authz, authzAt = a, i
			if f.GetDisabled() {
				c.add(RuleBypass, where, "ext_authz filter is disabled by default")
			}
		case f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(r) == nil:
			routerAt = i
		default:
			c.add(RuleFilterChain, where, "unexpected HTTP filter %q before the router (not reviewed)", f.GetName())
		}
	}
	switch {
	case authz == nil:
		c.add(RuleFilterChain, where, "no ext_authz filter: requests reach the API server unchecked")
		return authzClusters
	case routerAt != len(filters)-1:
		c.add(RuleFilterChain, where, "router must be the last HTTP filter")
	case authzAt > routerAt:
		c.add(RuleFilterChain, where, "ext_authz must run before the router")
	}

	aw := where + " ext_authz"
	grpc := authz.GetGrpcService()
	if grpc == nil || grpc.GetEnvoyGrpc() == nil {
		c.add(RuleExtAuthzService, aw, "must use grpc_service.envoy_grpc (the reviewed gRPC Check service)")
	} else {
		name := grpc.GetEnvoyGrpc().GetClusterName()
		authzClusters[name] = true
		c.checkAuthzCluster(aw, name)
		switch t := grpc.GetTimeout(); {
		case t == nil:
			c.add(RuleExtAuthzTimeout, aw, "grpc_service.timeout must be explicit (Envoy's default is 200ms)")
		case t.AsDuration() < MinExtAuthzTimeout:
			c.add(RuleExtAuthzTimeout, aw, "grpc_service.timeout %s is below %s", t.AsDuration(), MinExtAuthzTimeout)
		}
	}
	if authz.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		c.add(RuleExtAuthzService, aw, "transport_api_version must be V3")
	}
	if authz.GetFailureModeAllow() {
		c.add(RuleFailureModeAllow, aw, "failure_mode_allow must be false (CVE-2023-27488, CVE-2024-23324)")
	}
	if authz.GetStatusOnError().GetCode() != typev3.StatusCode_ServiceUnavailable {
		c.add(RuleStatusOnError, aw, "status_on_error must be 503, got %s", authz.GetStatusOnError().GetCode())
	}
	if authz.GetWithRequestBody() != nil {
		c.add(RuleRequestBody, aw, "with_request_body must be absent")
	}
	if authz.GetAllowedHeaders() != nil || authz.GetDisallowedHeaders() != nil {
		c.add(RuleCheckHeaders, aw, "allowed_headers/disallowed_headers must be absent: the server must see every Impersonate-* header")
	}
	if !authz.GetEncodeRawHeaders() {
		c.add(RuleCheckHeaders, aw, "encode_raw_headers must be true (repeated header lines stay separate)")
	}
	if !authz.GetValidateMutations() {
		c.add(RuleMutations, aw, "validate_mutations must be true")
	}
	rules := authz.GetDecoderHeaderMutationRules()
	if !rules.GetDisallowAll().GetValue() || rules.GetAllowExpression() == nil || !rules.GetDisallowIsError().GetValue() {
		c.add(RuleMutations, aw, "decoder_header_mutation_rules must be disallow_all + allow_expression + disallow_is_error")
	} else {
		c.checkAllowExpression(aw, rules.GetAllowExpression().GetRegex())
	}
	if authz.GetFilterEnabled() != nil || authz.GetFilterEnabledMetadata() != nil || authz.GetDenyAtDisable() != nil {
		c.add(RuleBypass, aw, "filter_enabled / filter_enabled_metadata / deny_at_disable must be absent (runtime or metadata could switch authorization off)")
	}
	if authz.GetShadowMode() {
		c.add(RuleBypass, aw, "shadow_mode must be false (it never denies)")
	}
	return authzClusters
}

// mutationAllowed and mutationDenied are header names the allow-list must accept and
// reject (Envoy matches lower-case names).
var (
	mutationAllowed = []string{"authorization", "impersonate-user", "impersonate-uid", "impersonate-extra-scopes"}
	mutationDenied  = []string{"impersonate-group", "host", ":authority", "x-forwarded-for", "x-envoy-original-path", "cookie"}
)

func (c *checker) checkAllowExpression(where, expr string) {
	// Envoy's regex engine is RE2, as is Go's; a full match is what Envoy applies.
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		c.add(RuleMutations, where, "allow_expression %q does not compile: %v", expr, err)
		return
	}
	for _, h := range mutationAllowed {
		if !re.MatchString(h) {
			c.add(RuleMutations, where, "allow_expression must allow %q", h)
		}
	}
	for _, h := range mutationDenied {
		if re.MatchString(h) {
			c.add(RuleMutations, where, "allow_expression must not allow %q", h)
		}
	}
}

func (c *checker) checkAuthzCluster(where, name string) {
	cl, ok := c.clusters[name]
	if !ok {
		c.add(RuleExtAuthzService, where, "cluster %q does not exist", name)
		return
	}
	opts := httpOptions(cl)
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		c.add(RuleExtAuthzService, where, "cluster %q must be explicitly HTTP/2 (gRPC)", name)
	}
}

func httpOptions(cl *clusterv3.Cluster) *upstreamhttpv3.HttpProtocolOptions {
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if a, ok := cl.GetTypedExtensionProtocolOptions()[upstreamHTTP]; ok && a.UnmarshalTo(opts) == nil {
		return opts
	}
	return nil
}

func (c *checker) checkPerFilterConfig(where string, cfg map[string]*anypb.Any) {
	a, ok := cfg[extAuthzFilter]
	if !ok {
		return
	}
	per := &extauthzv3.ExtAuthzPerRoute{}
	if a.UnmarshalTo(per) != nil {
		c.add(RuleBypass, where, "per-route ext_authz config does not decode")
		return
	}
	if per.GetDisabled() {
		c.add(RuleBypass, where, "ext_authz is disabled for this route")
	}
	if per.GetCheckSettings().GetWithRequestBody() != nil {
		c.add(RuleRequestBody, where, "per-route with_request_body must be absent")
	}
}

func (c *checker) checkRoute(where string, vh *routev3.VirtualHost, r *routev3.Route, authzClusters map[string]bool) {
	c.checkPerFilterConfig(where, r.GetTypedPerFilterConfig())
	if r.GetRoute() == nil {
		return // redirect or direct response: nothing reaches a cluster
	}
	name := r.GetRoute().GetCluster()
	if name == "" {
		c.add(RuleFilterChain, where, "route must name one cluster (weighted or header-chosen clusters are not reviewed)")
		return
	}
	if authzClusters[name] {
		c.add(RuleFilterChain, where, "route sends client traffic to the authz cluster %q", name)
		return
	}
	if t := r.GetRoute().GetTimeout(); t == nil || t.AsDuration() != 0 {
		c.add(RuleRouteTimeout, where, "route timeout must be explicitly 0s (watches and exec are long-lived)")
	}
	ids := c.clusterIDs[name]
	if ids == nil {
		ids = map[string]bool{}
		c.clusterIDs[name] = ids
		c.checkAPIServerCluster(where, name)
	}
	ids[contextExtension(vh, r, ContextClusterID)] = true
	if c.multi() && contextExtension(vh, r, ContextMapping) == "" {
		c.add(RuleClusterContext, where, "context_extensions.%s must be set with more than one API server", ContextMapping)
	}
}

// contextExtension is the effective check_settings.context_extensions[key] for a route:
// the route's own per-filter config, else its virtual host's.
func contextExtension(vh *routev3.VirtualHost, r *routev3.Route, key string) string {
	for _, cfg := range []map[string]*anypb.Any{r.GetTypedPerFilterConfig(), vh.GetTypedPerFilterConfig()} {
		per := &extauthzv3.ExtAuthzPerRoute{}
		if a, ok := cfg[extAuthzFilter]; ok && a.UnmarshalTo(per) == nil {
			if v, ok := per.GetCheckSettings().GetContextExtensions()[key]; ok {
				return v
			}
		}
	}
	return ""
}

// multi reports whether the config fronts more than one API server, counting listeners
// and routed clusters.
func (c *checker) multi() bool {
	upstreams := 0
	for name, cl := range c.clusters {
		if !c.adminClusters[name] && httpOptions(cl).GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			upstreams++
		}
	}
	return upstreams > 1 || len(c.b.GetStaticResources().GetListeners())-len(c.statsListeners) > 1
}

func (c *checker) checkAPIServerCluster(where, name string) {
	cl, ok := c.clusters[name]
	if !ok {
		c.add(RuleUpstreamTLS, where, "cluster %q does not exist", name)
		return
	}
	cw := fmt.Sprintf("cluster %q", name)
	if httpOptions(cl).GetExplicitHttpConfig().GetHttpProtocolOptions() == nil {
		c.add(RuleUpgrades, cw, "API server cluster must be explicitly HTTP/1.1 (SPDY/3.1 upgrades)")
	}
	ts := cl.GetTransportSocket()
	ctx := &tlsv3.UpstreamTlsContext{}
	if ts.GetName() != tlsSocket || ts.GetTypedConfig() == nil || ts.GetTypedConfig().UnmarshalTo(ctx) != nil {
		c.add(RuleUpstreamTLS, cw, "no TLS transport socket")
		return
	}
	if ctx.GetSni() == "" {
		c.add(RuleUpstreamTLS, cw, "sni must be set")
	}
	common := ctx.GetCommonTlsContext()
	c.checkRotatingCerts(cw, common)
	vc := common.GetValidationContext()
	if vc != nil && vc.GetTrustedCa() != nil {
		c.add(RuleCertRotation, cw, "a static trusted_ca is read once at start; use combined_validation_context with a validation_context_sds_secret_config")
	}
	sdsCA := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig()
	if vc == nil {
		vc = common.GetCombinedValidationContext().GetDefaultValidationContext()
	}
	if sdsCA != nil {
		c.checkSDSSource(cw, sdsCA)
	}
	switch {
	case vc == nil || (vc.GetTrustedCa() == nil && sdsCA == nil):
		c.add(RuleUpstreamTLS, cw, "a trusted CA must be set (otherwise any certificate is accepted)")
	case vc.GetTrustChainVerification() != tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN:
		c.add(RuleUpstreamTLS, cw, "trust_chain_verification must be VERIFY_TRUST_CHAIN")
	case len(vc.GetMatchTypedSubjectAltNames()) == 0:
		c.add(RuleUpstreamTLS, cw, "match_typed_subject_alt_names must pin the API server's name")
	}
}

func (c *checker) checkClusterContext() {
	if !c.multi() {
		return
	}
	owner := map[string]string{} // cluster_id → upstream cluster
	names := make([]string, 0, len(c.clusterIDs))
	for name := range c.clusterIDs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ids := c.clusterIDs[name]
		where := fmt.Sprintf("cluster %q", name)
		if ids[""] {
			c.add(RuleClusterContext, where, "a route to it lacks context_extensions.%s", ContextClusterID)
		}
		if len(ids) > 1 {
			c.add(RuleClusterContext, where, "routes to it name different cluster ids")
		}
		for id := range ids {
			if id == "" {
				continue
			}
			if other, ok := owner[id]; ok {
				c.add(RuleClusterContext, where, "cluster id %q is also used for cluster %q", id, other)
			}
			owner[id] = name
		}
	}
}
