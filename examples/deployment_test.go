package examples

import (
	"io"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-iam-authz/kube-iam-authz/authz/impersonate"
	"github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app"
	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/mapping/configmap"
)

// subcommand returns a fresh `kube-iam-authz <name>` command whose flags
// parse exactly what the real binary parses.
func subcommand(t *testing.T, name string) *cobra.Command {
	t.Helper()
	root := app.NewRootCommand(app.Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	cmd, _, err := root.Find([]string{name})
	if err != nil || cmd.Name() != name {
		t.Fatalf("kube-iam-authz has no %q command: %v", name, err)
	}
	return cmd
}

func container(t *testing.T, pod *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range pod.Containers {
		if pod.Containers[i].Name == name {
			return &pod.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func volume(t *testing.T, pod *corev1.PodSpec, name string) *corev1.Volume {
	t.Helper()
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	t.Fatalf("no volume %q", name)
	return nil
}

// mountFor returns the mount whose directory is exactly dir(file), and the
// volume behind it.
func mountFor(t *testing.T, pod *corev1.PodSpec, c *corev1.Container, file string) (*corev1.VolumeMount, *corev1.Volume) {
	t.Helper()
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path.Dir(file) {
			return &c.VolumeMounts[i], volume(t, pod, c.VolumeMounts[i].Name)
		}
	}
	t.Fatalf("container %s: no volume mounted at %s (for %s)", c.Name, path.Dir(file), file)
	return nil, nil
}

// filesOf lists the file names a volume puts in its directory.
func filesOf(t *testing.T, m *manifests, v *corev1.Volume) []string {
	t.Helper()
	var out []string
	items := func(its []corev1.KeyToPath) {
		for _, it := range its {
			out = append(out, it.Path)
		}
	}
	switch {
	case v.ConfigMap != nil:
		if len(v.ConfigMap.Items) > 0 {
			items(v.ConfigMap.Items)
			break
		}
		if keys, ok := m.external[v.ConfigMap.Name]; ok {
			out = append(out, keys...)
			break
		}
		for k := range m.get(t, "ConfigMap", v.ConfigMap.Name).(*corev1.ConfigMap).Data {
			out = append(out, k)
		}
	case v.Secret != nil:
		items(v.Secret.Items)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			switch {
			case s.ConfigMap != nil:
				items(s.ConfigMap.Items)
			case s.Secret != nil:
				items(s.Secret.Items)
			case s.ServiceAccountToken != nil:
				out = append(out, s.ServiceAccountToken.Path)
			}
		}
	}
	return out
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return int32(n)
}

// namedPort resolves a probe or Service port (number or name) against a
// container's ports.
func namedPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

// theDeployment is the source's one Deployment.
func theDeployment(t *testing.T, m *manifests) *appsv1.Deployment {
	t.Helper()
	ds := all[*appsv1.Deployment](m)
	if len(ds) != 1 {
		t.Fatalf("%s: %d Deployments, want 1", m.source, len(ds))
	}
	return ds[0]
}

// loadSidecar is the reviewed Envoy config and its inventory.
func loadSidecar(t *testing.T) (*bootstrapv3.Bootstrap, envoy.Inventory) {
	t.Helper()
	sidecar, secrets, err := envoy.LoadWithSecrets(filepath.Join("..", "envoy", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// With the SDS files' certificates, keys, CAs and watched directories: all
	// of them must be mounted.
	inv, err := envoy.InventorizeAll(sidecar, secrets)
	if err != nil {
		t.Fatal(err)
	}
	return sidecar, inv
}

// listenerPort is the port of a named listener of the reviewed config.
func listenerPort(t *testing.T, b *bootstrapv3.Bootstrap, name string) int32 {
	t.Helper()
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetName() == name {
			return int32(l.GetAddress().GetSocketAddress().GetPortValue())
		}
	}
	t.Fatalf("envoy/sidecar.yaml has no listener %q", name)
	return 0
}

// serveFlags parses the kube-iam-authz container's args with the real serve flags.
func serveFlags(t *testing.T, c *corev1.Container) func(name string) string {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %v: want serve first", c.Args)
	}
	serve := subcommand(t, "serve")
	if err := serve.ParseFlags(c.Args[1:]); err != nil {
		t.Fatalf("kube-iam-authz serve does not accept %v: %v", c.Args[1:], err)
	}
	return func(name string) string {
		v, err := serve.Flags().GetString(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestDeployment(t *testing.T) {
	forEachSource(t, testDeployment)
}

func testDeployment(t *testing.T, m *manifests, src source) {
	d := theDeployment(t, m)
	pod := &d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	sel, err := metav1LabelSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("deployment selector %v does not match its pod labels %v (%v)", d.Spec.Selector, podLabels, err)
	}
	if len(pod.Containers) != 2 {
		t.Errorf("want 2 containers (envoy, kube-iam-authz), have %d", len(pod.Containers))
	}

	sidecar, inv := loadSidecar(t)
	sidecarYAML, err := os.ReadFile(filepath.Join("..", "envoy", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("envoy", func(t *testing.T) {
		c := container(t, pod, "envoy")
		makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
		if err != nil {
			t.Fatal(err)
		}
		v := regexp.MustCompile(`(?m)^ENVOY_VERSION\s*:=\s*(\S+)`).FindSubmatch(makefile)
		if v == nil || c.Image != "envoyproxy/envoy:v"+string(v[1]) {
			t.Errorf("envoy image %q, want the version the tests run (Makefile ENVOY_VERSION %s)", c.Image, v)
		}
		// --config-path must name sidecar.yaml in the envoy-sidecar ConfigMap mount.
		i := slices.Index(c.Args, "--config-path")
		if i < 0 || i+1 >= len(c.Args) {
			t.Fatalf("envoy args %v: no --config-path", c.Args)
		}
		cfg := c.Args[i+1]
		_, vol := mountFor(t, pod, c, cfg)
		if vol.ConfigMap == nil || !slices.Contains(filesOf(t, m, vol), path.Base(cfg)) {
			t.Fatalf("--config-path %s is not a key of a mounted ConfigMap", cfg)
		}
		// ... and that key is envoy/sidecar.yaml byte for byte: the pod runs exactly
		// the reviewed config.
		if got := m.get(t, "ConfigMap", vol.ConfigMap.Name).(*corev1.ConfigMap).Data[path.Base(cfg)]; got != string(sidecarYAML) {
			t.Errorf("ConfigMap %s[%s] differs from envoy/sidecar.yaml (%d vs %d bytes)", vol.ConfigMap.Name, path.Base(cfg), len(got), len(sidecarYAML))
		}
		// The SDS files it reads beside it are envoy/sds/* byte for byte too.
		sds, err := envoy.SecretSources(sidecar)
		if err != nil {
			t.Fatal(err)
		}
		if len(sds) == 0 {
			t.Errorf("envoy/sidecar.yaml reads no SDS file: certificates would never rotate")
		}
		for _, p := range slices.Sorted(maps.Keys(sds)) {
			want, err := os.ReadFile(filepath.Join("..", "envoy", "sds", path.Base(p)))
			if err != nil {
				t.Fatal(err)
			}
			_, v := mountFor(t, pod, c, p)
			if v.ConfigMap == nil || v.ConfigMap.Name != vol.ConfigMap.Name {
				t.Errorf("SDS file %s is not a key of the ConfigMap %s beside the config", p, vol.ConfigMap.Name)
				continue
			}
			if got := m.get(t, "ConfigMap", v.ConfigMap.Name).(*corev1.ConfigMap).Data[path.Base(p)]; got != string(want) {
				t.Errorf("ConfigMap %s[%s] differs from envoy/sds/%s (%d vs %d bytes)", v.ConfigMap.Name, path.Base(p), path.Base(p), len(got), len(want))
			}
		}
		// Every file the reviewed config and its SDS files read is provided by a
		// mount.
		for _, f := range inv.Files {
			_, vol := mountFor(t, pod, c, f)
			if !slices.Contains(filesOf(t, m, vol), path.Base(f)) {
				t.Errorf("envoy/sidecar.yaml reads %s; volume %s provides only %v", f, vol.Name, filesOf(t, m, vol))
			}
		}
		// Every watched directory is a whole volume mount: the kubelet updates it
		// by swapping ..data, which is the move Envoy's watch sees. A subPath
		// mount would never change.
		if len(inv.Dirs) == 0 {
			t.Errorf("envoy/sidecar.yaml watches no directory: certificates would never rotate")
		}
		for _, d := range inv.Dirs {
			var found bool
			for _, vm := range c.VolumeMounts {
				if vm.MountPath == d {
					found = true
					if vm.SubPath != "" || vm.SubPathExpr != "" {
						t.Errorf("watched directory %s is a subPath mount: updates would never arrive", d)
					}
				}
			}
			if !found {
				t.Errorf("envoy/sidecar.yaml watches %s, which is not a volume mount", d)
			}
		}
		// The listener port and the probes.
		https := namedPort(t, c, intstr.FromString("https"))
		if listener := listenerPort(t, sidecar, inv.Listeners[0]); https != listener {
			t.Errorf("container port https = %d, envoy/sidecar.yaml listens on %d", https, listener)
		}
		// The stats listener (Prometheus) is a declared port.
		if stats, p := listenerPort(t, sidecar, inv.StatsListeners[0]), namedPort(t, c, intstr.FromString("envoy-metrics")); p != stats {
			t.Errorf("container port envoy-metrics = %d, envoy/sidecar.yaml's stats listener is on %d", p, stats)
		}
		for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.TCPSocket == nil || namedPort(t, c, p.TCPSocket.Port) != https {
				t.Errorf("%s probe: want tcpSocket on the listener (admin is loopback-only), got %+v", name, p)
			}
		}
	})

	t.Run("kube-iam-authz", func(t *testing.T) {
		c := container(t, pod, "kube-iam-authz")
		flag := serveFlags(t, c)

		// Envoy's ext_authz cluster calls the gRPC port.
		var authzPort uint32
		for _, cl := range sidecar.GetStaticResources().GetClusters() {
			if slices.Contains(inv.AuthzClusters, cl.GetName()) {
				authzPort = cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
			}
		}
		if got := portOf(t, flag("grpc-listen")); uint32(got) != authzPort {
			t.Errorf("--grpc-listen port %d, envoy/sidecar.yaml calls ext_authz on %d", got, authzPort)
		}

		// Probes: readiness is /readyz (mapping loaded); liveness is
		// /healthz (the process is alive), never readiness and never the
		// gRPC health service (which follows readiness): a pod whose
		// mapping does not load must stay up and unready, not be restarted
		// in a loop.
		rp := c.ReadinessProbe
		if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || namedPort(t, c, rp.HTTPGet.Port) != portOf(t, flag("http-listen")) {
			t.Errorf("readiness probe %+v: want GET /readyz on --http-listen's port", rp)
		}
		lp := c.LivenessProbe
		if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || namedPort(t, c, lp.HTTPGet.Port) != portOf(t, flag("http-listen")) {
			t.Errorf("liveness probe %+v: want GET /healthz on --http-listen's port (not /readyz, not gRPC health)", lp)
		}
		// Envoy is the only Check client and shares the pod's loopback.
		if host, _, _ := net.SplitHostPort(flag("grpc-listen")); host != "127.0.0.1" {
			t.Errorf("--grpc-listen %s: want 127.0.0.1 (only the pod's Envoy calls Check)", flag("grpc-listen"))
		}

		// The mapping comes from exactly one source. A ConfigMap read through
		// the API needs no volume (testRBAC checks what the proxy may read).
		// A file is a whole-directory ConfigMap mount: the kubelet updates it
		// by swapping ..data, which is what serve watches. A subPath mount
		// would never change.
		switch mf, mc := flag("mapping-file"), flag("mapping-configmap"); {
		case (mf == "") == (mc == ""):
			t.Errorf("--mapping-file %q, --mapping-configmap %q: want exactly one", mf, mc)
		case mf != "":
			mount, vol := mountFor(t, pod, c, mf)
			if mount.SubPath != "" || mount.SubPathExpr != "" {
				t.Errorf("mapping mount uses subPath: updates would never arrive")
			}
			if vol.ConfigMap == nil || !slices.Contains(filesOf(t, m, vol), path.Base(mf)) {
				t.Errorf("--mapping-file %s is not a key of a mounted ConfigMap", mf)
			}
		}

		// The upstream credential is a projected, expiring service-account token.
		tf := flag("upstream-token-file")
		_, vol := mountFor(t, pod, c, tf)
		var sat *corev1.ServiceAccountTokenProjection
		if vol.Projected != nil {
			for _, s := range vol.Projected.Sources {
				if s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == path.Base(tf) {
					sat = s.ServiceAccountToken
				}
			}
		}
		if sat == nil || sat.ExpirationSeconds == nil || *sat.ExpirationSeconds != 3600 {
			t.Errorf("--upstream-token-file %s: want a projected serviceAccountToken with expirationSeconds 3600, got %+v", tf, sat)
		}
		if flag("cluster-id") == "" {
			t.Errorf("--cluster-id is empty")
		}
	})

	t.Run("security", func(t *testing.T) {
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("automountServiceAccountToken must be false (the projected token is the credential)")
		}
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
		}
		for _, c := range pod.Containers {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no securityContext", c.Name)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: readOnlyRootFilesystem must be true", c.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Errorf("%s: runAsNonRoot must be true", c.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities must drop ALL and add none", c.Name)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s / limit %s: want both, request <= limit", c.Name, r, req.String(), lim.String())
				}
			}
		}
	})

	t.Run("service account and RBAC subject", func(t *testing.T) {
		sa := m.get(t, "ServiceAccount", pod.ServiceAccountName).(*corev1.ServiceAccount)
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s should not automount its token", sa.Name)
		}
		crbs := all[*rbacv1.ClusterRoleBinding](m)
		if len(crbs) != 1 {
			t.Fatalf("%d ClusterRoleBindings, want 1", len(crbs))
		}
		crb := crbs[0]
		want := rbacv1.Subject{Kind: "ServiceAccount", Name: pod.ServiceAccountName, Namespace: d.Namespace}
		if len(crb.Subjects) != 1 || crb.Subjects[0] != want {
			t.Errorf("ClusterRoleBinding subjects %+v, want only %+v", crb.Subjects, want)
		}
	})

	t.Run("service, PDB, HPA, network policy", func(t *testing.T) {
		envoy := container(t, pod, "envoy")
		// The client-facing Service: Envoy's TLS listener, ClusterIP (a public
		// LoadBalancer must be a deliberate choice).
		svc := m.get(t, "Service", d.Name).(*corev1.Service)
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service %s type %q, want ClusterIP by default", svc.Name, svc.Spec.Type)
		}
		if len(svc.Spec.Ports) != 1 || namedPort(t, envoy, svc.Spec.Ports[0].TargetPort) != namedPort(t, envoy, intstr.FromString("https")) {
			t.Errorf("Service %s ports %+v, want only Envoy's https listener", svc.Name, svc.Spec.Ports)
		}
		// Every Service selects the pods and targets declared container ports.
		for _, svc := range all[*corev1.Service](m) {
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
				t.Errorf("Service %s selector %v does not select the pods %v", svc.Name, svc.Spec.Selector, podLabels)
			}
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.Type == intstr.String {
					found := false
					for _, c := range pod.Containers {
						found = found || slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.StrVal })
					}
					if !found {
						t.Errorf("Service %s targets port %q, which no container has", svc.Name, p.TargetPort.StrVal)
					}
				}
			}
		}
		pdb := m.get(t, "PodDisruptionBudget", d.Name).(*policyv1.PodDisruptionBudget)
		if s, err := metav1LabelSelector(pdb.Spec.Selector); err != nil || !s.Matches(podLabels) {
			t.Errorf("PDB selector does not select the pods")
		}
		hpas := all[*autoscalingv2.HorizontalPodAutoscaler](m)
		switch {
		case !src.wantHPA && len(hpas) != 0:
			t.Errorf("%d HPAs with autoscaling disabled", len(hpas))
		case !src.wantHPA:
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Errorf("fixed replicas %v: want at least 2 (the PDB keeps one during disruptions)", d.Spec.Replicas)
			}
		case len(hpas) != 1:
			t.Errorf("%d HPAs, want 1", len(hpas))
		default:
			hpa := hpas[0]
			if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
				t.Errorf("HPA targets %+v, want the Deployment %s", ref, d.Name)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
				t.Errorf("HPA minReplicas should be at least 2 (the PDB keeps one during disruptions)")
			}
		}
		np := m.get(t, "NetworkPolicy", d.Name).(*networkingv1.NetworkPolicy)
		if s, err := metav1LabelSelector(&np.Spec.PodSelector); err != nil || !s.Matches(podLabels) {
			t.Errorf("NetworkPolicy does not select the pods")
		}
		authz := container(t, pod, "kube-iam-authz")
		serve := subcommand(t, "serve")
		if err := serve.ParseFlags(authz.Args[1:]); err != nil {
			t.Fatal(err)
		}
		grpcListen, _ := serve.Flags().GetString("grpc-listen")
		grpcPort := portOf(t, grpcListen)
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("an ingress rule without ports admits the ext_authz gRPC port")
			}
			for _, p := range rule.Ports {
				if p.Port == nil {
					t.Errorf("an ingress port without a number admits every port")
					continue
				}
				n := p.Port.IntVal
				if p.Port.Type == intstr.String {
					n = 0
					for _, c := range pod.Containers {
						for _, cp := range c.Ports {
							if cp.Name == p.Port.StrVal {
								n = cp.ContainerPort
							}
						}
					}
					if n == 0 {
						t.Errorf("NetworkPolicy names port %q, which no container has", p.Port.StrVal)
					}
				}
				if n == grpcPort {
					t.Errorf("NetworkPolicy admits the ext_authz gRPC port %d", n)
				}
			}
		}
	})
}

