package app

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sar"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
)

// Serve defaults.
const (
	defaultGRPCListen    = "127.0.0.1:9001"
	defaultHTTPListen    = "127.0.0.1:9090"
	defaultSTSTimeout    = 5 * time.Second
	defaultSTSRateLimit  = 50
	defaultSTSRateBurst  = 100
	defaultShutdownGrace = 10 * time.Second
	defaultLogLevel      = "info"
	// maxSTSTimeout: Envoy's ext_authz timeout must sit above the STS
	// timeout (envoy/sidecar.yaml uses 6s for the 5s default), and a Check
	// that waits longer than this is worse than a 503 the client retries.
	maxSTSTimeout = 30 * time.Second
	// The cache-hit summary interval: at least a second (a shorter one is the
	// line-per-hit flood the summary exists to avoid), at most an hour (a
	// crash loses at most one interval of counts).
	minLogCacheHitInterval = time.Second
	maxLogCacheHitInterval = time.Hour
	// maxConfigBytes bounds the --config file.
	maxConfigBytes = 1 << 20
	// defaultClusterName names the cluster the flags define; routes select
	// it with context_extensions mapping: default.
	defaultClusterName = "default"
)

// ServeOptions configure `kube-iam-authz serve`. Every field is a flag, and
// the --config YAML file uses the flag names as keys (plus `clusters`, which
// has no flag form). A flag given on the command line wins over the file.
type ServeOptions struct {
	GRPCListen  string `json:"grpc-listen"`
	GRPCTLSCert string `json:"grpc-tls-cert"`
	GRPCTLSKey  string `json:"grpc-tls-key"`
	HTTPListen  string `json:"http-listen"`

	ClusterID   string `json:"cluster-id"`
	MappingFile string `json:"mapping-file"`
	// MappingConfigMap reads the mapping from the cluster's own ConfigMap
	// NAMESPACE/NAME instead of MappingFile.
	MappingConfigMap string `json:"mapping-configmap"`
	// MappingStrict refuses a mapping file with any error instead of
	// dropping the invalid entries (all-or-nothing).
	MappingStrict bool `json:"mapping-strict"`
	// Clusters are extra clusters served from this process, selected per
	// route by Envoy context_extensions (cluster_id or mapping).
	Clusters []ClusterOptions `json:"clusters,omitempty"`

	Partition    string          `json:"partition"`
	STSRegions   []string        `json:"sts-regions,omitempty"`
	STSEndpoint  string          `json:"sts-endpoint"`
	STSCAFile    string          `json:"sts-ca-file"`
	STSTimeout   metav1.Duration `json:"sts-timeout"`
	STSRateLimit float64         `json:"sts-rate-limit"`
	STSRateBurst int             `json:"sts-rate-burst"`

	UpstreamTokenFile string `json:"upstream-token-file"`

	CacheMaxEntries  int             `json:"cache-max-entries"`
	CacheTTL         metav1.Duration `json:"cache-ttl"`
	CacheNegativeTTL metav1.Duration `json:"cache-negative-ttl"`

	EC2Options

	AllowImpersonation bool `json:"allow-impersonation"`
	// Kubeconfig configures the Kubernetes API client of
	// AllowImpersonation and MappingConfigMap; empty: in-cluster.
	Kubeconfig              string          `json:"kubeconfig"`
	SARTimeout              metav1.Duration `json:"sar-timeout"`
	SARCacheTTL             metav1.Duration `json:"sar-cache-ttl"`
	PassthroughNonAWSTokens bool            `json:"passthrough-non-aws-tokens"`

	LogLevel            string          `json:"log-level"`
	LogCacheHits        bool            `json:"log-cache-hits"`
	LogCacheHitInterval metav1.Duration `json:"log-cache-hit-interval"`
	ShutdownGrace       metav1.Duration `json:"shutdown-grace"`
}

