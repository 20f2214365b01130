package aiadiff

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"sigs.k8s.io/aws-iam-authenticator/pkg/arn"
	"sigs.k8s.io/aws-iam-authenticator/pkg/config"
	"sigs.k8s.io/aws-iam-authenticator/pkg/token"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

// knownRules are the divergences of docs/mapping.md; a difference is
// accepted only when our side names one of them as its cause.
var knownRules = mapping.Rules

func init() {
	// AIA's parser logs every problem through logrus.
	logrus.SetOutput(io.Discard)
	// Compare against AIA with sso matching on (--feature-gates
	// SSORoleMatch=true); with it off every sso row differs (RuleSSO).
	config.SSORoleMatchEnabled = true
}

// instanceDNS is the EC2 both sides see.
func instanceDNS(id string) (string, error) {
	if id == "i-0123456789abcdef0" {
		return "ip-10-0-0-1.ec2.internal", nil
	}
	return "", errNoInstance
}

type fakeEC2 struct{}

func (fakeEC2) PrivateDNSName(_ context.Context, id string) (string, error) {
	name, err := instanceDNS(id)
	if err != nil {
		return "", fmt.Errorf("%w: %v", kubeuser.ErrForbidden, err)
	}
	return name, nil
}

// tally counts files, principals and differences by divergence.
type tally struct {
	files, principals, same, nondeterministic int
	byRule                                    map[string]int
	unexplained                               []string
}

func newTally() *tally { return &tally{byRule: map[string]int{}} }

