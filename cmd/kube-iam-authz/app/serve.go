package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-iam-authz/kube-iam-authz/authz/cache"
	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/server"
	"github.com/kube-iam-authz/kube-iam-authz/authz/sts"
	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/authz/upstream"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
	"github.com/kube-iam-authz/kube-iam-authz/mapping/configmap"
)

func newServeCommand(streams Streams) *cobra.Command {
	o := defaultServeOptions()
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Envoy ext_authz server",
		Long: "serve answers Envoy's ext_authz Check calls: it verifies k8s-aws-v1 bearer tokens with STS, maps the " +
			"identity through the aws-auth mapping and tells Envoy to forward the request with Impersonate-* headers " +
			"and the proxy's own credential. It stops gracefully on SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := o.applyConfigFile(configFile, cmd.Flags()); err != nil {
					return err
				}
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return runServe(cmd.Context(), &o, streams.Err)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML `FILE` whose keys are the flag names, plus clusters: [{name, clusterID, mappingFile}] for more clusters served from this process; a flag given on the command line wins over the file.")
	o.AddFlags(cmd.Flags())
	return cmd
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

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return err
	}

	verifier, err := buildVerifier(o, reg, log)
	if err != nil {
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
	tokenFile := func(name, path string) (check.BearerSource, error) {
		tf, err := upstream.NewTokenFile(upstream.Options{Path: path, Name: name, Logger: log, Metrics: tokenMetrics})
		if err != nil {
			return nil, err
		}
		background = append(background, tf.Run)
		return tf, nil
	}
	var bearer check.BearerSource
	if o.UpstreamTokenFile != "" {
		if bearer, err = tokenFile(defaultClusterName, o.UpstreamTokenFile); err != nil {
			return err
		}
	}

	var clusters []check.Cluster
	all := append([]ClusterOptions{{Name: defaultClusterName, ClusterID: o.ClusterID, MappingFile: o.MappingFile, MappingConfigMap: o.MappingConfigMap}}, o.Clusters...)
	kube := lazyKubeClient(o.Kubeconfig)
	for _, c := range all {
		strict := o.MappingStrict
		if c.MappingStrict != nil {
			strict = *c.MappingStrict
		}
		so := mapping.StoreOptions{Path: c.MappingFile, Name: c.Name, Logger: log, Metrics: mappingMetrics, Strict: strict}
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
				return fmt.Errorf("cluster %q: mapping %s: %w", c.Name, so.Source, err)
			}
			src, err := configmap.New(configmap.Options{Client: client, Namespace: namespace, Name: name, Store: store, Logger: log.With(zap.String("mapping", c.Name))})
			if err != nil {
				return fmt.Errorf("cluster %q: %w", c.Name, err)
			}
			// The informer runs until ctx ends (shutdown).
			if err := src.Start(ctx); err != nil {
				return fmt.Errorf("cluster %q: mapping %s: %w", c.Name, so.Source, err)
			}
		} else {
			if err := store.Load(); err != nil {
				return fmt.Errorf("cluster %q: mapping file %s: %w", c.Name, c.MappingFile, err)
			}
			background = append(background, store.Run)
		}
		cl := check.Cluster{Name: c.Name, ID: c.ClusterID, Mapper: mapper, Ready: store.Ready}
		if c.UpstreamTokenFile != "" {
			if cl.Upstream, err = tokenFile(c.Name, c.UpstreamTokenFile); err != nil {
				return fmt.Errorf("cluster %q: %w", c.Name, err)
			}
		}
		clusters = append(clusters, cl)
		stores = append(stores, store)
	}

	authz, err := check.New(check.Options{
		Verifier:   verifier,
		Clusters:   clusters,
		Upstream:   bearer,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	log.Info("starting",
		zap.String("grpc_listen", o.GRPCListen), zap.String("http_listen", o.HTTPListen),
		zap.String("cluster_id", o.ClusterID), zap.Int("extra_clusters", len(o.Clusters)),
		zap.String("partition", o.Partition), zap.Strings("sts_regions", o.STSRegions),
		zap.String("sts_endpoint", o.STSEndpoint), zap.Duration("sts_timeout", o.STSTimeout.Duration),
		zap.Float64("sts_rate_limit", o.STSRateLimit), zap.Bool("upstream_token", bearer != nil), zap.Bool("ec2_lookups", ec2 != nil))
	return server.Run(ctx, server.Options{
		GRPCAddr:      o.GRPCListen,
		HTTPAddr:      o.HTTPListen,
		TLSCertFile:   o.GRPCTLSCert,
		TLSKeyFile:    o.GRPCTLSKey,
		Authorizer:    authz,
		Gatherer:      reg,
		Logger:        log,
		ShutdownGrace: o.ShutdownGrace.Duration,
		Background:    background,
		ReadyDetail:   func() []string { return mappingStatus(stores) },
	})
}

// buildVerifier is parser + STS client, behind the verification cache.
func buildVerifier(o *ServeOptions, reg prometheus.Registerer, log *zap.Logger) (check.Verifier, error) {
	parser, err := token.NewParser(o.tokenOptions())
	if err != nil {
		return nil, err
	}
	stsMetrics, err := sts.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	so := o.stsOptions()
	so.Metrics = stsMetrics
	client, err := sts.New(so)
	if err != nil {
		return nil, err
	}
	cacheMetrics, err := cache.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	co := o.cacheOptions()
	co.Metrics = cacheMetrics
	co.Logger = log
	return cache.New(check.ObserveUpstream(verify.New(parser, client)), co)
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

// lazyKubeClient builds the Kubernetes client on first use, once, so that
// a server reading only files needs no cluster credentials: from
// --kubeconfig, else the in-cluster service account.
func lazyKubeClient(kubeconfig string) func() (kubernetes.Interface, error) {
	return sync.OnceValues(func() (kubernetes.Interface, error) {
		var cfg *rest.Config
		var err error
		if kubeconfig != "" {
			cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		} else {
			cfg, err = rest.InClusterConfig()
		}
		if err != nil {
			return nil, fmt.Errorf("kubernetes client (--kubeconfig or in-cluster): %w", err)
		}
		cfg.UserAgent = "kube-iam-authz"
		return kubernetes.NewForConfig(cfg)
	})
}
