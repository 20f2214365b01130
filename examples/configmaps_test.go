package examples

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

var update = flag.Bool("update", false, "rewrite the generated ConfigMaps under kubernetes/ from their sources")

// copiedConfigMaps are ConfigMaps whose keys are repository files verbatim.
// The deployment mounts them; a test keeps them byte-identical to the
// sources, so the pod runs exactly the reviewed Envoy config and its SDS
// files.
var copiedConfigMaps = map[string]struct {
	file string // manifest under kubernetes/
	name string // ConfigMap name
	// keys maps each data key (= file name in the mounted directory) to its
	// repository file, relative to examples/.
	keys map[string]string
}{
	// sidecar.yaml and the SDS files it reads beside it (/etc/envoy).
	"envoy": {file: "configmap-envoy.yaml", name: "envoy-sidecar", keys: map[string]string{
		"sidecar.yaml":       filepath.Join("..", "envoy", "sidecar.yaml"),
		"listener-cert.yaml": filepath.Join("..", "envoy", "sds", "listener-cert.yaml"),
		"apiserver-ca.yaml":  filepath.Join("..", "envoy", "sds", "apiserver-ca.yaml"),
	}},
}

// renderConfigMap writes each source as the literal block of its data key.
func renderConfigMap(name string, keys map[string]string) ([]byte, error) {
	var b bytes.Buffer
	names := slices.Sorted(maps.Keys(keys))
	sources := make([]string, len(names))
	for i, key := range names {
		sources[i] = filepath.ToSlash(filepath.Join("examples", keys[key]))
	}
	b.WriteString("# GENERATED from " + strings.Join(sources, ", ") + " by\n")
	b.WriteString("#   go test ./examples -run TestCopiedConfigMaps -update\n")
	b.WriteString("# Edit the source, not this file; a test keeps them byte-identical.\n")
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: kube-iam-authz\n")
	b.WriteString("data:\n")
	for _, key := range names {
		src, err := os.ReadFile(keys[key])
		if err != nil {
			return nil, err
		}
		b.WriteString("  " + key + ": |\n")
		for _, line := range strings.SplitAfter(string(src), "\n") {
			if line == "" {
				continue
			}
			if line != "\n" {
				b.WriteString("    ")
			}
			b.WriteString(line)
		}
	}
	return b.Bytes(), nil
}

// chartFiles are repository files the Helm chart ships a copy of (a chart can read
// only its own files): chart path → source, both relative to examples/.
var chartFiles = map[string]string{
	filepath.Join(chartDir, "files", "envoy-sidecar.yaml"):       filepath.Join("..", "envoy", "sidecar.yaml"),
	filepath.Join(chartDir, "files", "envoy-listener-cert.yaml"): filepath.Join("..", "envoy", "sds", "listener-cert.yaml"),
	filepath.Join(chartDir, "files", "envoy-apiserver-ca.yaml"):  filepath.Join("..", "envoy", "sds", "apiserver-ca.yaml"),
	filepath.Join(chartDir, "files", "prometheus-rules.yaml"):    rulesFile,
	filepath.Join(chartDir, "files", "grafana-dashboard.json"):   dashboardFile,
}

