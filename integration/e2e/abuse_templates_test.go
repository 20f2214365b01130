//go:build integration

package e2e

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// templateMapping maps roles whose usernames and groups come from caller-chosen session
// names ({{SessionName}} is whatever the caller passed to sts:AssumeRole).
const templateMapping = `mapRoles: |
  - rolearn: arn:aws:iam::111122223333:role/Node
    username: system:node:{{EC2PrivateDNSName}}
    groups: [system:bootstrappers, system:nodes]
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: dev:{{SessionName}}
    groups: [devs]
  - rolearn: arn:aws:iam::111122223333:role/Ops
    username: "{{SessionName}}:masters"
    groups: [ops]
  - rolearn: arn:aws:iam::111122223333:role/Raw
    username: "{{SessionNameRaw}}"
    groups: [raw]
  - rolearn: arn:aws:iam::111122223333:role/Grp
    username: grp-user
    groups: ["{{SessionName}}"]
`

// fakeEC2 answers DescribeInstances (EC2 query protocol, XML) for a fixed set of
// instances, and records which IDs it was asked about.
type fakeEC2 struct {
	instances map[string]string
	mu        sync.Mutex
	asked     []string
}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "DescribeInstances" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var ids []string
	for key, values := range r.PostForm {
		if strings.HasPrefix(key, "InstanceId.") || (strings.HasPrefix(key, "Filter.") && strings.Contains(key, ".Value.")) {
			ids = append(ids, values...)
		}
	}
	f.mu.Lock()
	f.asked = append(f.asked, ids...)
	f.mu.Unlock()
	type instance struct {
		ID  string `xml:"instanceId"`
		DNS string `xml:"privateDnsName"`
	}
	type reservation struct {
		ID        string     `xml:"reservationId"`
		Instances []instance `xml:"instancesSet>item"`
	}
	var resp struct {
		XMLName      xml.Name      `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
		RequestID    string        `xml:"requestId"`
		Reservations []reservation `xml:"reservationSet>item"`
	}
	resp.RequestID = "00000000-0000-0000-0000-000000000000"
	for _, id := range ids {
		if dns, ok := f.instances[id]; ok {
			resp.Reservations = append(resp.Reservations, reservation{ID: "r-" + id[2:], Instances: []instance{{ID: id, DNS: dns}}})
		}
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprint(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(resp)
}

func startFakeEC2(t *testing.T, instances map[string]string) (*fakeEC2, string) {
	t.Helper()
	f := &fakeEC2{instances: instances}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return f, "http://" + l.Addr().String()
}

// TestAbuseTemplates: session names chosen by the caller that try to render reserved
// usernames or groups (system:masters, other system: names, eks:, aws:, iam:, amazon:),
// a comma-split group, or a node name for an instance that does not exist or for a
// session that is no instance id, are refused and never reach the API server. A real
// instance id, and ordinary session names, work.
//
// AWS session names may hold [\w+=,.@-] only, so one with ':' or '/' cannot exist; if
// STS (or something posing as it) answers with such an ARN anyway, the answer is
// refused as an inconsistent identity (503) before any template runs. With the
// characters AWS allows, "{{SessionName}}:masters" with session "system" and a
// group "devs,admins" are the real attacks, and they are 403.
func TestAbuseTemplates(t *testing.T) {
	ec2, ec2URL := startFakeEC2(t, map[string]string{"i-0123456789abcdef0": "ip-10-0-0-1.eu-west-1.compute.internal"})
	// serve's EC2 client uses the SDK's default credential chain: static keys from the
	// environment, no instance metadata.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEC2LOOKUPEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "ec2-lookup-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	sessions := map[string]relPrincipal{}
	type tcase struct {
		who       string
		wantCode  int
		wantUser  string   // for 200
		wantGroup []string // for 200
	}
	tests := map[string]tcase{
		"node with a real instance id":                 {who: "node-real", wantCode: 200, wantUser: "system:node:ip-10-0-0-1.eu-west-1.compute.internal", wantGroup: []string{"system:bootstrappers", "system:nodes"}},
		"node with an instance id that does not exist": {who: "node-ghost", wantCode: 403},
		"node with a session that is no instance id":   {who: "node-name", wantCode: 403},
		"SessionName:masters with session system":      {who: "ops-system", wantCode: 403},
		"SessionName:masters with session eks":         {who: "ops-eks", wantCode: 403},
		"SessionNameRaw system:masters":                {who: "raw-masters", wantCode: 503},
		"SessionNameRaw system:node:x":                 {who: "raw-node", wantCode: 503},
		"SessionNameRaw eks:cluster-admin":             {who: "raw-eks", wantCode: 503},
		"SessionNameRaw iam:root":                      {who: "raw-iam", wantCode: 503},
		"SessionNameRaw amazon:x":                      {who: "raw-amazon", wantCode: 503},
		"SessionNameRaw aws:x":                         {who: "raw-aws", wantCode: 503},
		"SessionNameRaw with a slash":                  {who: "raw-slash", wantCode: 403},
		"group from SessionName system:masters":        {who: "grp-masters", wantCode: 503},
		"group from SessionName with a comma":          {who: "grp-comma", wantCode: 403},
		"ordinary session with @":                      {who: "dev-email", wantCode: 200, wantUser: "dev:alice-example.com", wantGroup: []string{"devs"}},
		"ordinary raw session":                         {who: "raw-plain", wantCode: 200, wantUser: "systemic", wantGroup: []string{"raw"}},
	}
	roles := map[string][2]string{
		"node-real":   {"Node", "i-0123456789abcdef0"},
		"node-ghost":  {"Node", "i-0fedcba9876543210"},
		"node-name":   {"Node", "my-laptop"},
		"ops-system":  {"Ops", "system"},
		"ops-eks":     {"Ops", "eks"},
		"raw-masters": {"Raw", "system:masters"},
		"raw-node":    {"Raw", "system:node:x"},
		"raw-eks":     {"Raw", "eks:cluster-admin"},
		"raw-iam":     {"Raw", "iam:root"},
		"raw-amazon":  {"Raw", "amazon:x"},
		"raw-aws":     {"Raw", "aws:x"},
		"raw-slash":   {"Raw", "a/b"},
		"grp-masters": {"Grp", "system:masters"},
		"grp-comma":   {"Grp", "devs,admins"},
		"grp-dash":    {"Grp", "system-masters"},
		"dev-email":   {"Dev", "alice@example.com"},
		"raw-plain":   {"Raw", "systemic"},
	}
	i := 0
	for who, rs := range roles {
		i++
		sessions[who] = relRole(fmt.Sprintf("ASIATEMPLATE%08d", i), rs[0], rs[1])
	}
	s := newRelStack(t, relOptions{
		mapping:    templateMapping,
		principals: sessions,
		serveArgs:  []string{"--ec2-lookups", "--ec2-region", "eu-west-1", "--ec2-endpoint", ec2URL},
	})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			since := s.lastSeq(t)
			r := s.get(t, s.token(t, tc.who))
			recorded := s.recorded(t, since)
			if tc.wantCode != 200 {
				if r.status != tc.wantCode {
					t.Errorf("HTTP %d (%q), want %d", r.status, r.body, tc.wantCode)
				}
				if len(recorded) != 0 {
					t.Errorf("reached the API server as %q", recorded[0].Lines("Impersonate-User"))
				}
				return
			}
			if r.status != 200 || len(recorded) != 1 {
				t.Fatalf("HTTP %d (%q), %d upstream; want 200 and 1", r.status, r.body, len(recorded))
			}
			if u := recorded[0].Lines("Impersonate-User"); len(u) != 1 || u[0] != tc.wantUser {
				t.Errorf("Impersonate-User %q, want %q", u, tc.wantUser)
			}
			if g := recorded[0].Lines("Impersonate-Group"); strings.Join(g, "\n") != strings.Join(tc.wantGroup, "\n") {
				t.Errorf("Impersonate-Group %q, want %q", g, tc.wantGroup)
			}
		})
	}
	ec2.mu.Lock()
	defer ec2.mu.Unlock()
	for _, id := range ec2.asked {
		if !strings.HasPrefix(id, "i-") {
			t.Errorf("EC2 was asked about %q, which is no instance id", id)
		}
	}
}
