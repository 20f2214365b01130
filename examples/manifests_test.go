package examples

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

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
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):          func() any { return &policyv1.PodDisruptionBudget{} },
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"): func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):            func() any { return &networkingv1.NetworkPolicy{} },
}

// manifests is every object under examples/kubernetes, by kind and name.
type manifests struct {
	objects map[string]any // "Kind/name"
	files   map[string]string
}

func (m *manifests) get(t *testing.T, kind, name string) any {
	t.Helper()
	o, ok := m.objects[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %q in examples/kubernetes", kind, name)
	}
	return o
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
	m := &manifests{objects: map[string]any{}, files: map[string]string{}}
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
		for i, doc := range docs {
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
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
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
	m := loadManifests(t)
	clusterScoped := map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true}
	for key, obj := range m.objects {
		kind := strings.SplitN(key, "/", 2)[0]
		ns := metaOf(obj).Namespace
		switch {
		case clusterScoped[kind] && ns != "":
			t.Errorf("%s (%s) is cluster-scoped but has namespace %q", key, m.files[key], ns)
		case !clusterScoped[kind] && ns != "kube-iam-authz":
			t.Errorf("%s (%s): namespace %q, want kube-iam-authz", key, m.files[key], ns)
		}
	}

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

func metaOf(obj any) metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return o.ObjectMeta
	case *corev1.ServiceAccount:
		return o.ObjectMeta
	case *corev1.ConfigMap:
		return o.ObjectMeta
	case *corev1.Service:
		return o.ObjectMeta
	case *appsv1.Deployment:
		return o.ObjectMeta
	case *rbacv1.ClusterRole:
		return o.ObjectMeta
	case *rbacv1.ClusterRoleBinding:
		return o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return o.ObjectMeta
	case *autoscalingv2.HorizontalPodAutoscaler:
		return o.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return o.ObjectMeta
	}
	panic(fmt.Sprintf("metaOf: %T", obj))
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