// TestRBACImpersonatesExactlyWhatServeSends: the proxy's ClusterRole grants
// the impersonate verb on users, groups, uids and userextras/<key> for each
// extra key the server emits (impersonate.ExtraKeys and
// impersonate.ReservedExtraKeys, the lists the Check server's headers are
// built from), create on subjectaccessreviews (--allow-impersonation), and
// nothing else: no serviceaccounts, no wildcard, no other verb.
func TestRBACImpersonatesExactlyWhatServeSends(t *testing.T) {
	forEachSource(t, testRBAC)
}

func testRBAC(t *testing.T, m *manifests, _ source) {
	testAWSAuthRBAC(t, m)
	roles := all[*rbacv1.ClusterRole](m)
	if len(roles) != 1 {
		t.Fatalf("%d ClusterRoles, want 1", len(roles))
	}
	role := roles[0]

	type grant struct{ group, resource, verb string }
	want := map[grant]bool{
		{"", "users", "impersonate"}:                     true,
		{"", "groups", "impersonate"}:                    true,
		{"authentication.k8s.io", "uids", "impersonate"}: true,
	}
	for _, k := range append(impersonate.ExtraKeys(), impersonate.ReservedExtraKeys()...) {
		want[grant{"authentication.k8s.io", "userextras/" + k, "impersonate"}] = true
	}
	want[grant{"authorization.k8s.io", "subjectaccessreviews", "create"}] = true
	got := map[grant]bool{}
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %+v: resourceNames/nonResourceURLs are not expected here", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					got[grant{g, res, v}] = true
				}
			}
		}
	}
	for g := range want {
		if !got[g] {
			t.Errorf("missing grant: %s on %q in group %q", g.verb, g.resource, g.group)
		}
	}
	for g := range got {
		if !want[g] {
			t.Errorf("grant the server never needs: %s on %q in group %q", g.verb, g.resource, g.group)
		}
	}
}

