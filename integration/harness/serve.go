package harness

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// serveReadyTimeout bounds serve's start-up: load the mappings, listen, report ready.
const serveReadyTimeout = 30 * time.Second

// ServeCluster is one extra cluster of `kube-iam-authz serve` (its --config
// `clusters` list), selected per route by Envoy context_extensions.
type ServeCluster struct {
	Name        string `json:"name"`
	ClusterID   string `json:"clusterID"`
	MappingFile string `json:"mappingFile"`
}

// ServeOptions configure `kube-iam-authz serve`.
type ServeOptions struct {
	// ClusterID and MappingFile are the default cluster (--cluster-id, --mapping-file).
	ClusterID   string
	MappingFile string
	// MappingConfigMap (NAMESPACE/NAME), instead of MappingFile, reads the
	// default cluster's mapping from the API server Kubeconfig names
	// (--mapping-configmap, --kubeconfig).
	MappingConfigMap, Kubeconfig string
	// Clusters are more clusters, written to a --config file.
	Clusters []ServeCluster
	// STS is the stand-in the server verifies tokens with.
	STS *STSFake
	// UpstreamTokenFile is the proxy's own credential for the API server.
	UpstreamTokenFile string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Serve is a running `kube-iam-authz serve`.
type Serve struct {
	*Process
	// GRPCAddr is the ext_authz gRPC address Envoy calls.
	GRPCAddr string
	// HTTPAddr serves /metrics, /healthz and /readyz.
	HTTPAddr string

	path   string
	args   []string
	client *http.Client
}

// StartServe starts $KIA_BIN/kube-iam-authz serve on free loopback ports and waits
// until /readyz answers 200 (mappings loaded, gRPC serving).
func StartServe(t testing.TB, o ServeOptions) *Serve {
	t.Helper()
	if o.STS == nil || o.ClusterID == "" || (o.MappingFile == "") == (o.MappingConfigMap == "") {
		t.Fatalf("harness: ServeOptions needs STS, ClusterID and one of MappingFile and MappingConfigMap")
	}
	s := &Serve{
		GRPCAddr: FreeAddr(t),
		HTTPAddr: FreeAddr(t),
		path:     BinPath(t, BinAuthz),
		client:   &http.Client{Timeout: 5 * time.Second},
	}
	s.args = []string{"serve",
		"--grpc-listen", s.GRPCAddr,
		"--http-listen", s.HTTPAddr,
		"--cluster-id", o.ClusterID,
		"--sts-endpoint", o.STS.URL,
		"--sts-ca-file", o.STS.CAFile,
		"--log-level", "debug",
		// The tests' exec plugins never sleep: a short shutdown keeps restarts quick.
		"--shutdown-grace", "1s",
	}
	if o.MappingFile != "" {
		s.args = append(s.args, "--mapping-file", o.MappingFile)
	} else {
		s.args = append(s.args, "--mapping-configmap", o.MappingConfigMap, "--kubeconfig", o.Kubeconfig)
	}
	if o.UpstreamTokenFile != "" {
		s.args = append(s.args, "--upstream-token-file", o.UpstreamTokenFile)
	}
	if len(o.Clusters) > 0 {
		cfg, err := yaml.Marshal(map[string]any{"clusters": o.Clusters})
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		path := filepath.Join(t.TempDir(), "serve-config.yaml")
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			t.Fatalf("harness: %v", err)
		}
		s.args = append(s.args, "--config", path)
	}
	s.args = append(s.args, o.ExtraArgs...)
	s.start(t)
	return s
}

func (s *Serve) start(t testing.TB) {
	t.Helper()
	s.Process = StartProcess(t, "kube-iam-authz", s.path, s.args...)
	err := s.waitFor(serveReadyTimeout, func() error {
		resp, err := s.client.Get("http://" + s.HTTPAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// Restart starts the server again with the same command line and ports after Stop
// (the earlier process's output stays in its own files).
func (s *Serve) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Metric returns the value of the sample named series on /metrics, where series is
// the exposition form without spaces, e.g.
// `kube_iam_authz_mapping_reloads_total{mapping="default",result="invalid"}` (labels
// in the order the server writes them). A missing series is 0: counters of a
// label set not yet seen are absent.
func (s *Serve) Metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := s.client.Get("http://" + s.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatalf("harness: /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("harness: /metrics: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				t.Fatalf("harness: /metrics %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}