// ClusterOptions is one extra cluster in the config file.
type ClusterOptions struct {
	// Name is what a route's context_extensions `mapping` selects.
	Name string `json:"name"`
	// ClusterID is what a route's context_extensions `cluster_id` selects,
	// and the x-k8s-aws-id tokens must be signed for.
	ClusterID string `json:"clusterID"`
	// MappingFile is this cluster's aws-auth file.
	MappingFile string `json:"mappingFile"`
	// MappingConfigMap is this cluster's aws-auth ConfigMap NAMESPACE/NAME,
	// instead of MappingFile (read with --kubeconfig or in-cluster).
	MappingConfigMap string `json:"mappingConfigMap,omitempty"`
	// MappingStrict overrides --mapping-strict for this cluster's file.
	MappingStrict *bool `json:"mappingStrict,omitempty"`
	// UpstreamTokenFile is this cluster's own proxy token file; empty uses
	// --upstream-token-file.
	UpstreamTokenFile string `json:"upstreamTokenFile,omitempty"`
}

// defaultServeOptions returns the defaults, before the file and flags.
func defaultServeOptions() ServeOptions {
	return ServeOptions{
		GRPCListen:          defaultGRPCListen,
		HTTPListen:          defaultHTTPListen,
		Partition:           token.DefaultPartition,
		STSTimeout:          metav1.Duration{Duration: defaultSTSTimeout},
		STSRateLimit:        defaultSTSRateLimit,
		STSRateBurst:        defaultSTSRateBurst,
		CacheMaxEntries:     cache.DefaultMaxEntries,
		CacheTTL:            metav1.Duration{Duration: cache.DefaultMaxTTL},
		CacheNegativeTTL:    metav1.Duration{Duration: cache.DefaultNegativeTTL},
		SARTimeout:          metav1.Duration{Duration: sar.DefaultTimeout},
		SARCacheTTL:         metav1.Duration{Duration: sar.DefaultTTL},
		LogLevel:            defaultLogLevel,
		LogCacheHitInterval: metav1.Duration{Duration: check.DefaultHitSummaryInterval},
		ShutdownGrace:       metav1.Duration{Duration: defaultShutdownGrace},
	}
}

