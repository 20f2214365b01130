package envoy_test

import (
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// TestReviewedConfigsPassPolicy is the config lint: every shipped config keeps every
// rule. TestPolicyViolations proves each rule can fail.
func TestReviewedConfigsPassPolicy(t *testing.T) {
	for _, path := range reviewedConfigs(t) {
		t.Run(path, func(t *testing.T) {
			b, s, err := envoy.LoadWithSecrets(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := envoy.CheckPolicy(b); err != nil {
				t.Fatal(err)
			}
			if err := envoy.CheckSecrets(b, s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSecretsPolicyViolations proves each CheckSecrets check can fail, on the reviewed
// SDS files.
func TestSecretsPolicyViolations(t *testing.T) {
	tests := map[string]struct {
		config    string
		mutate    func(t *testing.T, s envoy.Secrets)
		wantRules []envoy.Rule
	}{
		"listener secret missing from its file": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/listener-cert.yaml"][0].Name = "other"
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"certificate directory not watched": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/listener-cert.yaml"][0].GetTlsCertificate().WatchedDirectory = nil
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"key outside the watched directory": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/listener-cert.yaml"][0].GetTlsCertificate().PrivateKey.Specifier = &corev3.DataSource_Filename{Filename: "/etc/keys/tls.key"}
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"inline private key in a ConfigMap": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/listener-cert.yaml"][0].GetTlsCertificate().PrivateKey.Specifier = &corev3.DataSource_InlineString{InlineString: "-----BEGIN PRIVATE KEY-----"}
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"CA directory not watched": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/apiserver-ca.yaml"][0].GetValidationContext().WatchedDirectory = nil
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"CA accepts untrusted chains": {
			config: "multi-cluster.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/prod-b-ca.yaml"][0].GetValidationContext().TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
			},
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"secret of neither kind": {
			config: "multi-cluster.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/prod-a-ca.yaml"][0].Type = &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{}}
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"two secrets in one file (Envoy rejects both)": {
			config: "multi-cluster.yaml",
			mutate: func(t *testing.T, s envoy.Secrets) {
				s["/etc/envoy/prod-a-ca.yaml"] = append(s["/etc/envoy/prod-a-ca.yaml"], s["/etc/envoy/prod-b-ca.yaml"]...)
			},
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, s, err := envoy.LoadWithSecrets(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, s)
			err = envoy.CheckSecrets(b, s)
			var pe *envoy.PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, envoy.ErrPolicy) {
				t.Fatalf("CheckSecrets = %v, want a *PolicyError wrapping ErrPolicy", err)
			}
			var got, want []string
			for _, v := range pe.Violations {
				got = append(got, string(v.Rule))
			}
			for _, r := range tc.wantRules {
				want = append(want, string(r))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("rules = %v, want %v\n%v", got, want, err)
			}
		})
	}
}

// TestReviewedSidecarValues pins the chosen numbers, which the policy only bounds.
func TestReviewedSidecarValues(t *testing.T) {
	b, err := envoy.Load("sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	authz := only[*extauthzv3.ExtAuthz](t, b)
	if got, want := authz.GetGrpcService().GetTimeout().AsDuration(), 6*time.Second; got != want {
		t.Errorf("ext_authz timeout = %s, want %s (above the server's 5s STS deadline)", got, want)
	}
	restore := asideStats(t, b)
	hcm := only[*hcmv3.HttpConnectionManager](t, b)
	restore()
	if got, want := hcm.GetCommonHttpProtocolOptions().GetMaxStreamDuration().AsDuration(), 15*time.Minute; got != want {
		t.Errorf("max_stream_duration = %s, want %s", got, want)
	}
	if got, want := hcm.GetStreamIdleTimeout().AsDuration(), 5*time.Minute; got != want {
		t.Errorf("stream_idle_timeout = %s, want %s", got, want)
	}
	if !hcm.GetNormalizePath().GetValue() || hcm.GetMergeSlashes() {
		t.Errorf("normalize_path = %v, merge_slashes = %v, want true, false", hcm.GetNormalizePath().GetValue(), hcm.GetMergeSlashes())
	}
	logs, err := envoy.Find[*streamv3.StdoutAccessLog](b)
	if err != nil || len(logs) != 1 {
		t.Fatalf("stdout access logs = %d (%v), want 1", len(logs), err)
	}
	fields := logs[0].GetLogFormat().GetJsonFormat().GetFields()
	for key, want := range map[string]string{
		"method":        "%REQ(:METHOD)%",
		"response_code": "%RESPONSE_CODE%",
		"request_id":    "%REQ(X-REQUEST-ID)%",
		"decision_id":   "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%",
		"path":          "%PATH(NQ)%",
	} {
		if got := fields[key].GetStringValue(); got != want {
			t.Errorf("access log %s = %q, want %q", key, got, want)
		}
	}
}

func only[T proto.Message](t *testing.T, b *bootstrapv3.Bootstrap) T {
	t.Helper()
	found, err := envoy.Find[T](b)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("found %d %T, want 1", len(found), *new(T))
	}
	return found[0]
}

func TestPolicyViolations(t *testing.T) {
	tests := map[string]struct {
		config    string
		mutate    func(t *testing.T, b *bootstrapv3.Bootstrap)
		wantRules []envoy.Rule
	}{
		"admin on all interfaces": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				b.Admin.Address.GetSocketAddress().Address = "0.0.0.0"
			},
			wantRules: []envoy.Rule{envoy.RuleAdminLoopback},
		},
		"failure_mode_allow": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.FailureModeAllow = true }),
			wantRules: []envoy.Rule{envoy.RuleFailureModeAllow},
		},
		"ext_authz timeout left at Envoy's default": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.GetGrpcService().Timeout = nil }),
			wantRules: []envoy.Rule{envoy.RuleExtAuthzTimeout},
		},
		"ext_authz timeout 200ms": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.GetGrpcService().Timeout = durationpb.New(200 * time.Millisecond) }),
			wantRules: []envoy.Rule{envoy.RuleExtAuthzTimeout},
		},
		"status_on_error 403": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden} }),
			wantRules: []envoy.Rule{envoy.RuleStatusOnError},
		},
		"status_on_error absent": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.StatusOnError = nil }),
			wantRules: []envoy.Rule{envoy.RuleStatusOnError},
		},
		"transport api version auto": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.TransportApiVersion = corev3.ApiVersion_AUTO }),
			wantRules: []envoy.Rule{envoy.RuleExtAuthzService},
		},
		"authz cluster missing": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.GetGrpcService().GetEnvoyGrpc().ClusterName = "nope" }),
			wantRules: []envoy.Rule{envoy.RuleExtAuthzService},
		},
		"request body sent": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: 1024} }),
			wantRules: []envoy.Rule{envoy.RuleRequestBody},
		},
		"allowed_headers hides impersonate headers": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.AllowedHeaders = &matcherList }),
			wantRules: []envoy.Rule{envoy.RuleCheckHeaders},
		},
		"comma-joined header map": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.EncodeRawHeaders = false }),
			wantRules: []envoy.Rule{envoy.RuleCheckHeaders},
		},
		"unvalidated mutations": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.ValidateMutations = false }),
			wantRules: []envoy.Rule{envoy.RuleMutations},
		},
		"any header mutable": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.DecoderHeaderMutationRules = nil }),
			wantRules: []envoy.Rule{envoy.RuleMutations},
		},
		"shadow mode": {
			config:    "sidecar.yaml",
			mutate:    editAuthz(func(a *extauthzv3.ExtAuthz) { a.ShadowMode = true }),
			wantRules: []envoy.Rule{envoy.RuleBypass},
		},
		"runtime switch": {
			config: "sidecar.yaml",
			mutate: editAuthz(func(a *extauthzv3.ExtAuthz) {
				a.FilterEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}, RuntimeKey: "authz"}
			}),
			wantRules: []envoy.Rule{envoy.RuleBypass},
		},
		"ext_authz disabled on a route": {
			config: "sidecar.yaml",
			mutate: editRoutes(func(t *testing.T, r *routev3.Route) {
				r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.ext_authz": mustAny(t, &extauthzv3.ExtAuthzPerRoute{
					Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true},
				})}
			}),
			wantRules: []envoy.Rule{envoy.RuleBypass},
		},
		"router before ext_authz": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				f := h.HttpFilters
				f[0], f[1] = f[1], f[0]
			}),
			wantRules: []envoy.Rule{envoy.RuleFilterChain},
		},
		"no ext_authz": {
			config:    "sidecar.yaml",
			mutate:    editHCM(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = h.HttpFilters[1:] }),
			wantRules: []envoy.Rule{envoy.RuleFilterChain},
		},
		"client decides its address": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.UseRemoteAddress = wrapperspb.Bool(false)
				h.XffNumTrustedHops = 1
			}),
			wantRules: []envoy.Rule{envoy.RuleRemoteAddress, envoy.RuleRemoteAddress},
		},
		"internal addresses": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.InternalAddressConfig = &hcmv3.HttpConnectionManager_InternalAddressConfig{
					CidrRanges: []*corev3.CidrRange{{AddressPrefix: "127.0.0.1", PrefixLen: wrapperspb.UInt32(32)}},
				}
			}),
			wantRules: []envoy.Rule{envoy.RuleRemoteAddress},
		},
		"underscore headers allowed": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.CommonHttpProtocolOptions.HeadersWithUnderscoresAction = corev3.HttpProtocolOptions_ALLOW
			}),
			wantRules: []envoy.Rule{envoy.RuleUnderscoreHeaders},
		},
		"no SPDY upgrade": {
			config:    "sidecar.yaml",
			mutate:    editHCM(func(h *hcmv3.HttpConnectionManager) { h.UpgradeConfigs = h.UpgradeConfigs[:1] }),
			wantRules: []envoy.Rule{envoy.RuleUpgrades},
		},
		"websocket upgrade disabled": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.UpgradeConfigs[0].Enabled = wrapperspb.Bool(false)
			}),
			wantRules: []envoy.Rule{envoy.RuleUpgrades},
		},
		"api server over HTTP/2": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, o *upstreamhttpv3.HttpProtocolOptions) {
				if o.GetExplicitHttpConfig().GetHttpProtocolOptions() != nil {
					o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
					}}
				}
			}),
			wantRules: []envoy.Rule{envoy.RuleUpgrades},
		},
		"streams unbounded": {
			config:    "sidecar.yaml",
			mutate:    editHCM(func(h *hcmv3.HttpConnectionManager) { h.CommonHttpProtocolOptions.MaxStreamDuration = nil }),
			wantRules: []envoy.Rule{envoy.RuleStreamBounds},
		},
		"streams outlive a token": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.CommonHttpProtocolOptions.MaxStreamDuration = durationpb.New(time.Hour)
			}),
			wantRules: []envoy.Rule{envoy.RuleStreamBounds},
		},
		"idle timeouts implicit": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.StreamIdleTimeout = nil
				h.CommonHttpProtocolOptions.IdleTimeout = nil
			}),
			wantRules: []envoy.Rule{envoy.RuleStreamBounds, envoy.RuleStreamBounds},
		},
		"access log prints the token": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, l *streamv3.StdoutAccessLog) {
				l.GetLogFormat().GetJsonFormat().Fields["auth"] = structpb.NewStringValue("%REQ(AUTHORIZATION)%")
			}),
			wantRules: []envoy.Rule{envoy.RuleAccessLogSecrets},
		},
		"access log prints all headers through CEL": {
			config: "sidecar.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				h.AccessLog = append(h.AccessLog, &accesslogv3.AccessLog{
					Name: "envoy.access_loggers.stdout",
					ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAnyNoT(&streamv3.StdoutAccessLog{
						AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
							Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
								Specifier: &corev3.DataSource_InlineString{InlineString: "%CEL(request.headers)%\n"},
							}},
						}},
					})},
				})
			}),
			wantRules: []envoy.Rule{envoy.RuleAccessLogSecrets},
		},
		"route timeout default": {
			config:    "sidecar.yaml",
			mutate:    editRoutes(func(t *testing.T, r *routev3.Route) { r.GetRoute().Timeout = nil }),
			wantRules: []envoy.Rule{envoy.RuleRouteTimeout},
		},
		"route timeout 15s": {
			config:    "sidecar.yaml",
			mutate:    editRoutes(func(t *testing.T, r *routev3.Route) { r.GetRoute().Timeout = durationpb.New(15 * time.Second) }),
			wantRules: []envoy.Rule{envoy.RuleRouteTimeout},
		},
		"client traffic routed to the authz server": {
			config: "sidecar.yaml",
			mutate: editRoutes(func(t *testing.T, r *routev3.Route) {
				r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "authz"}
			}),
			wantRules: []envoy.Rule{envoy.RuleFilterChain},
		},
		"api server without CA": {
			config:    "sidecar.yaml",
			mutate:    edit(func(t *testing.T, c *tlsv3.UpstreamTlsContext) { c.CommonTlsContext.ValidationContextType = nil }),
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"api server name not pinned": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *tlsv3.UpstreamTlsContext) {
				c.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().MatchTypedSubjectAltNames = nil
			}),
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"api server untrusted chain accepted": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *tlsv3.UpstreamTlsContext) {
				c.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
			}),
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"api server in clear text": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *clusterv3.Cluster) {
				if c.GetName() == "apiserver" {
					c.TransportSocket = nil
				}
			}),
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"api server without SNI": {
			config:    "sidecar.yaml",
			mutate:    edit(func(t *testing.T, c *tlsv3.UpstreamTlsContext) { c.Sni = "" }),
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"api server CA without SDS": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *tlsv3.CommonTlsContext_CombinedCertificateValidationContext) {
				c.ValidationContextSdsSecretConfig = nil
			}),
			wantRules: []envoy.Rule{envoy.RuleUpstreamTLS},
		},
		"api server CA static, read once": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *tlsv3.UpstreamTlsContext) {
				c.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa:                 &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/ca.crt"}},
					MatchTypedSubjectAltNames: c.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames(),
				}}
			}),
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"listener certificate static, read once": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *tlsv3.DownstreamTlsContext) {
				c.CommonTlsContext.TlsCertificateSdsSecretConfigs = nil
				c.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/tls.crt"}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/tls.key"}},
				}}
			}),
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"listener certificate from an SDS server, not a file": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, c *tlsv3.DownstreamTlsContext) {
				c.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].SdsConfig.ConfigSourceSpecifier = &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}
			}),
			wantRules: []envoy.Rule{envoy.RuleCertRotation},
		},
		"SDS file not watched through its directory": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, pc *corev3.PathConfigSource) { pc.WatchedDirectory = nil }),
			// Both the listener's and the API server CA's.
			wantRules: []envoy.Rule{envoy.RuleCertRotation, envoy.RuleCertRotation},
		},
		"SDS file outside its watched directory": {
			config: "multi-cluster.yaml",
			mutate: edit(func(t *testing.T, pc *corev3.PathConfigSource) {
				if strings.HasSuffix(pc.GetPath(), "listener-cert.yaml") {
					pc.WatchedDirectory.Path = "/etc/kube-iam-authz/tls"
				}
			}),
			// Both listeners share the anchored TLS context.
			wantRules: []envoy.Rule{envoy.RuleCertRotation, envoy.RuleCertRotation},
		},
		"clients in clear text": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, fc *listenerv3.FilterChain) {
				fc.TransportSocket = nil
			}),
			wantRules: []envoy.Rule{envoy.RuleDownstreamTLS},
		},
		"ext_authz may set Impersonate-Group": {
			config: "sidecar.yaml",
			mutate: editAuthz(func(a *extauthzv3.ExtAuthz) {
				a.GetDecoderHeaderMutationRules().GetAllowExpression().Regex = "^(authorization|impersonate-.+)$"
			}),
			wantRules: []envoy.Rule{envoy.RuleMutations},
		},
		"ext_authz may not set Authorization": {
			config: "sidecar.yaml",
			mutate: editAuthz(func(a *extauthzv3.ExtAuthz) {
				a.GetDecoderHeaderMutationRules().GetAllowExpression().Regex = "impersonate-(user|uid|extra-.+)"
			}),
			wantRules: []envoy.Rule{envoy.RuleMutations},
		},
		"a group slot missing": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, rc *routev3.RouteConfiguration) {
				rc.RequestHeadersToAdd = slices.DeleteFunc(rc.RequestHeadersToAdd, func(h *corev3.HeaderValueOption) bool {
					return strings.Contains(h.GetHeader().GetValue(), "impersonate_group_7)")
				})
			}),
			wantRules: []envoy.Rule{envoy.RuleGroupSlots},
		},
		"group slots keep empty values": {
			config: "sidecar.yaml",
			mutate: edit(func(t *testing.T, rc *routev3.RouteConfiguration) {
				for _, h := range rc.RequestHeadersToAdd {
					if h.GetHeader().GetKey() == "impersonate-group" {
						h.KeepEmptyValue = true
					}
				}
			}),
			wantRules: slices.Repeat([]envoy.Rule{envoy.RuleGroupSlots}, envoy.GroupSlots),
		},
		"client fail-open marker forwarded": {
			config:    "sidecar.yaml",
			mutate:    edit(func(t *testing.T, rc *routev3.RouteConfiguration) { rc.RequestHeadersToRemove = nil }),
			wantRules: []envoy.Rule{envoy.RuleFailureModeAllow},
		},
		"multi-cluster route without cluster id": {
			config: "multi-cluster.yaml",
			mutate: editRoutes(func(t *testing.T, r *routev3.Route) {
				if r.GetRoute().GetCluster() == "apiserver-b" {
					r.TypedPerFilterConfig = nil
				}
			}),
			wantRules: []envoy.Rule{envoy.RuleClusterContext, envoy.RuleClusterContext},
		},
		"multi-cluster ids collide": {
			config: "multi-cluster.yaml",
			mutate: edit(func(t *testing.T, per *extauthzv3.ExtAuthzPerRoute) {
				per.GetCheckSettings().ContextExtensions["cluster_id"] = "prod-a"
			}),
			wantRules: []envoy.Rule{envoy.RuleClusterContext},
		},
		"multi-cluster failure_mode_allow on one listener": {
			config: "multi-cluster.yaml",
			mutate: editHCM(func(h *hcmv3.HttpConnectionManager) {
				if h.GetStatPrefix() != "kube_api_b" {
					return
				}
				for _, f := range h.HttpFilters {
					a := &extauthzv3.ExtAuthz{}
					if f.GetTypedConfig().UnmarshalTo(a) == nil {
						a.FailureModeAllow = true
						f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAnyNoT(a)}
					}
				}
			}),
			wantRules: []envoy.Rule{envoy.RuleFailureModeAllow},
		},
		"stats listener forwards every admin path": {
			config: "sidecar.yaml",
			mutate: editStatsRoutes(func(r *routev3.Route) {
				r.Match.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
			}),
			wantRules: []envoy.Rule{envoy.RuleStatsListener},
		},
		"stats listener forwards /quitquitquit": {
			config: "sidecar.yaml",
			mutate: editStatsRoutes(func(r *routev3.Route) {
				r.Match.PathSpecifier = &routev3.RouteMatch_Path{Path: "/quitquitquit"}
			}),
			wantRules: []envoy.Rule{envoy.RuleStatsListener},
		},
		"stats listener forwards any method": {
			config:    "sidecar.yaml",
			mutate:    editStatsRoutes(func(r *routev3.Route) { r.Match.Headers = nil }),
			wantRules: []envoy.Rule{envoy.RuleStatsListener},
		},
		"stats listener rewrites the path": {
			config:    "sidecar.yaml",
			mutate:    editStatsRoutes(func(r *routev3.Route) { r.GetRoute().PrefixRewrite = "/runtime_modify" }),
			wantRules: []envoy.Rule{envoy.RuleStatsListener},
		},
		"stats listener also reaches the API server": {
			config: "sidecar.yaml",
			mutate: editStats(func(h *hcmv3.HttpConnectionManager) {
				vh := h.GetRouteConfig().GetVirtualHosts()[0]
				extra := proto.Clone(vh.Routes[0]).(*routev3.Route)
				extra.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "apiserver"}
				vh.Routes = append([]*routev3.Route{extra}, vh.Routes...)
			}),
			wantRules: []envoy.Rule{envoy.RuleStatsListener},
		},
		"stats listener with another HTTP filter": {
			config: "sidecar.yaml",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				var authz *hcmv3.HttpFilter
				editHCM(func(h *hcmv3.HttpConnectionManager) { authz = h.HttpFilters[0] })(t, b)
				editStats(func(h *hcmv3.HttpConnectionManager) {
					h.HttpFilters = append([]*hcmv3.HttpFilter{authz}, h.HttpFilters...)
				})(t, b)
			},
			wantRules: []envoy.Rule{envoy.RuleStatsListener},
		},
		"API listener routes to the admin interface": {
			config: "sidecar.yaml",
			mutate: editRoutes(func(t *testing.T, r *routev3.Route) {
				r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "envoy_admin"}
			}),
			// kube-api becomes a second stats listener: its ext_authz filter, prefix
			// match and any-method route are not what a stats listener may have.
			wantRules: []envoy.Rule{envoy.RuleStatsListener, envoy.RuleStatsListener, envoy.RuleStatsListener},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := envoy.Load(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(t, b)
			err = envoy.CheckPolicy(b)
			var pe *envoy.PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, envoy.ErrPolicy) {
				t.Fatalf("CheckPolicy = %v, want a *PolicyError wrapping ErrPolicy", err)
			}
			var got []string
			for _, v := range pe.Violations {
				got = append(got, string(v.Rule))
			}
			var want []string
			for _, r := range tc.wantRules {
				want = append(want, string(r))
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("rules = %v, want %v\n%v", got, want, err)
			}
		})
	}
}

