package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
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
	// Kubeconfig is the client configuration for MappingConfigMap; empty
	// uses the in-cluster service account.
	Kubeconfig string `json:"kubeconfig"`
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

	LogLevel      string          `json:"log-level"`
	ShutdownGrace metav1.Duration `json:"shutdown-grace"`
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
		GRPCListen:       defaultGRPCListen,
		HTTPListen:       defaultHTTPListen,
		Partition:        token.DefaultPartition,
		STSTimeout:       metav1.Duration{Duration: defaultSTSTimeout},
		STSRateLimit:     defaultSTSRateLimit,
		STSRateBurst:     defaultSTSRateBurst,
		CacheMaxEntries:  cache.DefaultMaxEntries,
		CacheTTL:         metav1.Duration{Duration: cache.DefaultMaxTTL},
		CacheNegativeTTL: metav1.Duration{Duration: cache.DefaultNegativeTTL},
		LogLevel:         defaultLogLevel,
		ShutdownGrace:    metav1.Duration{Duration: defaultShutdownGrace},
	}
}

// AddFlags binds every option to a flag. The usage strings are the flag
// reference: FlagsMarkdown renders them for the README.
func (o *ServeOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.GRPCListen, "grpc-listen", o.GRPCListen, "Listen `ADDR` for the ext_authz gRPC server (plaintext unless --grpc-tls-cert/--grpc-tls-key are set).")
	fs.StringVar(&o.GRPCTLSCert, "grpc-tls-cert", o.GRPCTLSCert, "PEM certificate `FILE` for TLS on the gRPC listener (with --grpc-tls-key).")
	fs.StringVar(&o.GRPCTLSKey, "grpc-tls-key", o.GRPCTLSKey, "PEM private key `FILE` for TLS on the gRPC listener (with --grpc-tls-cert).")
	fs.StringVar(&o.HTTPListen, "http-listen", o.HTTPListen, "Listen `ADDR` for the HTTP server serving /metrics, /healthz and /readyz.")
	fs.StringVar(&o.ClusterID, "cluster-id", o.ClusterID, "Required. Cluster `ID` tokens must be signed for (x-k8s-aws-id), for routes without context_extensions.")
	fs.StringVar(&o.MappingFile, "mapping-file", o.MappingFile, "aws-auth mapping `FILE` (ConfigMap YAML, its data, or kubectl get -o json/yaml output); reloaded when it changes. This or --mapping-configmap is required.")
	fs.StringVar(&o.MappingConfigMap, "mapping-configmap", o.MappingConfigMap, "Read the mapping from the cluster's own ConfigMap `NAMESPACE/NAME` (e.g. kube-system/aws-auth), watched with an informer on that one object, instead of --mapping-file. Per cluster in --config: mappingConfigMap.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig `FILE` for --mapping-configmap; default: the in-cluster service account.")
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
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "Log level: debug, info, warn or error.")
	fs.DurationVar(&o.ShutdownGrace.Duration, "shutdown-grace", o.ShutdownGrace.Duration, "On SIGTERM, how long in-flight Checks may take to finish.")
}

// applyConfigFile merges a YAML config file under the flags: keys present
// in the file replace the defaults, except those whose flag was given on
// the command line. Unknown keys are an error (a typo must not silently
// leave a default in place).
func (o *ServeOptions) applyConfigFile(path string, fs *pflag.FlagSet) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(raw) > maxConfigBytes {
		return fmt.Errorf("config %s: larger than %d bytes", path, maxConfigBytes)
	}
	var strict ServeOptions
	if err := yaml.UnmarshalStrict(raw, &strict); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(js, &keys); err != nil {
		return fmt.Errorf("config %s: not a mapping of keys: %w", path, err)
	}
	fs.Visit(func(f *pflag.Flag) { delete(keys, f.Name) })
	merged, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(o); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
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
	if err := mappingSource(o.MappingFile, o.MappingConfigMap); err != nil {
		add("--mapping-file/--mapping-configmap: %w", err)
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
		if err := mappingSource(c.MappingFile, c.MappingConfigMap); err != nil {
			add("%s: mappingFile/mappingConfigMap: %w", where, err)
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
	if o.CacheMaxEntries < 1 {
		add("--cache-max-entries %d: must be at least 1", o.CacheMaxEntries)
	}
	if o.CacheTTL.Duration <= 0 {
		add("--cache-ttl %s: must be positive", o.CacheTTL.Duration)
	}
	if o.CacheNegativeTTL.Duration <= 0 {
		add("--cache-negative-ttl %s: must be positive", o.CacheNegativeTTL.Duration)
	}
	if err := o.cacheOptions().Validate(); err != nil {
		add("cache: %w", err)
	}
	if _, err := zapcore.ParseLevel(o.LogLevel); err != nil {
		add("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	if o.ShutdownGrace.Duration < 0 {
		add("--shutdown-grace %s: must not be negative", o.ShutdownGrace.Duration)
	}
	return errors.Join(errs...)
}

func (o *ServeOptions) tokenOptions() token.Options {
	return token.Options{Partition: o.Partition, Regions: o.STSRegions}
}

// cacheOptions: only definitive rejections are cached negatively; while STS
// fails transiently, identities already verified are served until their
// tokens expire.
func (o *ServeOptions) cacheOptions() cache.Options {
	return cache.Options{
		MaxEntries:        o.CacheMaxEntries,
		MaxTTL:            o.CacheTTL.Duration,
		NegativeTTL:       o.CacheNegativeTTL.Duration,
		FlightTimeout:     flightTimeout(o.STSTimeout.Duration),
		IsCacheableError:  check.IsDefinitiveRejection,
		ServeStaleOnError: check.IsTransientFailure,
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

// mappingSource checks that exactly one mapping source is set and that a
// ConfigMap is named NAMESPACE/NAME with valid Kubernetes names.
func mappingSource(file, configMap string) error {
	switch {
	case file == "" && configMap == "":
		return errors.New("one is required")
	case file != "" && configMap != "":
		return errors.New("set only one")
	case configMap == "":
		return nil
	}
	ns, name, ok := strings.Cut(configMap, "/")
	if !ok {
		return fmt.Errorf("%q: want NAMESPACE/NAME (e.g. kube-system/aws-auth)", configMap)
	}
	var errs []error
	for _, msg := range validation.IsDNS1123Label(ns) {
		errs = append(errs, fmt.Errorf("namespace %q: %s", ns, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, fmt.Errorf("name %q: %s", name, msg))
	}
	return errors.Join(errs...)
}