// mappingConfigMapOf is the deployment's --mapping-configmap (NAMESPACE/NAME),
// empty when it mounts a file.
func mappingConfigMapOf(t *testing.T, m *manifests) string {
	t.Helper()
	d := theDeployment(t, m)
	return serveFlags(t, container(t, &d.Spec.Template.Spec, "kube-iam-authz"))("mapping-configmap")
}

// testAWSAuthRBAC: with --mapping-configmap NAMESPACE/NAME, one Role in that
// namespace grants exactly configmap.RequiredVerbs on configmaps with
// resourceNames [NAME] (never all ConfigMaps of kube-system, never a write),
// bound to the proxy's service account by one RoleBinding; with a mapping
// file, there is no Role at all.
func testAWSAuthRBAC(t *testing.T, m *manifests) {
	roles, bindings := all[*rbacv1.Role](m), all[*rbacv1.RoleBinding](m)
	ref := mappingConfigMapOf(t, m)
	if ref == "" {
		if len(roles)+len(bindings) > 0 {
			t.Errorf("%d Roles and %d RoleBindings without --mapping-configmap, want none", len(roles), len(bindings))
		}
		return
	}
	ns, name, _ := strings.Cut(ref, "/")
	if len(roles) != 1 || len(bindings) != 1 {
		t.Fatalf("%d Roles and %d RoleBindings, want 1 each for --mapping-configmap %s", len(roles), len(bindings), ref)
	}
	role, binding := roles[0], bindings[0]
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{name}, Verbs: configmap.RequiredVerbs()}}
	if role.Namespace != ns || !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("Role %s/%s rules %+v, want in %s exactly %+v", role.Namespace, role.Name, role.Rules, ns, want)
	}
	d := theDeployment(t, m)
	sa := d.Spec.Template.Spec.ServiceAccountName
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: d.Namespace}}
	if binding.Namespace != ns || binding.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}) || !reflect.DeepEqual(binding.Subjects, wantSubjects) {
		t.Errorf("RoleBinding %s/%s: roleRef %+v subjects %+v, want %s binding Role %s to %+v", binding.Namespace, binding.Name, binding.RoleRef, binding.Subjects, ns, role.Name, wantSubjects)
	}
}