func (t *tally) String() string {
	rules := make([]string, 0, len(t.byRule))
	for r, n := range t.byRule {
		rules = append(rules, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(rules)
	return fmt.Sprintf("files=%d principals=%d same=%d (of which AIA-nondeterministic=%d) documented differences=%d [%s] unexplained=%d",
		t.files, t.principals, t.same, t.nondeterministic, t.principals-t.same-len(t.unexplained), strings.Join(rules, " "), len(t.unexplained))
}

// compareFile runs both sides over one file's data (what AIA reads from the
// ConfigMap) and ours (the file bytes kube-iam-authz reads), for every
// principal the file suggests.
func compareFile(tb testing.TB, name string, data map[string]string, ours []byte, tl *tally) {
	tb.Helper()
	tl.files++
	store := aiaLoad(data)
	snap, parseErr := mapping.Parse(ours)
	var mapper *mapping.Mapper
	if parseErr == nil {
		var err error
		mapper, err = mapping.NewMapper(mapping.MapperOptions{Snapshots: mapping.StaticSource{Snapshot: snap}, EC2: fakeEC2{}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, p := range principals(data) {
		// An ARN in a partition that does not exist names no principal STS
		// could ever report (the fuzzer writes arn:a:iam::…): there is
		// nothing to compare. Every other principal must be one both sides
		// accept.
		if parts := strings.SplitN(p.arn, ":", 3); len(parts) < 2 || !identity.IsPartition(parts[1]) {
			continue
		}
		tl.principals++
		ourID, err := identity.FromSTS(p.arn, p.account, p.userID, p.accessKeyID)
		if err != nil {
			tb.Fatalf("%s: principal %s: %v", name, p.arn, err)
		}
		_, canonical, err := arnCanonicalize(p.arn)
		if err != nil {
			tb.Fatalf("%s: principal %s: AIA: %v", name, p.arn, err)
		}
		if canonical != ourID.CanonicalARN {
			tb.Fatalf("%s: principal %s: canonical ARN %s, AIA's %s", name, p.arn, ourID.CanonicalARN, canonical)
		}
		aiaID := aiaIdentity(p, canonical)
		if aiaID.SessionName != ourID.SessionName {
			tb.Fatalf("%s: principal %s: session name %q, AIA's %q", name, p.arn, ourID.SessionName, aiaID.SessionName)
		}
		want := store.aiaMap(aiaID, instanceDNS)
		got := result{refused: true}
		var match mapping.Match
		var mapErr error
		if mapper != nil {
			var u kubeuser.User
			u, match, mapErr = mapper.Explain(context.Background(), ourID)
			if mapErr == nil {
				got = result{username: u.Username, groups: u.Groups}
			}
		}
		agree := slices.ContainsFunc(want, got.same)
		if agree {
			tl.same++
			if distinct(want) > 1 {
				tl.nondeterministic++
			}
			continue
		}
		rule := explain(parseErr, mapErr, match, snap, ourID, want)
		if rule == "" || !slices.Contains(knownRules, rule) {
			tl.unexplained = append(tl.unexplained, fmt.Sprintf("%s: %s (session %q, id %s): AIA %v, ours %v (err %v, rule %q)", name, p.arn, ourID.SessionName, p.userID, want, got, mapErr, rule))
			continue
		}
		tl.byRule[rule]++
	}
}

func distinct(rs []result) int {
	n := 0
	for i, r := range rs {
		if !slices.ContainsFunc(rs[:i], r.same) {
			n++
		}
	}
	return n
}

// explain names the divergence behind a difference from our side's own
// evidence: the file refused for a structural error, the rule our refusal
// carries, an entry our lookup passed over (dropped or pinned), an sso
// match, or several AIA answers where ours is the deterministic choice.
func explain(parseErr, mapErr error, match mapping.Match, snap *mapping.Snapshot, id identity.Identity, want []result) string {
	if parseErr != nil {
		return mapping.RuleStructural
	}
	if r := mapping.RuleOf(mapErr); r != "" {
		return r
	}
	for _, b := range snap.Bypassed(id) {
		if r := mapping.RuleOf(b); r != "" {
			return r
		}
	}
	if match.SSO || slices.ContainsFunc(want, func(r result) bool { return r.viaSSO }) {
		return mapping.RuleSSO
	}
	return ""
}

// arnCanonicalize is AIA's canonicalisation of a principal ARN.
var arnCanonicalize = arn.Canonicalize

// aiaIdentity is the token.Identity AIA's verifier builds from a
// GetCallerIdentity answer: the session name is the part of the UserId
// after the colon for an assumed role.
func aiaIdentity(p principal, canonical string) *token.Identity {
	id := &token.Identity{ARN: p.arn, CanonicalARN: canonical, AccountID: p.account, UserID: p.userID, AccessKeyID: p.accessKeyID}
	if strings.Contains(p.arn, ":assumed-role/") {
		if _, s, ok := strings.Cut(p.userID, ":"); ok {
			id.SessionName = s
		}
	}
	return id
}

// principal is one STS GetCallerIdentity answer.
type principal struct {
	arn, account, userID, accessKeyID string
}

var (
	arnPattern     = regexp.MustCompile(`arn:[a-z-]+:(iam|sts)::[0-9]+:[A-Za-z0-9+=,.@_/-]+`)
	accountPattern = regexp.MustCompile(`\b[0-9]{12}\b`)
	permSetPattern = regexp.MustCompile(`(?i)permissionSetName["']?\s*:\s*["']?([\w+=,.@-]+)`)
	idPattern      = regexp.MustCompile(`(?i)(?:userid|roleid)["']?\s*:\s*["']?([A-Za-z0-9]+)`)
)

// sessions are the session names every role principal is tried with: an
// e-mail (the @ of {{SessionName}}), a real instance ID, an unknown one,
// and "system" (the reserved-prefix smuggle).
var sessions = []string{"alice@example.com", "i-0123456789abcdef0", "i-00000000", "system"}

// principals derives the identities a file is about: every ARN it names (a
// role as its sessions, also with its path removed and its case changed),
// IAM Identity Center roles for its permission sets, a user in every
// account it names, the principal IDs it pins, and a few strangers.
func principals(data map[string]string) []principal {
	text := data["mapRoles"] + "\n" + data["mapUsers"] + "\n" + data["mapAccounts"]
	var out []principal
	seen := map[string]bool{}
	pinned := idPattern.FindAllStringSubmatch(text, -1)
	add := func(p principal) {
		key := p.arn + "|" + p.userID
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, p)
	}
	role := func(partition, account, name string) {
		for _, s := range sessions {
			add(principal{arn: "arn:" + partition + ":sts::" + account + ":assumed-role/" + name + "/" + s, account: account, userID: "AROAEXAMPLE:" + s, accessKeyID: "ASIAEXAMPLE"})
		}
		for _, m := range pinned {
			add(principal{arn: "arn:" + partition + ":sts::" + account + ":assumed-role/" + name + "/s", account: account, userID: m[1] + ":s", accessKeyID: "ASIAEXAMPLE"})
		}
	}
	user := func(a string, account string, userID string) {
		add(principal{arn: a, account: account, userID: userID, accessKeyID: "AKIAEXAMPLE"})
		for _, m := range pinned {
			if !strings.HasSuffix(a, ":root") && !strings.Contains(a, ":federated-user/") {
				add(principal{arn: a, account: account, userID: m[1], accessKeyID: "AKIAEXAMPLE"})
			}
		}
	}
	for _, a := range arnPattern.FindAllString(text, -1) {
		parts := strings.SplitN(a, ":", 6)
		if len(parts) < 6 || len(parts[4]) != 12 {
			continue
		}
		partition, account, resource := parts[1], parts[4], parts[5]
		switch {
		case strings.HasPrefix(resource, "role/") || strings.HasPrefix(resource, "assumed-role/"):
			segs := strings.Split(resource, "/")
			name := segs[len(segs)-1]
			if strings.HasPrefix(resource, "assumed-role/") && len(segs) >= 3 {
				name = segs[len(segs)-2]
			}
			if name == "" {
				continue
			}
			role(partition, account, name)
			role(partition, account, swapCase(name))
		case strings.HasPrefix(resource, "user/"):
			user(a, account, "AIDAEXAMPLE")
			user(strings.Replace(a, resource, "user/"+swapCase(strings.TrimPrefix(resource, "user/")), 1), account, "AIDAEXAMPLE")
		case resource == "root":
			user(a, account, account)
		case strings.HasPrefix(resource, "federated-user/"):
			user(a, account, account+":"+strings.TrimPrefix(resource, "federated-user/"))
		}
	}
	accounts := accountPattern.FindAllString(text, -1)
	for _, m := range permSetPattern.FindAllStringSubmatch(text, -1) {
		for _, account := range accounts {
			role("aws", account, "AWSReservedSSO_"+m[1]+"_0123456789abcdef")
			role("aws", account, "AWSReservedSSO_"+m[1]+"_ReadOnly_0123456789abcdef")
			role("aws-cn", account, "AWSReservedSSO_"+m[1]+"_0123456789abcdef")
		}
	}
	for _, account := range accounts {
		user("arn:aws:iam::"+account+":user/stranger", account, "AIDASTRANGER")
	}
	user("arn:aws:iam::999999999999:user/nobody", "999999999999", "AIDANOBODY")
	role("aws", "999999999999", "Nobody")
	return out
}

func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// dataOf turns one of our mapping files into the ConfigMap data AIA reads:
// the data of a ConfigMap manifest, a bare data map, or the structured
// shape with each list re-encoded as the YAML string a ConfigMap would
// hold. ok is false for a file that is no ConfigMap at all (it could not
// reach AIA through the API server).
func dataOf(raw []byte) (map[string]string, bool) {
	var top map[string]any
	if err := sigsyaml.Unmarshal(raw, &top); err != nil {
		return nil, false
	}
	if d, ok := top["data"]; ok {
		top, _ = d.(map[string]any)
	}
	data := map[string]string{}
	for k, v := range top {
		switch v := v.(type) {
		case string:
			data[k] = v
		case nil:
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, false
			}
			data[k] = string(b)
		}
	}
	return data, true
}

// storedInConfigMap returns data as a ConfigMap holds it once the API
// server has decoded it from JSON: invalid UTF-8 becomes U+FFFD, so neither
// AIA's informer nor ours can ever read a raw 0x91 byte (a fuzzed comment
// with one was refused by AIA's YAML parser and read by ours through the
// JSON of asConfigMap: two different inputs, not a difference).
func storedInConfigMap(data map[string]string) map[string]string {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	out := map[string]string{}
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// asConfigMap renders data as the ConfigMap manifest our side reads.
func asConfigMap(data map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]string{"name": "aws-auth", "namespace": "kube-system"}, "data": data})
	return b
}

// fixtureFiles are every mapping fixture of the project plus the
// real-world shapes in testdata/shapes.
func fixtureFiles(t *testing.T) []string {
	var files []string
	for _, pattern := range []string{"../../mapping/testdata/*", "../../examples/aws-auth.yaml", "testdata/shapes/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func TestDifferentialAgainstAIA(t *testing.T) {
	tl := newTally()
	shapes := 0
	for _, f := range fixtureFiles(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, "testdata/shapes/") {
			shapes++
			if !regexp.MustCompile(`(?m)^# source: .+`).Match(raw) {
				t.Errorf("%s: no '# source:' comment naming the kind of source it mirrors", f)
			}
		}
		data, ok := dataOf(raw)
		if !ok {
			t.Errorf("%s: not a ConfigMap or data map AIA could read", f)
			continue
		}
		compareFile(t, filepath.Base(f), data, raw, tl)
	}
	if shapes < 30 {
		t.Errorf("%d real-world shapes, want at least 30", shapes)
	}
	t.Logf("differential against aws-iam-authenticator: %s", tl)
	for _, u := range tl.unexplained {
		t.Errorf("unexplained difference: %s", u)
	}
}

// FuzzDifferential generates a ConfigMap's three data strings and compares
// both sides for every principal they name.
func FuzzDifferential(f *testing.F) {
	f.Add("- rolearn: arn:aws:iam::111122223333:role/Admin\n  username: admin\n  groups: [system:masters]\n", "- userarn: arn:aws:iam::111122223333:role/Dev\n  username: dev\n", "- \"444455556666\"\n")
	f.Add("- rolearn: arn:aws:iam::111122223333:role/team/Admin\n  username: \"{{SessionName}}\"\n", "- userarn: arn:aws:iam::111122223333:user/Bob\n  username: bob\n  groups:\n  - a\n   - b\n", "- 012345678901\n")
	f.Add("- sso: {permissionSetName: Admin, accountID: \"111122223333\"}\n  username: sso-{{SessionName}}\n", "", "")
	f.Add("- rolearn: arn:aws:iam::111122223333:role/Node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:bootstrappers, system:nodes]\n", "- userarn: arn:aws:iam::111122223333:user/A\n  username: a\n- userarn: arn:aws:iam::111122223333:user/a\n  username: b\n", "")
	f.Fuzz(func(t *testing.T, roles, users, accounts string) {
		data := storedInConfigMap(map[string]string{"mapRoles": roles, "mapUsers": users, "mapAccounts": accounts})
		tl := newTally()
		compareFile(t, "fuzz", data, asConfigMap(data), tl)
		for _, u := range tl.unexplained {
			t.Errorf("unexplained difference: %s", u)
		}
	})
}