// AddFlags binds every option to a flag. The usage strings are the flag
// reference: FlagsMarkdown renders them for the README.
func (o *ServeOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.GRPCListen, "grpc-listen", o.GRPCListen, "Listen `ADDR` for the ext_authz gRPC server (plaintext unless --grpc-tls-cert/--grpc-tls-key are set).")
	fs.StringVar(&o.GRPCTLSCert, "grpc-tls-cert", o.GRPCTLSCert, "PEM certificate `FILE` for TLS on the gRPC listener (with --grpc-tls-key); the pair is reloaded when its directory changes, keeping the last good pair if the new one is broken.")
	fs.StringVar(&o.GRPCTLSKey, "grpc-tls-key", o.GRPCTLSKey, "PEM private key `FILE` for TLS on the gRPC listener (with --grpc-tls-cert).")
	fs.StringVar(&o.HTTPListen, "http-listen", o.HTTPListen, "Listen `ADDR` for the HTTP server serving /metrics, /healthz and /readyz.")
	fs.StringVar(&o.ClusterID, "cluster-id", o.ClusterID, "Required. Cluster `ID` tokens must be signed for (x-k8s-aws-id), for routes without context_extensions.")
	fs.StringVar(&o.MappingFile, "mapping-file", o.MappingFile, "aws-auth mapping `FILE` (ConfigMap YAML, its data, or kubectl get -o json/yaml output); reloaded when it changes. This or --mapping-configmap is required.")
	fs.StringVar(&o.MappingConfigMap, "mapping-configmap", o.MappingConfigMap, "Read the mapping from the cluster's own ConfigMap `NAMESPACE/NAME` (e.g. kube-system/aws-auth), watched with an informer on that one object, instead of --mapping-file. Per cluster in --config: mappingConfigMap.")
	fs.BoolVar(&o.MappingStrict, "mapping-strict", o.MappingStrict, "Refuse a mapping file with any error (keeping the last good one) instead of dropping each entry that is invalid on its own, which is what aws-iam-authenticator does and the default. Per cluster in --config: mappingStrict.")
	fs.StringVar(&o.Partition, "partition", o.Partition, "AWS partition of the STS endpoints tokens may be signed for.")
	fs.StringSliceVar(&o.STSRegions, "sts-regions", o.STSRegions, "Restrict accepted STS endpoints to these regions (comma-separated; the global endpoint counts as us-east-1). Default: every region of the partition.")
	fs.StringVar(&o.STSEndpoint, "sts-endpoint", o.STSEndpoint, "Send STS calls to this base `URL` instead of the token's STS host (tests, VPC endpoints); the signed Host is kept.")
	fs.StringVar(&o.STSCAFile, "sts-ca-file", o.STSCAFile, "PEM CA bundle `FILE` trusted for STS in addition to the system roots.")
	fs.DurationVar(&o.STSTimeout.Duration, "sts-timeout", o.STSTimeout.Duration, "Deadline of one STS call. Keep it below Envoy's ext_authz timeout.")
	fs.Float64Var(&o.STSRateLimit, "sts-rate-limit", o.STSRateLimit, "STS calls per second allowed from this process (token bucket protecting the account's STS quota); over it, Checks answer 429. 0 disables the limit.")
	fs.IntVar(&o.STSRateBurst, "sts-rate-burst", o.STSRateBurst, "Token bucket size of --sts-rate-limit.")
	fs.StringVar(&o.UpstreamTokenFile, "upstream-token-file", o.UpstreamTokenFile, "`FILE` with the proxy's own bearer token for the API server (a projected service-account token; re-read when it changes). Without it the client's Authorization header is removed (use mTLS to the API server).")
	fs.IntVar(&o.CacheMaxEntries, "cache-max-entries", o.CacheMaxEntries, "Maximum verified tokens kept in the cache.")
	fs.DurationVar(&o.CacheTTL.Duration, "cache-ttl", o.CacheTTL.Duration, "Longest time a verified token is served from the cache (never past the token's own expiry; at most 15m).")
	fs.DurationVar(&o.CacheNegativeTTL.Duration, "cache-negative-ttl", o.CacheNegativeTTL.Duration, "How long a token STS or the parser definitively rejected is remembered (throttling and outages are never cached).")
	o.EC2Options.AddFlags(fs)
	fs.BoolVar(&o.AllowImpersonation, "allow-impersonation", o.AllowImpersonation, "Accept client Impersonate-* headers (kubectl --as) with an AWS token: each requested user, group, uid and extra is authorized for the mapped caller with a SubjectAccessReview, as the API server would. Off: any Impersonate-* header is a 403.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig `FILE` for the Kubernetes API calls: the SubjectAccessReviews of --allow-impersonation and the ConfigMap of --mapping-configmap (default: the in-cluster API server address and CA, with the --upstream-token-file token if set, else the pod's service account token).")
	fs.DurationVar(&o.SARTimeout.Duration, "sar-timeout", o.SARTimeout.Duration, "Deadline of one SubjectAccessReview; a review that fails or times out is a 503, never an allow.")
	fs.DurationVar(&o.SARCacheTTL.Duration, "sar-cache-ttl", o.SARCacheTTL.Duration, "How long a SubjectAccessReview answer (allowed or denied) is reused for the same caller and attribute.")
	fs.BoolVar(&o.PassthroughNonAWSTokens, "passthrough-non-aws-tokens", o.PassthroughNonAWSTokens, "Forward a bearer token that is not a k8s-aws-v1 token (service account, OIDC) untouched, with the client's own Impersonate-* headers, for the API server to authenticate. Off: such a token is a 401. Needs --upstream-token-file: never use it with a client certificate on Envoy's upstream, which the API server would trust first.")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "Log level: debug, info, warn or error.")
	fs.BoolVar(&o.LogCacheHits, "log-cache-hits", o.LogCacheHits, "Log every allowed Check answered from the verification cache at info. Default: one \"cache hits\" line per identity per --log-cache-hit-interval (each hit at debug); misses, denials and errors are always logged one by one.")
	fs.DurationVar(&o.LogCacheHitInterval.Duration, "log-cache-hit-interval", o.LogCacheHitInterval.Duration, "How often the cache-hit summary is logged (1s to 1h).")
	fs.DurationVar(&o.ShutdownGrace.Duration, "shutdown-grace", o.ShutdownGrace.Duration, "On SIGTERM, how long in-flight Checks may take to finish.")
}

