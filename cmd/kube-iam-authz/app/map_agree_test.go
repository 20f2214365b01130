package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/verify"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

// agreementDNSName answers {{EC2PrivateDNSName}} on both sides.
const agreementDNSName = "ip-10-0-0-1.ec2.internal"

// fixedVerifier verifies every token as one identity.
type fixedVerifier struct{ id identity.Identity }

func (v fixedVerifier) Verify(context.Context, string, string) (verify.Result, error) {
	return verify.Result{Identity: v.id, Fingerprint: "fixture"}, nil
}

// agreementFixtures are every mapping fixture of the project plus inline
// files for the limits serve enforces after the mapping (the dry run once
// reported "mapped" for 17 groups).
func agreementFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "mapping", "testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "..", "examples", "aws-auth.yaml"))
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	groups := func(n int) string {
		gs := make([]string, n)
		for i := range gs {
			gs[i] = "g" + strconv.Itoa(i)
		}
		return "[" + strings.Join(gs, ", ") + "]"
	}
	out["inline-groups.yaml"] = []byte(fmt.Sprintf(`mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/AtLimit
    username: at-limit
    groups: %s
  - rolearn: arn:aws:iam::111122223333:role/OverLimit
    username: over-limit
    groups: %s
`, groups(check.MaxGroups), groups(check.MaxGroups+1)))
	out["inline-cli.yaml"] = []byte(testMapping)
	if len(out) < 6 {
		t.Fatalf("only %d fixtures found", len(out))
	}
	return out
}

var fixtureARN = regexp.MustCompile(`arn:aws(?:-cn|-us-gov)?:(?:iam|sts)::\d{12}:(?:role|user|assumed-role|root|federated-user)[A-Za-z0-9+=,.@_/-]*`)

// agreementIdentities are the ARNs a fixture names (roles as sessions of
// them), an unmapped user and an account root, as map's flags give them.
func agreementIdentities(data []byte) [][]string {
	var out [][]string
	seen := map[string]bool{}
	add := func(args ...string) {
		k := strings.Join(args, " ")
		if !seen[k] {
			seen[k] = true
			out = append(out, args)
		}
	}
	for _, arn := range fixtureARN.FindAllString(string(data), -1) {
		switch {
		case strings.Contains(arn, ":role/"):
			// Sessions named like a person and like an EC2 instance, so
			// {{SessionName}} and {{EC2PrivateDNSName}} both render.
			add("--arn", arn, "--session-name", "alice")
			add("--arn", arn, "--session-name", "i-0123456789abcdef0")
		default:
			add("--arn", arn)
		}
	}
	add("--arn", "arn:aws:iam::999999999999:user/nobody")
	add("--arn", "arn:aws:iam::444455556666:root")
	return out
}

// serveDecision runs one Check through a real check.Server whose mapper
// reads the same file, and returns (mapped, username, groups, header lines
// in map's order, HTTP code).
func serveDecision(t *testing.T, snap *mapping.Snapshot, id identity.Identity) (bool, []string, int) {
	t.Helper()
	mapper, err := mapping.NewMapper(mapping.MapperOptions{
		Snapshots: mapping.StaticSource{Snapshot: snap},
		EC2:       staticDNS(agreementDNSName),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := check.New(check.Options{
		Verifier:   fixedVerifier{id: id},
		Clusters:   []check.Cluster{{Name: "c", ID: "c", Mapper: mapper}},
		Logger:     zap.NewNop(),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{"authorization": "Bearer k8s-aws-v1.fixture"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if denied := resp.GetDeniedResponse(); denied != nil {
		return false, nil, int(denied.GetStatus().GetCode())
	}
	var lines, groups []string
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "authorization" {
			continue
		}
		lines = append(lines, h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
	}
	slots := resp.GetDynamicMetadata().GetFields()
	for i := 0; ; i++ {
		v, ok := slots["impersonate_group_"+strconv.Itoa(i)]
		if !ok {
			break
		}
		groups = append(groups, "impersonate-group: "+v.GetStringValue())
	}
	// map prints user, groups, uid, extras; serve sends the groups apart.
	out := append([]string{lines[0]}, groups...)
	return true, append(out, lines[1:]...), 200
}

// TestMapAgreesWithServe runs every mapping fixture and every identity it
// names through the `map` dry run and through serve's Check, and requires
// the same decision: both admit with the same header lines, or both refuse
// with a 403 (map exits 2).
func TestMapAgreesWithServe(t *testing.T) {
	var compared, admitted int
	for name, data := range agreementFixtures(t) {
		snap, err := mapping.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		file := writeTemp(t, name, string(data))
		for _, args := range agreementIdentities(data) {
			t.Run(name+" "+strings.Join(args, " "), func(t *testing.T) {
				// A root or federated user's UserId is not a unique id:
				// map derives it, as STS reports it, when none is given.
				principal := "AROAFIXTURE"
				if strings.HasSuffix(args[1], ":root") || strings.Contains(args[1], ":federated-user/") {
					principal = ""
				}
				o := &MapOptions{ARN: args[1], PrincipalID: principal}
				if len(args) == 4 {
					o.SessionName = args[3]
				}
				id, err := o.identity()
				if err != nil {
					t.Fatalf("fixture ARN is not an identity STS reports: %v", err)
				}
				cli := append([]string{"map", "--mapping-file", file, "-o", "json", "--principal-id", principal,
					"--ec2-private-dns-name", agreementDNSName}, args...)
				code, stdout, stderr := runCLI(t, cli...)
				var res mapResult
				if err := json.Unmarshal([]byte(stdout), &res); err != nil {
					t.Fatalf("map exit %d, output %q %q: %v", code, stdout, stderr, err)
				}
				var mapLines []string
				for _, h := range res.Headers {
					mapLines = append(mapLines, h.Name+": "+h.Value)
				}
				serveMapped, serveLines, serveCode := serveDecision(t, snap, id)
				compared++
				if res.Mapped != serveMapped {
					t.Fatalf("map says mapped=%v (%s), serve says mapped=%v (HTTP %d)", res.Mapped, res.Error, serveMapped, serveCode)
				}
				if !serveMapped {
					if wantExit := map[bool]int{true: exitNotMapped, false: 1}[serveCode == 403]; code != wantExit {
						t.Errorf("map exit %d for serve's HTTP %d, want %d", code, serveCode, wantExit)
					}
					return
				}
				admitted++
				if code != 0 || !slices.Equal(mapLines, serveLines) {
					t.Errorf("map (exit %d) sends\n  %s\nserve sends\n  %s", code, strings.Join(mapLines, "\n  "), strings.Join(serveLines, "\n  "))
				}
			})
		}
	}
	// The comparison must have covered both outcomes, or it proves nothing.
	if admitted == 0 || admitted == compared {
		t.Errorf("compared %d identities, %d admitted: the corpus must exercise both outcomes", compared, admitted)
	}
	t.Logf("compared %d identities, %d admitted by both", compared, admitted)
}