// matcherList is a non-empty allowed_headers list.
var matcherList = matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{{
	MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "authorization"},
}}}

// asideStats takes b's stats listeners out (so that a mutation meant for the API
// listeners does not also hit the stats listener, which has its own cases) and returns
// the function that puts them back.
func asideStats(t *testing.T, b *bootstrapv3.Bootstrap) (restore func()) {
	t.Helper()
	inv, err := envoy.Inventorize(b)
	if err != nil {
		t.Fatal(err)
	}
	var aside []*listenerv3.Listener
	kept := b.GetStaticResources().GetListeners()[:0:0]
	for _, l := range b.GetStaticResources().GetListeners() {
		if slices.Contains(inv.StatsListeners, l.GetName()) {
			aside = append(aside, l)
			continue
		}
		kept = append(kept, l)
	}
	if b.GetStaticResources() == nil {
		return func() {}
	}
	b.StaticResources.Listeners = kept
	return func() { b.StaticResources.Listeners = append(b.StaticResources.Listeners, aside...) }
}

// edit adapts envoy.Edit to a test mutation of the API listeners and clusters
// (stats listeners are set aside meanwhile).
func edit[T proto.Message](fn func(*testing.T, T)) func(*testing.T, *bootstrapv3.Bootstrap) {
	return func(t *testing.T, b *bootstrapv3.Bootstrap) {
		t.Helper()
		defer asideStats(t, b)()
		n := 0
		err := envoy.Edit(b, func(m T) error {
			n++
			fn(t, m)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("mutation found no %T to edit", *new(T))
		}
	}
}

// editStats edits only the stats listener's connection manager.
func editStats(fn func(*hcmv3.HttpConnectionManager)) func(*testing.T, *bootstrapv3.Bootstrap) {
	return func(t *testing.T, b *bootstrapv3.Bootstrap) {
		t.Helper()
		n := 0
		for _, l := range b.GetStaticResources().GetListeners() {
			if l.GetName() != "stats" {
				continue
			}
			err := envoy.Edit(l, func(h *hcmv3.HttpConnectionManager) error {
				n++
				fn(h)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if n != 1 {
			t.Fatalf("found %d stats listener connection managers, want 1", n)
		}
	}
}

// editStatsRoutes edits the stats listener's routes to the admin interface.
func editStatsRoutes(fn func(*routev3.Route)) func(*testing.T, *bootstrapv3.Bootstrap) {
	return editStats(func(h *hcmv3.HttpConnectionManager) {
		for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if r.GetRoute().GetCluster() == "envoy_admin" {
					fn(r)
				}
			}
		}
	})
}

func editAuthz(fn func(*extauthzv3.ExtAuthz)) func(*testing.T, *bootstrapv3.Bootstrap) {
	return edit(func(_ *testing.T, a *extauthzv3.ExtAuthz) { fn(a) })
}

func editHCM(fn func(*hcmv3.HttpConnectionManager)) func(*testing.T, *bootstrapv3.Bootstrap) {
	return edit(func(_ *testing.T, h *hcmv3.HttpConnectionManager) { fn(h) })
}

func editRoutes(fn func(*testing.T, *routev3.Route)) func(*testing.T, *bootstrapv3.Bootstrap) {
	return edit(fn)
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustAnyNoT(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}
