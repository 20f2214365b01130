package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-iam-authz/kube-iam-authz/authz"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/server"
	"github.com/kube-iam-authz/kube-iam-authz/authz/upstream"
	"github.com/kube-iam-authz/kube-iam-authz/internal/kubeclient"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
	"github.com/kube-iam-authz/kube-iam-authz/mapping/configmap"
)

func newServeCommand(streams Streams) *cobra.Command {
	return newServeCommandWith(streams, os.LookupEnv)
}

// newServeCommandWith takes the environment lookup (os.LookupEnv) so that
// tests need not change the process environment.
func newServeCommandWith(streams Streams, lookupEnv func(string) (string, bool)) *cobra.Command {
	o := defaultServeOptions()
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Envoy ext_authz server",
		Long: "serve answers Envoy's ext_authz Check calls: it verifies k8s-aws-v1 bearer tokens with STS, maps the " +
			"identity through the aws-auth mapping and tells Envoy to forward the request with Impersonate-* headers " +
			"and the proxy's own credential. It stops gracefully on SIGTERM.",
		Example: `  # One cluster, Envoy calling 127.0.0.1:9001 in the same pod:
  kube-iam-authz serve --cluster-id my-cluster-id \
    --mapping-file /etc/kube-iam-authz/mapping/aws-auth.yaml \
    --upstream-token-file /var/run/secrets/tokens/kube-iam-authz/token

  # The same from the environment (a flag on the command line still wins):
  KUBE_IAM_AUTHZ_CLUSTER_ID=my-cluster-id \
  KUBE_IAM_AUTHZ_MAPPING_FILE=/etc/kube-iam-authz/mapping/aws-auth.yaml \
    kube-iam-authz serve

  # Several clusters from one process (clusters: in the file):
  kube-iam-authz serve --config /etc/kube-iam-authz/serve.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.resolve(cmd.Flags(), &configFile, lookupEnv); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return runServe(cmd.Context(), &o, streams.Err)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML `FILE` whose keys are the flag names, plus clusters: [{name, clusterID, mappingFile}] for more clusters served from this process. A flag on the command line wins over its environment variable, which wins over the file.")
	o.AddFlags(cmd.Flags())
	bindEnv(cmd.Flags())
	return cmd
}

// resolve fills the options in precedence order: flag > environment
// variable > --config file > default. The config file's own path may come
// from KUBE_IAM_AUTHZ_CONFIG.
func (o *ServeOptions) resolve(fs *pflag.FlagSet, configFile *string, lookupEnv func(string) (string, bool)) error {
	if err := applyEnv(fs, lookupEnv); err != nil {
		return err
	}
	if *configFile == "" {
		return nil
	}
	return o.applyConfigFile(*configFile, fs)
}

// logFlushInterval bounds how long a decision line may sit in the log
// buffer before it is written.
const logFlushInterval = time.Second

// newLogger writes JSON lines to w. No sampling: the decision lines are an
// audit trail and must not be thinned.
//
// Info and debug lines (the allowed and 4xx decisions of the hot path) are
// buffered (256 KiB, flushed every logFlushInterval and on shutdown) rather
// than written one write(2) per Check: the unbuffered writer cost a
// cache-hit Check more than everything else the server does for it
// (docs/benchmarks.md, case 1: server CPU per Check). Warnings and errors
// (5xx decisions, a broken mapping or token file) are written at once, so
// an operator sees trouble immediately and a crash cannot lose them. Both
// paths share one lock, so lines never interleave. The price: a crash (not
// a SIGTERM) loses at most the last second of info lines, and an info line
// may appear after a later warning. stop flushes and ends the flush goroutine.
func newLogger(level string, w io.Writer) (log *zap.Logger, stop func(), err error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	direct := zapcore.Lock(zapcore.AddSync(w))
	buffered := &zapcore.BufferedWriteSyncer{WS: direct, FlushInterval: logFlushInterval}
	quiet := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= lvl && l < zapcore.WarnLevel })
	loud := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= lvl && l >= zapcore.WarnLevel })
	core := zapcore.NewTee(
		zapcore.NewCore(zapcore.NewJSONEncoder(enc), buffered, quiet),
		zapcore.NewCore(zapcore.NewJSONEncoder(enc), direct, loud),
	)
	return zap.New(core), func() { _ = buffered.Stop() }, nil
}

// runServe assembles the components and serves until ctx ends.
func runServe(ctx context.Context, o *ServeOptions, logOut io.Writer) error {
	log, stopLog, err := newLogger(o.LogLevel, logOut)
	if err != nil {
		return err
	}
	defer stopLog()

	// Files whose problems the components would report in their own terms.
	if err := checkSTSCAFile(o.STSCAFile); err != nil {
		return err
	}
	if err := checkGRPCKeyPair(o.GRPCTLSCert, o.GRPCTLSKey); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return err
	}
	build := buildInfo()
	if err := registerBuildInfo(reg, build); err != nil {
		return err
	}

	ec2, err := o.EC2Options.resolver(ctx, reg, log)
	if err != nil {
		return err
	}
	mappingMetrics, err := mapping.NewMetrics(reg)
	if err != nil {
		return err
	}
	var background []func(context.Context) error
	var stores []*mapping.Store
	tokenMetrics, err := upstream.NewMetrics(reg)
	if err != nil {
		return err
	}
	// tokenFile opens (fatally, if unusable) and follows a proxy token file.
	tokenFile := func(name, flag, path string) (check.BearerSource, error) {
		tf, err := upstream.NewTokenFile(upstream.Options{Path: path, Name: name, Logger: log, Metrics: tokenMetrics})
		if err != nil {
			return nil, upstreamTokenError(flag, path, err)
		}
		background = append(background, tf.Run)
		return tf, nil
	}
	var bearer check.BearerSource
	if o.UpstreamTokenFile != "" {
		if bearer, err = tokenFile(defaultClusterName, "--upstream-token-file", o.UpstreamTokenFile); err != nil {
			return err
		}
	}

	var clusters []check.Cluster
	all := append([]ClusterOptions{{Name: defaultClusterName, ClusterID: o.ClusterID, MappingFile: o.MappingFile, MappingConfigMap: o.MappingConfigMap}}, o.Clusters...)
	kube := lazyKubeClient(o.Kubeconfig, o.UpstreamTokenFile)
	for i, c := range all {
		// How the operator named each source: a flag, or a key of --config.
		mappingFlag, configMapFlag, tokenFlag := "--mapping-file", "--mapping-configmap", "--upstream-token-file"
		if i > 0 {
			where := fmt.Sprintf("--config clusters[%d] (%s)", i-1, c.Name)
			mappingFlag, configMapFlag, tokenFlag = where+" mappingFile", where+" mappingConfigMap", where+" upstreamTokenFile"
		}
		strict := o.MappingStrict
		if c.MappingStrict != nil {
			strict = *c.MappingStrict
		}
		so := mapping.StoreOptions{Path: c.MappingFile, Name: c.Name, Logger: log, Metrics: mappingMetrics, Strict: strict, GroupLimit: check.MaxGroups}
		namespace, name, fromCluster := strings.Cut(c.MappingConfigMap, "/")
		if fromCluster {
			so.Path, so.Source = "", configmap.Describe(namespace, name)
		}
		store, err := mapping.NewStore(so)
		if err != nil {
			return fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		mapper, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: store, EC2: ec2})
		if err != nil {
			return fmt.Errorf("cluster %q: %w", c.Name, err)
		}
		// A mapping that cannot be loaded at start is fatal, with the
		// file's own problems in the error: there is no last good mapping
		// to keep. Health reports NOT_SERVING until every store is ready.
		if fromCluster {
			client, err := kube()
			if err != nil {
				return kubeClientError(configMapFlag, c.MappingConfigMap, o.Kubeconfig, err)
			}
			src, err := configmap.New(configmap.Options{Client: client, Namespace: namespace, Name: name, Store: store, Logger: log.With(zap.String("mapping", c.Name))})
			if err != nil {
				return fmt.Errorf("%s %s: %w", configMapFlag, c.MappingConfigMap, err)
			}
			// The informer runs until ctx ends (shutdown).
			if err := src.Start(ctx); err != nil {
				return configMapLoadError(configMapFlag, c.MappingConfigMap, err)
			}
		} else {
			if err := store.Load(); err != nil {
				return mappingLoadError(mappingFlag, c.MappingFile, err)
			}
			background = append(background, store.Run)
		}
		cl := check.Cluster{Name: c.Name, ID: c.ClusterID, Mapper: mapper, Ready: store.Ready}
		if c.UpstreamTokenFile != "" {
			if cl.Upstream, err = tokenFile(c.Name, tokenFlag, c.UpstreamTokenFile); err != nil {
				return err
			}
		}
		clusters = append(clusters, cl)
		stores = append(stores, store)
	}

	var reviewer check.AccessReviewer
	if o.AllowImpersonation {
		if reviewer, err = o.reviewer(reg); err != nil {
			if o.Kubeconfig != "" {
				return fmt.Errorf("--kubeconfig %s (for --allow-impersonation): %v: give a readable kubeconfig, or drop --kubeconfig to use the in-cluster API server", o.Kubeconfig, rootCause(err))
			}
			return fmt.Errorf("--allow-impersonation: %w", err)
		}
	}
	// The request path (authz/path.go; authz/doc.go walks it): Check →
	// verification cache → token parse + STS → the clusters' mappers → the
	// response. The mapping sources, token files and reviewer above are this
	// command's choices; the path is assembled in one place.
	checker, err := authz.New(authz.Options{
		Token: o.tokenOptions(),
		STS:   o.stsOptions(),
		Cache: o.cacheOptions(),
		Check: check.Options{
			Clusters:                clusters,
			Upstream:                bearer,
			Logger:                  log,
			Registerer:              reg,
			AllowImpersonation:      o.AllowImpersonation,
			Reviewer:                reviewer,
			PassthroughNonAWSTokens: o.PassthroughNonAWSTokens,
			LogCacheHits:            o.LogCacheHits,
			HitSummaryInterval:      o.LogCacheHitInterval.Duration,
		},
	})
	if err != nil {
		return err
	}
	background = append(background, checker.RunCacheHitSummary)
	// The hits counted since the last summary line, written once the server has
	// drained (before the log is flushed and closed).
	defer checker.FlushCacheHits()

	log.Info("starting",
		zap.String("version", build.Version), zap.String("commit", build.Commit), zap.String("go_version", build.GoVersion),
		zap.String("grpc_listen", o.GRPCListen), zap.String("http_listen", o.HTTPListen),
		zap.String("cluster_id", o.ClusterID), zap.Int("extra_clusters", len(o.Clusters)),
		zap.String("partition", o.Partition), zap.Strings("sts_regions", o.STSRegions),
		zap.String("sts_endpoint", o.STSEndpoint), zap.Duration("sts_timeout", o.STSTimeout.Duration),
		zap.Float64("sts_rate_limit", o.STSRateLimit), zap.Bool("upstream_token", bearer != nil), zap.Bool("ec2_lookups", ec2 != nil),
		zap.Bool("log_cache_hits", o.LogCacheHits), zap.Duration("log_cache_hit_interval", o.LogCacheHitInterval.Duration),
		zap.Bool("allow_impersonation", o.AllowImpersonation), zap.Bool("passthrough_non_aws_tokens", o.PassthroughNonAWSTokens))
	return server.Run(ctx, server.Options{
		GRPCAddr:      o.GRPCListen,
		HTTPAddr:      o.HTTPListen,
		TLSCertFile:   o.GRPCTLSCert,
		TLSKeyFile:    o.GRPCTLSKey,
		Authorizer:    checker,
		Gatherer:      reg,
		Registerer:    reg,
		Logger:        log,
		ShutdownGrace: o.ShutdownGrace.Duration,
		Background:    background,
		ReadyDetail:   func() []string { return mappingStatus(stores) },
	})
}

// flightTimeout bounds the verification shared by concurrent cache misses:
// one STS call plus a margin, within the cache's limit.
func flightTimeout(stsTimeout time.Duration) time.Duration {
	return min(stsTimeout+time.Second, time.Minute)
}

// mappingStatus says, for /readyz, which mapping files are not the mapping
// in force and why: the server stays ready on its last good mapping, and
// this is where an operator (or a probe log) sees that a change did not
// take.
func mappingStatus(stores []*mapping.Store) []string {
	var out []string
	for _, st := range stores {
		s := st.Status()
		if s.Result == "" || s.OK() {
			continue
		}
		out = append(out, fmt.Sprintf("mapping %s: last reload %s at %s (%s); serving the last good mapping sha256 %s",
			st.Name(), s.Result, s.At.UTC().Format(time.RFC3339), s.Error, s.SHA256))
	}
	return out
}

// lazyKubeClient builds the Kubernetes client of --mapping-configmap on
// first use, once, so that a server reading only files needs no cluster
// credentials: from --kubeconfig, else the pod's API server address and CA
// with the proxy's own token (--upstream-token-file) or the service account.
func lazyKubeClient(kubeconfig, tokenFile string) func() (kubernetes.Interface, error) {
	return sync.OnceValues(func() (kubernetes.Interface, error) {
		cfg, err := kubeclient.Config(kubeconfig, tokenFile)
		if err != nil {
			return nil, err
		}
		return kubeclient.NewClientset(cfg)
	})
}