// TestChartFilesAreCopies keeps the chart's copies byte-identical to their sources
// (-update rewrites them).
func TestChartFilesAreCopies(t *testing.T) {
	for copyPath, srcPath := range chartFiles {
		t.Run(filepath.Base(copyPath), func(t *testing.T) {
			src, err := os.ReadFile(srcPath)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(copyPath, src, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(copyPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, src) {
				t.Errorf("%s differs from %s; run go test ./examples -run TestChartFilesAreCopies -update", copyPath, srcPath)
			}
		})
	}
}

func TestCopiedConfigMaps(t *testing.T) {
	for name, tc := range copiedConfigMaps {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("kubernetes", tc.file)
			if *update {
				out, err := renderConfigMap(tc.name, tc.keys)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			docs, err := splitYAML(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != 1 {
				t.Fatalf("%s: %d documents, want 1", path, len(docs))
			}
			obj, _, err := decodeStrict(docs[0])
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok || cm.Name != tc.name {
				t.Fatalf("%s: want ConfigMap %q, got %T", path, tc.name, obj)
			}
			if len(cm.Data) != len(tc.keys) || len(cm.BinaryData) != 0 {
				t.Errorf("%s: want exactly the keys %v, have %d data keys", path, slices.Sorted(maps.Keys(tc.keys)), len(cm.Data))
			}
			for key, source := range tc.keys {
				src, err := os.ReadFile(source)
				if err != nil {
					t.Fatal(err)
				}
				if got := cm.Data[key]; got != string(src) {
					t.Errorf("%s data[%q] differs from %s (%d vs %d bytes); regenerate with -update", path, key, source, len(got), len(src))
				}
			}
		})
	}
}

// mountedConfigMap returns the ConfigMap behind the volume that holds file in
// container c, and the file's key; nil when the operator provides it.
func mountedConfigMap(t *testing.T, m *manifests, c string, file string) (*corev1.ConfigMap, string) {
	t.Helper()
	d := theDeployment(t, m)
	pod := &d.Spec.Template.Spec
	_, vol := mountFor(t, pod, container(t, pod, c), file)
	if vol.ConfigMap == nil {
		t.Fatalf("%s is not on a ConfigMap volume", file)
	}
	if _, ok := m.external[vol.ConfigMap.Name]; ok {
		return nil, filepath.Base(file)
	}
	return m.get(t, "ConfigMap", vol.ConfigMap.Name).(*corev1.ConfigMap), filepath.Base(file)
}

// TestAWSAuthConfigMapParses: the mounted mapping file is what serve loads, in
// every install source that renders it.
func TestAWSAuthConfigMapParses(t *testing.T) {
	forEachSource(t, func(t *testing.T, m *manifests, _ source) {
		d := theDeployment(t, m)
		flag := serveFlags(t, container(t, &d.Spec.Template.Spec, "kube-iam-authz"))
		if ref := flag("mapping-configmap"); ref != "" {
			t.Skipf("the mapping is the cluster's own ConfigMap %s, read through the API", ref)
		}
		cm, key := mountedConfigMap(t, m, "kube-iam-authz", flag("mapping-file"))
		if cm == nil {
			t.Skipf("the mapping ConfigMap is the operator's (%v)", m.external)
		}
		snap, err := mapping.Parse([]byte(cm.Data[key]))
		if err != nil {
			t.Fatalf("mapping.Parse: %v", err)
		}
		if c := snap.Counts(); c.Roles == 0 || c.Users == 0 {
			t.Errorf("counts = %+v, want roles and users (the examples map one of each)", c)
		}
		if w := snap.Warnings(); len(w) > 0 {
			t.Errorf("the example mapping has warnings: %v", w)
		}
	})
}

// TestEnvoyConfigMapPassesPolicy: the mounted Envoy config loads and passes
// the config-lint the reviewed file is held to.
func TestEnvoyConfigMapPassesPolicy(t *testing.T) {
	forEachSource(t, func(t *testing.T, m *manifests, _ source) {
		d := theDeployment(t, m)
		c := container(t, &d.Spec.Template.Spec, "envoy")
		i := slices.Index(c.Args, "--config-path")
		if i < 0 || i+1 >= len(c.Args) {
			t.Fatalf("envoy args %v: no --config-path", c.Args)
		}
		cm, key := mountedConfigMap(t, m, "envoy", c.Args[i+1])
		b, err := envoy.Parse([]byte(cm.Data[key]))
		if err != nil {
			t.Fatalf("envoy.Parse: %v", err)
		}
		if err := envoy.CheckPolicy(b); err != nil {
			t.Errorf("CheckPolicy: %v", err)
		}
		// The SDS files it reads are keys of the same ConfigMap (mounted beside it).
		sources, err := envoy.SecretSources(b)
		if err != nil {
			t.Fatal(err)
		}
		secrets := envoy.Secrets{}
		for p := range sources {
			data, ok := cm.Data[path.Base(p)]
			if !ok {
				t.Errorf("sidecar.yaml reads %s; ConfigMap %s has no key %s", p, cm.Name, path.Base(p))
				continue
			}
			if secrets[p], err = envoy.ParseSecrets([]byte(data)); err != nil {
				t.Errorf("ConfigMap %s key %s: %v", cm.Name, path.Base(p), err)
			}
		}
		if err := envoy.CheckSecrets(b, secrets); err != nil {
			t.Errorf("CheckSecrets: %v", err)
		}
	})
}