// Validate reports every problem at once, including those the components
// would find (token parser, cache), so an operator fixes a config in one go.
func (o *ServeOptions) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, l := range []struct{ flag, addr string }{{"grpc-listen", o.GRPCListen}, {"http-listen", o.HTTPListen}} {
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			add("--%s %q: %v", l.flag, l.addr, err)
		}
	}
	if o.GRPCListen != "" && o.GRPCListen == o.HTTPListen && !strings.HasSuffix(o.GRPCListen, ":0") {
		add("--grpc-listen and --http-listen are the same address %q", o.GRPCListen)
	}
	if (o.GRPCTLSCert == "") != (o.GRPCTLSKey == "") {
		add("--grpc-tls-cert and --grpc-tls-key must be given together")
	}
	if o.ClusterID == "" {
		add("--cluster-id is required")
	}
	if err := mappingSource("--mapping-file", o.MappingFile, "--mapping-configmap", o.MappingConfigMap); err != nil {
		add("%w", err)
	}
	names := map[string]bool{defaultClusterName: true}
	ids := map[string]bool{o.ClusterID: true}
	for i, c := range o.Clusters {
		where := fmt.Sprintf("clusters[%d]", i)
		if c.Name != "" {
			where = fmt.Sprintf("clusters[%d] (%s)", i, c.Name)
		}
		switch {
		case c.Name == "":
			add("%s: name is required", where)
		case names[c.Name]:
			add("%s: name %q is already used (%q is the flags' cluster)", where, c.Name, defaultClusterName)
		}
		switch {
		case c.ClusterID == "":
			add("%s: clusterID is required", where)
		case ids[c.ClusterID]:
			add("%s: clusterID %q is already used", where, c.ClusterID)
		}
		if err := mappingSource("mappingFile", c.MappingFile, "mappingConfigMap", c.MappingConfigMap); err != nil {
			add("%s: %w", where, err)
		}
		names[c.Name], ids[c.ClusterID] = true, true
	}
	if err := o.tokenOptions().Validate(); err != nil {
		add("--partition/--sts-regions: %w", err)
	}
	if d := o.STSTimeout.Duration; d <= 0 || d > maxSTSTimeout {
		add("--sts-timeout %s: must be in (0, %s]", d, maxSTSTimeout)
	}
	if o.STSRateLimit > 0 && o.STSRateBurst < 1 {
		add("--sts-rate-burst %d: must be at least 1 with a rate limit", o.STSRateBurst)
	}
	if err := o.stsOptions().Validate(); err != nil {
		add("--sts-endpoint/--sts-rate-limit/--sts-rate-burst: %w", err)
	}
	// The cache treats zero as "default"; on the command line a zero is
	// more likely a mistake than a wish for the default.
	cacheErrs := len(errs)
	switch {
	case o.CacheMaxEntries < 1:
		add("--cache-max-entries %d: must be at least 1", o.CacheMaxEntries)
	case o.CacheMaxEntries > cache.MaxEntriesLimit:
		add("--cache-max-entries %d: at most %d (a typo must not remove the bound)", o.CacheMaxEntries, cache.MaxEntriesLimit)
	}
	switch {
	case o.CacheTTL.Duration <= 0:
		add("--cache-ttl %s: must be positive", o.CacheTTL.Duration)
	case o.CacheTTL.Duration > cache.MaxTTLLimit:
		add("--cache-ttl %s: at most %s, the longest a token lives: lower it", o.CacheTTL.Duration, cache.MaxTTLLimit)
	}
	switch {
	case o.CacheNegativeTTL.Duration <= 0:
		add("--cache-negative-ttl %s: must be positive", o.CacheNegativeTTL.Duration)
	case o.CacheNegativeTTL.Duration > o.CacheTTL.Duration && o.CacheTTL.Duration > 0:
		add("--cache-negative-ttl %s: must not exceed --cache-ttl %s: lower it", o.CacheNegativeTTL.Duration, o.CacheTTL.Duration)
	}
	// The cache's own checks cover what the flags above do not reach; its
	// message names its internals, so it is shown only if nothing above was.
	if err := o.cacheOptions().Validate(); err != nil && len(errs) == cacheErrs {
		add("--cache-max-entries/--cache-ttl/--cache-negative-ttl/--sts-timeout: %w", err)
	}
	if d := o.SARTimeout.Duration; d <= 0 || d > sar.MaxTimeout {
		add("--sar-timeout %s: must be in (0, %s]", d, sar.MaxTimeout)
	}
	if d := o.SARCacheTTL.Duration; d <= 0 || d > sar.MaxTTL {
		add("--sar-cache-ttl %s: must be in (0, %s]", d, sar.MaxTTL)
	}
	// The flags' cluster always uses --upstream-token-file; the others fall
	// back to it.
	if o.PassthroughNonAWSTokens && o.UpstreamTokenFile == "" {
		add("--passthrough-non-aws-tokens needs --upstream-token-file: with mTLS to the API server the proxy's certificate, not the client's token, would authenticate a passed-through request")
	}
	if o.Kubeconfig != "" && !o.AllowImpersonation && !o.usesConfigMap() {
		add("--kubeconfig is only used with --allow-impersonation or --mapping-configmap")
	}
	if _, err := zapcore.ParseLevel(o.LogLevel); err != nil {
		add("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	if d := o.LogCacheHitInterval.Duration; d < minLogCacheHitInterval || d > maxLogCacheHitInterval {
		add("--log-cache-hit-interval %s: must be between %s and %s", d, minLogCacheHitInterval, maxLogCacheHitInterval)
	}
	if o.ShutdownGrace.Duration < 0 {
		add("--shutdown-grace %s: must not be negative", o.ShutdownGrace.Duration)
	}
	return errors.Join(errs...)
}

