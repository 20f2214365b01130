package examples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kinds are the object types the manifests may contain, decoded into the
// real k8s.io/api types. A kind missing here fails the test rather than
// being skipped.
var kinds = map[schema.GroupVersionKind]func() any{
	corev1.SchemeGroupVersion.WithKind("Namespace"):                      func() any { return &corev1.Namespace{} },
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"):                 func() any { return &corev1.ServiceAccount{} },
	corev1.SchemeGroupVersion.WithKind("ConfigMap"):                      func() any { return &corev1.ConfigMap{} },
	corev1.SchemeGroupVersion.WithKind("Service"):                        func() any { return &corev1.Service{} },
	appsv1.SchemeGroupVersion.WithKind("Deployment"):                     func() any { return &appsv1.Deployment{} },
	rbacv1.SchemeGroupVersion.WithKind("ClusterRole"):                    func() any { return &rbacv1.ClusterRole{} },
	rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding"):             func() any { return &rbacv1.ClusterRoleBinding{} },
	rbacv1.SchemeGroupVersion.WithKind("Role"):                           func() any { return &rbacv1.Role{} },
	rbacv1.SchemeGroupVersion.WithKind("RoleBinding"):                    func() any { return &rbacv1.RoleBinding{} },
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):          func() any { return &policyv1.PodDisruptionBudget{} },
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"): func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):            func() any { return &networkingv1.NetworkPolicy{} },
	monitoringv1.SchemeGroupVersion.WithKind("ServiceMonitor"):           func() any { return &monitoringv1.ServiceMonitor{} },
	monitoringv1.SchemeGroupVersion.WithKind("PrometheusRule"):           func() any { return &monitoringv1.PrometheusRule{} },
	certManagerV1.WithKind("Certificate"):                                func() any { return &certificate{} },
}

// certManagerV1 is cert-manager's API group. Its Go module is far larger than what
// the chart uses, so certificate below mirrors the Certificate fields the chart
// sets (cert-manager.io/v1 CertificateSpec), decoded as strictly as the rest: a
// misspelt or unknown field fails.
var certManagerV1 = schema.GroupVersion{Group: "cert-manager.io", Version: "v1"}

