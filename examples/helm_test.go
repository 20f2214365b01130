package examples

import (
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// TestHelmLint: `helm lint --strict` with every ci values file, with the helm
// version the Makefile pins.
func TestHelmLint(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// The binary is built by go install: its module version is the pinned one
	// (helm's own `version` prints only major.minor for such builds).
	pinned := regexp.MustCompile(`(?m)^HELM_VERSION\s*:=\s*(\S+)`).FindSubmatch(mk)
	bi, err := buildinfo.ReadFile(helmPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if pinned == nil || bi.Main.Path != "helm.sh/helm/v3" || bi.Main.Version != string(pinned[1]) {
		t.Errorf("helm is %s@%s, want helm.sh/helm/v3@ the Makefile's HELM_VERSION (%s)", bi.Main.Path, bi.Main.Version, pinned)
	}
	values, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(values) < 2 {
		t.Fatalf("ci values files: %v %v", values, err)
	}
	for _, v := range values {
		t.Run(filepath.Base(v), func(t *testing.T) {
			out, err := exec.Command(helmPath(t), "lint", "--strict", chartDir, "-f", v).CombinedOutput()
			if err != nil {
				t.Fatalf("helm lint --strict -f %s: %v\n%s", v, err, out)
			}
		})
	}
}

// TestHelmRequiredValues: a chart that cannot work refuses to render, and says
// which value to set (values.schema.json catches misspelt keys and wrong types).
func TestHelmRequiredValues(t *testing.T) {
	tests := map[string]struct {
		set     []string
		wantErr string
	}{
		"no cluster id":            {set: []string{"tls.existingSecret=s"}, wantErr: "clusterId is required"},
		"no certificate":           {set: []string{"clusterId=c"}, wantErr: "tls.existingSecret"},
		"cert-manager, no issuer":  {set: []string{"clusterId=c", "tls.certManager.enabled=true"}, wantErr: "tls.certManager.issuerRef.name is required"},
		"existing mapping unnamed": {set: []string{"clusterId=c", "tls.existingSecret=s", "awsAuth.source=existingConfigMap"}, wantErr: "awsAuth.existingConfigMap.name is required"},
		"cluster mapping unnamed":  {set: []string{"clusterId=c", "tls.existingSecret=s", "awsAuth.source=cluster", "awsAuth.clusterConfigMap="}, wantErr: "awsAuth.clusterConfigMap"},
		"unknown mapping source":   {set: []string{"clusterId=c", "tls.existingSecret=s", "awsAuth.source=file"}, wantErr: "awsAuth.source"},
		"misspelt value":           {set: []string{"clusterID=c", "tls.existingSecret=s"}, wantErr: "additional properties 'clusterID' not allowed"},
		"unknown service type":     {set: []string{"clusterId=c", "tls.existingSecret=s", "service.type=Public"}, wantErr: "service.type"},
		"serve arg without --":     {set: []string{"clusterId=c", "tls.existingSecret=s", "serve.extraArgs={cache-ttl=5m}"}, wantErr: "serve.extraArgs"},
		"minimal":                  {set: []string{"clusterId=c", "tls.existingSecret=s"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, err := helmTemplate(t, args...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("render failed: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("render error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestHelmImageTagDefaultsToAppVersion: with image.tag empty the chart installs
// its appVersion, which is also the version the plain manifests name.
func TestHelmImageTagDefaultsToAppVersion(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %v", err)
	}
	for _, src := range sources()[:2] { // kubernetes, helm/default (image.tag unset)
		t.Run(src.name, func(t *testing.T) {
			m := src.load(t)
			d := theDeployment(t, m)
			c := container(t, &d.Spec.Template.Spec, "kube-iam-authz")
			if want := "ghcr.io/kube-iam-authz/kube-iam-authz:" + chart.AppVersion; c.Image != want {
				t.Errorf("image %q, want %q (Chart.yaml appVersion)", c.Image, want)
			}
		})
	}
}

// TestScrapeConfig: Prometheus finds both kube-iam-authz's /metrics and Envoy's
// /stats/prometheus, through prometheus.io annotations (plain manifests, chart
// default) and the ServiceMonitor (chart, when enabled), and the NetworkPolicy
// lets it in on both ports.
func TestScrapeConfig(t *testing.T) {
	sidecar, inv := loadSidecar(t)
	statsPort := listenerPort(t, sidecar, inv.StatsListeners[0])
	forEachSource(t, func(t *testing.T, m *manifests, src source) {
		d := theDeployment(t, m)
		pod := &d.Spec.Template.Spec
		authz := container(t, pod, "kube-iam-authz")
		envoyCtr := container(t, pod, "envoy")
		metricsPort := portOf(t, serveFlags(t, authz)("http-listen"))
		if p := namedPort(t, authz, intstr.FromString("http-metrics")); p != metricsPort {
			t.Errorf("container port http-metrics %d, --http-listen port %d", p, metricsPort)
		}
		if p := namedPort(t, envoyCtr, intstr.FromString("envoy-metrics")); p != statsPort {
			t.Errorf("container port envoy-metrics %d, stats listener port %d", p, statsPort)
		}
		want := map[int32]string{metricsPort: "/metrics", statsPort: envoy.StatsPath}

		// Annotation-based scraping: the pods for one port, a Service for the other.
		got := map[int32]string{}
		annotated := func(what string, a map[string]string) {
			if a["prometheus.io/scrape"] != "true" {
				return
			}
			n, err := strconv.ParseUint(a["prometheus.io/port"], 10, 16)
			if n == 0 || err != nil {
				t.Errorf("%s: prometheus.io/port %q", what, a["prometheus.io/port"])
			}
			got[int32(n)] = a["prometheus.io/path"]
		}
		annotated("pod template", d.Spec.Template.Annotations)
		for _, svc := range all[*corev1.Service](m) {
			if svc.Annotations["prometheus.io/scrape"] != "true" {
				continue
			}
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("Service %s is annotated for scraping but not headless: Prometheus would scrape a random pod", svc.Name)
			}
			annotated("Service "+svc.Name, svc.Annotations)
		}
		if len(got) != 2 || got[metricsPort] != want[metricsPort] || got[statsPort] != want[statsPort] {
			t.Errorf("prometheus.io annotations scrape %v, want %v", got, want)
		}

		// ServiceMonitor: endpoint port names → Service ports → container ports.
		for _, sm := range all[*monitoringv1.ServiceMonitor](m) {
			sel, err := metav1LabelSelector(&sm.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			var svc *corev1.Service
			for _, s := range all[*corev1.Service](m) {
				if sel.Matches(labels.Set(s.Labels)) {
					if svc != nil {
						t.Errorf("ServiceMonitor %s selects Services %s and %s", sm.Name, svc.Name, s.Name)
					}
					svc = s
				}
			}
			if svc == nil {
				t.Fatalf("ServiceMonitor %s selects no Service", sm.Name)
			}
			if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, d.Namespace) {
				t.Errorf("ServiceMonitor %s namespaceSelector %+v lacks %s", sm.Name, sm.Spec.NamespaceSelector, d.Namespace)
			}
			smGot := map[int32]string{}
			for _, ep := range sm.Spec.Endpoints {
				for _, sp := range svc.Spec.Ports {
					if sp.Name != ep.Port {
						continue
					}
					for _, c := range pod.Containers {
						for _, cp := range c.Ports {
							if cp.Name == sp.TargetPort.StrVal {
								smGot[cp.ContainerPort] = ep.Path
							}
						}
					}
				}
			}
			if len(smGot) != 2 || smGot[metricsPort] != want[metricsPort] || smGot[statsPort] != want[statsPort] {
				t.Errorf("ServiceMonitor %s scrapes %v, want %v", sm.Name, smGot, want)
			}
		}
		if src.name == "helm/full" && len(all[*monitoringv1.ServiceMonitor](m)) != 1 {
			t.Errorf("metrics.serviceMonitor.enabled rendered %d ServiceMonitors", len(all[*monitoringv1.ServiceMonitor](m)))
		}

		// The NetworkPolicy admits both metrics ports.
		np := m.get(t, "NetworkPolicy", d.Name).(*networkingv1.NetworkPolicy)
		admitted := map[int32]bool{}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.Type == intstr.String {
					for _, c := range pod.Containers {
						for _, cp := range c.Ports {
							if cp.Name == p.Port.StrVal {
								admitted[cp.ContainerPort] = true
							}
						}
					}
				}
			}
		}
		if !admitted[metricsPort] || !admitted[statsPort] {
			t.Errorf("NetworkPolicy admits %v, want both metrics ports %d and %d", admitted, metricsPort, statsPort)
		}
	})
}

// TestHelmMonitoringAndCertificate: with everything on (ci/full-values.yaml) the
// PrometheusRule carries exactly the rules promtool tests, the dashboard ConfigMap
// exactly the checked dashboard, and the cert-manager Certificate writes the Secret
// Envoy mounts, for the Service's names.
func TestHelmMonitoringAndCertificate(t *testing.T) {
	m := loadHelm(t, "full-values.yaml", map[string][]string{"my-aws-auth": {"aws-auth.yaml"}})
	d := theDeployment(t, m)

	rules := all[*monitoringv1.PrometheusRule](m)
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	var want harness.RuleFile
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var n int
	for gi, g := range rules[0].Spec.Groups {
		if gi >= len(want.Groups) || g.Name != want.Groups[gi].Name || len(g.Rules) != len(want.Groups[gi].Rules) {
			t.Fatalf("PrometheusRule group %d (%s) differs from %s", gi, g.Name, rulesFile)
		}
		for ri, r := range g.Rules {
			w := want.Groups[gi].Rules[ri]
			if r.Alert != w.Alert || r.Expr.String() != w.Expr {
				t.Errorf("PrometheusRule %s/%s differs from %s", g.Name, r.Alert, rulesFile)
			}
			n++
		}
	}
	if n == 0 || len(rules[0].Spec.Groups) != len(want.Groups) {
		t.Errorf("PrometheusRule has %d rules in %d groups, want %d groups", n, len(rules[0].Spec.Groups), len(want.Groups))
	}

	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	cm := m.get(t, "ConfigMap", d.Name+"-dashboard").(*corev1.ConfigMap)
	if cm.Labels["grafana_dashboard"] != "1" || cm.Data["kube-iam-authz.json"] != string(dash) {
		t.Errorf("dashboard ConfigMap: labels %v, dashboard identical %v", cm.Labels, cm.Data["kube-iam-authz.json"] == string(dash))
	}

	certs := all[*certificate](m)
	if len(certs) != 1 {
		t.Fatalf("%d Certificates, want 1", len(certs))
	}
	cert := certs[0]
	tlsVol := volume(t, &d.Spec.Template.Spec, "listener-tls")
	if tlsVol.Secret == nil || tlsVol.Secret.SecretName != cert.Spec.SecretName {
		t.Errorf("Certificate writes Secret %q, Envoy mounts %+v", cert.Spec.SecretName, tlsVol.Secret)
	}
	svcName := d.Name + "." + d.Namespace + ".svc"
	if !slices.Contains(cert.Spec.DNSNames, svcName) || cert.Spec.IssuerRef.Name != "internal-ca" {
		t.Errorf("Certificate dnsNames %v (want %s), issuer %+v", cert.Spec.DNSNames, svcName, cert.Spec.IssuerRef)
	}
	if cert.Spec.RenewBefore == nil || cert.Spec.Duration == nil || cert.Spec.RenewBefore.Duration >= cert.Spec.Duration.Duration {
		t.Errorf("Certificate duration %v renewBefore %v: want renewal before expiry", cert.Spec.Duration, cert.Spec.RenewBefore)
	}
	if !slices.Equal(cert.Spec.Usages, []string{"server auth"}) {
		t.Errorf("Certificate usages %v, want [server auth]", cert.Spec.Usages)
	}
}

// TestKustomizeBuild: `kubectl kustomize examples/kubernetes` (the real kubectl)
// builds exactly the objects the tests check.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	docs, err := splitYAMLReader(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	built := &manifests{source: "kubectl kustomize", objects: map[string]any{}, files: map[string]string{}}
	built.add(t, docs, func([]byte) string { return "kubectl kustomize output" })
	plain := loadManifests(t)
	var got, want []string
	for k := range built.objects {
		got = append(got, k)
	}
	for k := range plain.objects {
		want = append(want, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("kubectl kustomize builds %v, want %v", got, want)
	}
}