// usesConfigMap: some cluster reads its mapping from the API server.
func (o *ServeOptions) usesConfigMap() bool {
	if o.MappingConfigMap != "" {
		return true
	}
	for _, c := range o.Clusters {
		if c.MappingConfigMap != "" {
			return true
		}
	}
	return false
}

func (o *ServeOptions) tokenOptions() token.Options {
	return token.Options{Partition: o.Partition, Regions: o.STSRegions}
}

// cacheOptions: the bounds from the flags. Which errors are cached
// negatively and which are ridden out with an earlier identity is the cache's
// own policy, read from the one error table (authz/outcome).
func (o *ServeOptions) cacheOptions() cache.Options {
	return cache.Options{
		MaxEntries:    o.CacheMaxEntries,
		MaxTTL:        o.CacheTTL.Duration,
		NegativeTTL:   o.CacheNegativeTTL.Duration,
		FlightTimeout: flightTimeout(o.STSTimeout.Duration),
	}
}

func (o *ServeOptions) stsOptions() sts.Options {
	burst := o.STSRateBurst
	if o.STSRateLimit == 0 {
		// No limit: the burst has nothing to size.
		burst = 0
	}
	return sts.Options{
		Endpoint:  o.STSEndpoint,
		CAFile:    o.STSCAFile,
		Timeout:   o.STSTimeout.Duration,
		RateLimit: o.STSRateLimit,
		RateBurst: burst,
	}
}

// mappingSource checks that exactly one mapping source is set (fileKey and
// configMapKey name them as the operator wrote them: flags or --config keys)
// and that a ConfigMap is named NAMESPACE/NAME with valid Kubernetes names.
func mappingSource(fileKey, file, configMapKey, configMap string) error {
	switch {
	case file == "" && configMap == "":
		return fmt.Errorf("%s or %s is required", fileKey, configMapKey)
	case file != "" && configMap != "":
		return fmt.Errorf("%s and %s are exclusive: set only one", fileKey, configMapKey)
	case configMap == "":
		return nil
	}
	ns, name, ok := strings.Cut(configMap, "/")
	if !ok {
		return fmt.Errorf("%s %q: want NAMESPACE/NAME (e.g. kube-system/aws-auth)", configMapKey, configMap)
	}
	var errs []error
	for _, msg := range validation.IsDNS1123Label(ns) {
		errs = append(errs, fmt.Errorf("%s %q: namespace %q: %s", configMapKey, configMap, ns, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, fmt.Errorf("%s %q: name %q: %s", configMapKey, configMap, name, msg))
	}
	return errors.Join(errs...)
}

// reviewer builds the SubjectAccessReview client behind its cache.
func (o *ServeOptions) reviewer(reg prometheus.Registerer) (check.AccessReviewer, error) {
	m, err := sar.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	client, err := sar.NewClient(sar.ClientOptions{Kubeconfig: o.Kubeconfig, TokenFile: o.UpstreamTokenFile, Timeout: o.SARTimeout.Duration, Metrics: m})
	if err != nil {
		return nil, err
	}
	return sar.NewCached(client, sar.CacheOptions{
		AllowedTTL:    o.SARCacheTTL.Duration,
		DeniedTTL:     o.SARCacheTTL.Duration,
		FlightTimeout: o.SARTimeout.Duration + time.Second,
		Metrics:       m,
	})
}