type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName string `json:"secretName"`
		IssuerRef  struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
		Duration    *metav1.Duration `json:"duration"`
		RenewBefore *metav1.Duration `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		Usages      []string `json:"usages"`
		DNSNames    []string `json:"dnsNames"`
		IPAddresses []string `json:"ipAddresses"`
	} `json:"spec"`
}

// manifests is every object of one install source (examples/kubernetes, or the Helm
// chart rendered with one values file), by kind and name.
type manifests struct {
	source  string
	objects map[string]any // "Kind/name"
	files   map[string]string
	// external lists ConfigMaps the operator provides (not rendered), with the
	// keys the source says they hold.
	external map[string][]string
}

func (m *manifests) get(t *testing.T, kind, name string) any {
	t.Helper()
	o, ok := m.objects[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %q in %s", kind, name, m.source)
	}
	return o
}

// all returns every object of one kind, sorted by name.
func all[T any](m *manifests) []T {
	var keys []string
	for k := range m.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []T
	for _, k := range keys {
		if o, ok := m.objects[k].(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// source is one way to install: the plain manifests, or the chart with a values
// file. Every deployment check runs on each.
type source struct {
	name string
	load func(t *testing.T) *manifests
	// wantHPA: the source scales with an HPA (else fixed replicas).
	wantHPA bool
}

// chartDir is the Helm chart; its ci/*-values.yaml files are the rendered variants.
var chartDir = filepath.Join("helm", "kube-iam-authz")

func sources() []source {
	return []source{
		{name: "kubernetes", load: loadManifests, wantHPA: true},
		{name: "helm/default", wantHPA: true, load: func(t *testing.T) *manifests {
			return loadHelm(t, "default-values.yaml", nil)
		}},
		{name: "helm/full", wantHPA: false, load: func(t *testing.T) *manifests {
			// full-values.yaml mounts an existing ConfigMap with this key.
			return loadHelm(t, "full-values.yaml", map[string][]string{"my-aws-auth": {"aws-auth.yaml"}})
		}},
		{name: "helm/cluster", wantHPA: true, load: func(t *testing.T) *manifests {
			return loadHelm(t, "cluster-values.yaml", nil)
		}},
	}
}

// forEachSource runs fn on every install source.
func forEachSource(t *testing.T, fn func(t *testing.T, m *manifests, src source)) {
	for _, src := range sources() {
		t.Run(src.name, func(t *testing.T) {
			fn(t, src.load(t), src)
		})
	}
}

// helmPath is the pinned helm CLI the Makefile installs (KIA_HELM).
func helmPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KIA_HELM")
	if path == "" {
		path = filepath.Join("..", ".tools", "bin", "helm")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("helm not found at %s: run `make helm` (or set KIA_HELM): %v", path, err)
	}
	return path
}

// releaseName and releaseNamespace make the chart's names those of the plain
// manifests (fullname = release name when it contains the chart name).
const (
	releaseName      = "kube-iam-authz"
	releaseNamespace = "kube-iam-authz"
	// helmKubeVersion is the Kubernetes version `helm template` renders for: the
	// kubectl the project tests with.
	helmKubeVersion = "1.32.0"
)

func helmTemplate(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	full := append([]string{"template", releaseName, chartDir, "--namespace", releaseNamespace, "--kube-version", helmKubeVersion}, args...)
	cmd := exec.Command(helmPath(t), full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(full, " "), err, stderr.String())
	}
	return out, nil
}

// loadHelm renders the chart with ci/<values> and decodes it like loadManifests.
func loadHelm(t *testing.T, values string, external map[string][]string) *manifests {
	t.Helper()
	out, err := helmTemplate(t, "-f", filepath.Join(chartDir, "ci", values))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{source: "helm -f ci/" + values, objects: map[string]any{}, files: map[string]string{}, external: external}
	docs, err := splitYAMLReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	m.add(t, docs, func(doc []byte) string {
		// helm prefixes each document with "# Source: CHART/templates/FILE".
		for _, line := range strings.Split(string(doc), "\n") {
			if f, ok := strings.CutPrefix(line, "# Source: "); ok {
				return f
			}
		}
		return m.source
	})
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// add decodes docs strictly into m; fileOf names a document's origin.
func (m *manifests) add(t *testing.T, docs [][]byte, fileOf func([]byte) string) {
	t.Helper()
	for i, doc := range docs {
		path := fileOf(doc)
		obj, key, err := decodeStrict(doc)
		if err != nil {
			t.Errorf("%s document %d: %v", path, i+1, err)
			continue
		}
		if prev, dup := m.files[key]; dup {
			t.Errorf("%s: %s is also in %s", path, key, prev)
		}
		m.objects[key], m.files[key] = obj, path
	}
}

// loadManifests decodes every document of every examples/kubernetes/*.yaml
// (except kustomization.yaml) strictly: an unknown or duplicated field, a
// wrong type or an unknown kind is an error.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests found: %v", err)
	}
	m := &manifests{source: "examples/kubernetes", objects: map[string]any{}, files: map[string]string{}}
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		docs, err := splitYAML(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(docs) == 0 {
			t.Errorf("%s: no objects", path)
		}
		m.add(t, docs, func([]byte) string { return path })
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func splitYAML(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return splitYAMLReader(f)
}

func splitYAMLReader(in io.Reader) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func decodeStrict(doc []byte) (any, string, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, "", err
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, "", fmt.Errorf("unexpected kind %s", gvk)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, "", fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return nil, "", err
	}
	if meta.Metadata.Name == "" {
		return nil, "", fmt.Errorf("%s without metadata.name", gvk.Kind)
	}
	return obj, gvk.Kind + "/" + meta.Metadata.Name, nil
}

// TestManifestsDecodeStrictly also checks the namespace of every namespaced
// object and that kustomization.yaml lists exactly the manifest files.
func TestManifestsDecodeStrictly(t *testing.T) {
	forEachSource(t, func(t *testing.T, m *manifests, _ source) {
		clusterScoped := map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true}
		// The one exception: the Role and RoleBinding that let the proxy read
		// the mapping ConfigMap live in that ConfigMap's namespace.
		awsAuthNS, _, _ := strings.Cut(mappingConfigMapOf(t, m), "/")
		for key, obj := range m.objects {
			kind := strings.SplitN(key, "/", 2)[0]
			ns := metaOf(obj).GetNamespace()
			switch {
			case clusterScoped[kind] && ns != "":
				t.Errorf("%s (%s) is cluster-scoped but has namespace %q", key, m.files[key], ns)
			case (kind == "Role" || kind == "RoleBinding") && awsAuthNS != "" && ns == awsAuthNS:
			case !clusterScoped[kind] && ns != releaseNamespace:
				t.Errorf("%s (%s): namespace %q, want %s", key, m.files[key], ns, releaseNamespace)
			}
		}
	})

	m := loadManifests(t)

	raw, err := os.ReadFile(filepath.Join("kubernetes", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var want []string
	for _, f := range m.files {
		want = append(want, filepath.Base(f))
	}
	want = uniqueSorted(want)
	got := uniqueSorted(append([]string(nil), k.Resources...))
	if strings.Join(got, ",") != strings.Join(want, ",") || len(got) != len(k.Resources) {
		t.Errorf("kustomization.yaml resources = %v, want each of %v once", k.Resources, want)
	}
	if len(k.Resources) == 0 || k.Resources[0] != "namespace.yaml" {
		t.Errorf("kustomization.yaml should list namespace.yaml first (plain kubectl apply order), got %v", k.Resources)
	}
}

// metaOf is an object's metadata (every decoded kind implements metav1.Object).
func metaOf(obj any) metav1.Object {
	o, ok := obj.(metav1.Object)
	if !ok {
		panic(fmt.Sprintf("metaOf: %T", obj))
	}
	return o
}

func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, fmt.Errorf("no selector")
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err == nil && sel.Empty() {
		return nil, fmt.Errorf("empty selector selects everything")
	}
	return sel, err
}
