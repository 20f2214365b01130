package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cm wraps data lines (already indented by two spaces) in a ConfigMap.
func cm(data string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n" + data
}

func TestParseShapes(t *testing.T) {
	tests := map[string]struct {
		in            string
		wantShape     Shape
		wantCounts    Counts
		wantTemplates []string
		wantWarnings  []string
	}{
		"reference example configmap with node role and sso": {
			in:            string(readTestdata(t, "reference-example.yaml")),
			wantShape:     ShapeConfigMap,
			wantCounts:    Counts{Roles: 1, SSO: 1, Users: 1, Accounts: 1},
			wantTemplates: []string{"{{EC2PrivateDNSName}}"},
		},
		"kubectl get -o yaml with metadata and last-applied annotation": {
			in:            string(readTestdata(t, "kubectl-get.yaml")),
			wantShape:     ShapeConfigMap,
			wantCounts:    Counts{Roles: 2, Users: 1, Accounts: 1},
			wantTemplates: []string{"{{EC2PrivateDNSName}}", "{{SessionName}}"},
		},
		"kubectl get -o json": {
			in:            string(readTestdata(t, "kubectl-get.json")),
			wantShape:     ShapeConfigMap,
			wantCounts:    Counts{Roles: 1, Users: 1, Accounts: 1},
			wantTemplates: []string{"{{SessionName}}"},
		},
		"example file": {
			in:            string(readTestdata(t, "../../examples/aws-auth.yaml")),
			wantShape:     ShapeConfigMap,
			wantCounts:    Counts{Roles: 2, SSO: 1, Users: 1, Accounts: 1},
			wantTemplates: []string{"{{AccountID}}", "{{EC2PrivateDNSName}}", "{{SessionName}}"},
		},
		"bare data map": {
			in:         "mapRoles: |\n  - rolearn: arn:aws:iam::111122223333:role/Dev\n    username: dev\n    groups: [devs]\nmapAccounts: |\n  - \"111122223333\"\n",
			wantShape:  ShapeData,
			wantCounts: Counts{Roles: 1, Accounts: 1},
		},
		"structured yaml": {
			in:         "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/Dev\n    username: dev\nmapUsers:\n  - userarn: arn:aws:iam::111122223333:root\n    username: root-admin\n    groups: [system:masters]\n",
			wantShape:  ShapeStructured,
			wantCounts: Counts{Roles: 1, Users: 1},
		},
		"structured json, dynamicfile layout with userids": {
			in:         string(readTestdata(t, "dynamicfile.json")),
			wantShape:  ShapeStructured,
			wantCounts: Counts{Roles: 1, Users: 1, Accounts: 2},
		},
		"case-insensitive field names like the reference": {
			in:         cm("  mapRoles: |\n    - roleARN: arn:aws:iam::111122223333:role/Dev\n      UserName: dev\n      Groups: [devs]\n  mapUsers: |\n    - userARN: arn:aws:iam::111122223333:user/Bob\n      username: bob\n"),
			wantShape:  ShapeConfigMap,
			wantCounts: Counts{Roles: 1, Users: 1},
		},
		"empty markers mean absent": {
			in:           cm("  mapRoles: \"\"\n  mapUsers: '``'\n  mapAccounts: \"''\"\n"),
			wantShape:    ShapeConfigMap,
			wantWarnings: []string{"the mapping has no entries"},
		},
		"configmap without data": {
			in:           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n",
			wantShape:    ShapeConfigMap,
			wantWarnings: []string{"the mapping has no entries"},
		},
		"yaml anchors and aliases for shared groups": {
			in:         "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: a\n    groups: &g [x, z]\n  - rolearn: arn:aws:iam::111122223333:role/B\n    username: b\n    groups: *g\n",
			wantShape:  ShapeStructured,
			wantCounts: Counts{Roles: 2},
		},
		"unquoted account keeps its leading zero with a warning": {
			in:           cm("  mapAccounts: |\n    - 012345678901\n    - 111122223333\n"),
			wantShape:    ShapeConfigMap,
			wantCounts:   Counts{Accounts: 2},
			wantWarnings: []string{"line 8: mapAccounts[0]: is an unquoted YAML number", "line 9: mapAccounts[1]: is an unquoted YAML number"},
		},
		"duplicate account is a warning": {
			in:           "mapAccounts: [\"111122223333\", \"111122223333\"]\n",
			wantShape:    ShapeStructured,
			wantCounts:   Counts{Accounts: 1},
			wantWarnings: []string{"mapAccounts[1]: duplicate of mapAccounts[0]"},
		},
		"session-controlled reserved name warns": {
			in:            "mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/Node\n    username: system:node:{{SessionName}}\n",
			wantShape:     ShapeStructured,
			wantCounts:    Counts{Roles: 1},
			wantTemplates: []string{"{{SessionName}}"},
			wantWarnings:  []string{"chooses the rest of this system: name"},
		},
		"session template in mapUsers warns": {
			in:            "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/Bob\n    username: bob-{{SessionName}}\n",
			wantShape:     ShapeStructured,
			wantCounts:    Counts{Users: 1},
			wantTemplates: []string{"{{SessionName}}"},
			wantWarnings:  []string{"IAM users have no session name"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			snap, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if snap.Shape() != tc.wantShape {
				t.Errorf("Shape() = %q, want %q", snap.Shape(), tc.wantShape)
			}
			if snap.Counts() != tc.wantCounts {
				t.Errorf("Counts() = %+v, want %+v", snap.Counts(), tc.wantCounts)
			}
			if got := snap.Templates(); !slices.Equal(got, tc.wantTemplates) {
				t.Errorf("Templates() = %q, want %q", got, tc.wantTemplates)
			}
			assertProblems(t, "warning", snap.Warnings(), tc.wantWarnings)
			sum := sha256.Sum256([]byte(tc.in))
			if snap.Hash() != hex.EncodeToString(sum[:]) {
				t.Errorf("Hash() = %s, want the sha256 of the content", snap.Hash())
			}
		})
	}
}

// assertProblems checks that problems are exactly the wanted ones: one
// problem per wanted substring, in order.
func assertProblems(t *testing.T, what string, got []Problem, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d %ss, want %d:\n%s", len(got), what, len(want), problemList(got))
		return
	}
	for i, w := range want {
		if !strings.Contains(got[i].String(), w) {
			t.Errorf("%s %d = %q, want it to contain %q", what, i, got[i].String(), w)
		}
	}
}

func problemList(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// TestParseErrors: structural problems refuse the file in both modes; an
// entry's own problems refuse it in strict mode and drop just that entry
// (reported by Dropped) by default.
func TestParseErrors(t *testing.T) {
	role := func(fields string) string { return "mapRoles:\n  - " + fields + "\n" }
	tests := map[string]struct {
		in         string
		structural bool
		wantErrs   []string // one substring per problem, in file order
		// wantRules are the Rules of the problems, in order, when any is set.
		wantRules []string
		// wantDropped is the number of dropped entries by default (1 if 0).
		wantDropped int
	}{
		"empty file":              {structural: true, in: "  \n", wantErrs: []string{"the file is empty"}},
		"comment only":            {structural: true, in: "# nothing\n", wantErrs: []string{"holds no YAML document"}},
		"bad yaml at top level":   {structural: true, in: "mapRoles: [\n", wantErrs: []string{"line 1: YAML syntax error"}}, // yaml.v3 reports where the construct began
		"bad yaml inside block":   {structural: true, in: cm("  mapRoles: |\n    - rolearn: a\n     username: [\n"), wantErrs: []string{"line 8: mapRoles: YAML syntax error"}},
		"multiple documents":      {structural: true, in: "mapAccounts: []\n---\nmapUsers: []\n", wantErrs: []string{"more than one YAML document"}},
		"top level list":          {structural: true, in: "- a\n", wantErrs: []string{"line 1: the top level must be a mapping"}},
		"duplicate data key":      {structural: true, in: cm("  mapAccounts: \"\"\n  mapAccounts: \"\"\n"), wantErrs: []string{"line 8: data.mapAccounts: duplicate key (first at line 7)"}},
		"missing block indicator": {structural: true, in: cm("  mapRoles:\n    - rolearn: arn:aws:iam::111122223333:role/A\n      username: a\n"), wantErrs: []string{"line 8: data.mapRoles: must be a string holding a YAML list (write `mapRoles: |`"}},
		"key holds a mapping":     {structural: true, in: cm("  mapRoles: |\n    rolearn: arn:aws:iam::111122223333:role/A\n"), wantErrs: []string{"line 8: mapRoles: must be a list, found a mapping"}},
		"misspelt metadata":       {structural: true, in: "apiVersion: v1\nkind: ConfigMap\nmetdata: {}\ndata: {}\n", wantErrs: []string{`not a valid ConfigMap: json: unknown field "metdata"`}},
		"not a configmap":         {structural: true, in: "apiVersion: v1\nkind: Secret\ndata: {}\n", wantErrs: []string{`line 2: kind: is "Secret", want ConfigMap`}},
		"a list of configmaps":    {structural: true, in: "apiVersion: v1\nkind: List\n", wantErrs: []string{"line 2: kind: is a List"}},
		"data without kind":       {structural: true, in: "data:\n  mapAccounts: \"\"\n", wantErrs: []string{"kind: is missing", "apiVersion: is missing"}},
		"mixed shapes":            {structural: true, in: "mapRoles: []\nmapUsers: \"\"\nmapAccounts: |\n  - \"111122223333\"\n", wantErrs: []string{"mixes string values"}},
		"entry not a mapping":     {in: "mapRoles:\n  - just-a-string\n", wantErrs: []string{"line 2: mapRoles[0]: must be a mapping with rolearn"}, wantRules: []string{RuleWrongType}},
		"duplicate field any case": {
			in:        role("rolearn: arn:aws:iam::111122223333:role/A\n    roleARN: arn:aws:iam::111122223333:role/B\n    username: a"),
			wantErrs:  []string{"line 3: mapRoles[0].rolearn: duplicate field (first at line 2"},
			wantRules: []string{RuleDuplicateField},
		},
		"role path never matches": {
			in:       role("rolearn: arn:aws:iam::111122223333:role/dev/admin\n    username: a"),
			wantErrs: []string{"line 2: mapRoles[0].rolearn: has a role path, which the ARNs of role sessions do not carry, so it never matches (as in aws-iam-authenticator); write arn:aws:iam::111122223333:role/admin"},
		},
		"sso role path points at the sso matcher": {
			in:       role("rolearn: arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef\n    username: a"),
			wantErrs: []string{"write arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef (an IAM Identity Center role: or map its permission set with sso:)"},
		},
		"assumed-role rolearn never matches": {
			in:       role("rolearn: arn:aws:sts::111122223333:assumed-role/Dev/sess\n    username: dev"),
			wantErrs: []string{"is an STS session ARN, which never equals a principal's canonical ARN; write the role ARN arn:aws:iam::111122223333:role/Dev"},
		},
		"not an arn":              {in: role("rolearn: NOT AN ARN\n    username: a"), wantErrs: []string{"mapRoles[0].rolearn: invalid ARN"}},
		"unknown partition":       {in: role("rolearn: arn:aws-nk:iam::111122223333:role/R\n    username: a"), wantErrs: []string{"does not have a recognised partition"}},
		"short account in arn":    {in: role("rolearn: arn:aws:iam::1234:role/R\n    username: a"), wantErrs: []string{"account ID in arn:aws:iam::1234:role/R must be 12 digits"}},
		"empty role name":         {in: role("rolearn: arn:aws:iam::111122223333:role/\n    username: a"), wantErrs: []string{`role name "" is not a valid IAM role name`}},
		"arn with whitespace":     {in: role("rolearn: \"arn:aws:iam::111122223333:role/R \"\n    username: a"), wantErrs: []string{"leading or trailing whitespace"}},
		"neither rolearn nor sso": {in: role("username: a"), wantErrs: []string{"line 2: mapRoles[0]: one of rolearn or sso is required"}},
		"both rolearn and sso": {
			in:       role("rolearn: arn:aws:iam::111122223333:role/R\n    sso: {permissionSetName: A, accountID: \"111122223333\"}\n    username: a"),
			wantErrs: []string{"only one of rolearn or sso may be set"},
		},
		"sso validation as the reference": {
			in: role("sso: {permissionSetName: ViewOnlyAccess*, accountID: \"0123456789\", partition: aws-nk}\n    username: a"),
			wantErrs: []string{
				`mapRoles[0].sso.permissionSetName: "ViewOnlyAccess*" is not a permission-set name`,
				`mapRoles[0].sso.accountID: "0123456789" is not a 12-digit account ID`,
				`mapRoles[0].sso.partition: "aws-nk" is not an AWS partition`,
			},
		},
		"sso without permission set":     {in: role("sso: {permissionSet: A, accountID: \"111122223333\"}\n    username: a"), wantErrs: []string{"sso.permissionSetName: is required"}},
		"userid on sso":                  {in: role("sso: {permissionSetName: A, accountID: \"111122223333\"}\n    userid: AROAEXAMPLE\n    username: a"), wantErrs: []string{"cannot pin an sso entry"}, wantRules: []string{RuleUserID}},
		"invalid userid":                 {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    userid: \"AROA:x\"\n    username: a"), wantErrs: []string{`mapRoles[0].userid: "AROA:x" is not an IAM unique ID`}, wantRules: []string{RuleUserID}},
		"userid and roleid":              {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    userid: AROAA\n    roleid: AROAB\n    username: a"), wantErrs: []string{"both userid and roleid are set"}, wantRules: []string{RuleUserID}},
		"missing username":               {in: role("rolearn: arn:aws:iam::111122223333:role/R"), wantErrs: []string{"line 2: mapRoles[0].username: is required"}, wantRules: []string{RuleEmptyName}},
		"empty username":                 {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"\""), wantErrs: []string{"mapRoles[0].username: is empty"}, wantRules: []string{RuleEmptyName}},
		"numeric username":               {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: 1234"), wantErrs: []string{"username: must be a string, found a number 1234; quote it"}, wantRules: []string{RuleWrongType}},
		"yaml 1.1 boolean username":      {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"ok\"\n    groups: [on]"), wantErrs: []string{`groups[0]: must be a string, found "on", which YAML 1.1`}, wantRules: []string{RuleWrongType}},
		"yaml 1.1 octal group":           {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [0o17, n]"), wantErrs: []string{`groups[0]: must be a string, found a number 0o17`, `groups[1]: must be a string, found "n", which YAML 1.1`}},
		"groups as a string":             {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: system:masters"), wantErrs: []string{"groups: must be a list of strings"}, wantRules: []string{RuleWrongType}},
		"empty group":                    {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [x, ~]"), wantErrs: []string{"groups[1]: is empty"}, wantRules: []string{RuleEmptyName}},
		"comma in group":                 {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [\"a,system:masters\"]"), wantErrs: []string{"contains a comma"}, wantRules: []string{RuleNameChars}},
		"newline in group":               {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [\"a\\nb\"]"), wantErrs: []string{"contains a control character U+000A"}, wantRules: []string{RuleNameChars}},
		"carriage return in username":    {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"a\\rb\""), wantErrs: []string{"contains a control character U+000D"}, wantRules: []string{RuleNameChars}},
		"nul in group":                   {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [\"a\\0b\"]"), wantErrs: []string{"contains a control character U+0000"}, wantRules: []string{RuleNameChars}},
		"trailing space in group":        {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [\"admins \"]"), wantErrs: []string{"has leading or trailing whitespace"}, wantRules: []string{RuleNameChars}},
		"unknown template":               {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"{{Session}}\""), wantErrs: []string{"unknown template {{Session}}"}, wantRules: []string{RuleTemplateSyntax}},
		"template wrong case":            {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"{{sessionname}}\""), wantErrs: []string{"unknown template {{sessionname}}"}},
		"unclosed template":              {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"a-{{SessionName\""), wantErrs: []string{"unclosed {{"}},
		"stray braces":                   {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: \"a}}\""), wantErrs: []string{"stray \"}}\""}},
		"unknown template in group":      {in: role("rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [\"g-{{Account}}\"]"), wantErrs: []string{"groups[0]: unknown template {{Account}}"}},
		"invalid account":                {in: "mapAccounts: [\"12345\"]\n", wantErrs: []string{`mapAccounts[0]: "12345" is not a 12-digit account ID`}},
		"unquoted account lost its zero": {in: cm("  mapAccounts: |\n    - 12345678901\n"), wantErrs: []string{"line 8: mapAccounts[0]: 12345678901 is 11 digits, not 12; if the account ID starts with 0, quote it"}},
		"account is a list":              {in: "mapAccounts: [[1]]\n", wantErrs: []string{"mapAccounts[0]: must be a string, found a list"}},
		"every problem is reported": {
			in:          cm("  mapRoles: |\n    - rolearn: bad\n      username: a\n  mapUsers: |\n    - userarn: arn:aws:iam::111122223333:user/U\n  mapAccounts: |\n    - \"1\"\n"),
			wantErrs:    []string{"line 8: mapRoles[0].rolearn: invalid ARN", "line 11: mapUsers[0].username: is required", `line 13: mapAccounts[0]: "1" is not`},
			wantDropped: 3,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Strict: every problem refuses the file.
			snap, err := ParseWith([]byte(tc.in), ParseOptions{Strict: true})
			if snap != nil {
				t.Errorf("strict Parse() returned a snapshot alongside an error")
			}
			var perr *ParseError
			if !errors.As(err, &perr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("strict Parse() error = %v, want a *ParseError wrapping ErrInvalid", err)
			}
			assertProblems(t, "problem", perr.Problems, tc.wantErrs)
			for i, p := range perr.Problems {
				if p.Entry == tc.structural {
					t.Errorf("problem %d Entry = %v, want %v", i, p.Entry, !tc.structural)
				}
				if tc.wantRules != nil && i < len(tc.wantRules) && p.Rule != tc.wantRules[i] {
					t.Errorf("problem %d Rule = %q, want %q", i, p.Rule, tc.wantRules[i])
				}
			}
			// Default: structural problems refuse the file, an entry's
			// problems drop that entry and the snapshot loads.
			snap, err = Parse([]byte(tc.in))
			if tc.structural {
				if snap != nil || !errors.As(err, &perr) {
					t.Fatalf("Parse() = %v, %v; want a *ParseError", snap, err)
				}
				assertProblems(t, "problem", perr.Problems, tc.wantErrs)
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v, want the entries dropped", err)
			}
			assertProblems(t, "dropped", snap.Dropped(), tc.wantErrs)
			want := max(tc.wantDropped, 1)
			if snap.Counts().Dropped != want {
				t.Errorf("Counts().Dropped = %d, want %d", snap.Counts().Dropped, want)
			}
		})
	}
}

// TestParseAIALeniencies: what aws-iam-authenticator accepts without a
// complaint loads here too, with a warning for `mapping check --strict`.
func TestParseAIALeniencies(t *testing.T) {
	role := func(fields string) string { return "mapRoles:\n  - " + fields + "\n" }
	tests := map[string]struct {
		in           string
		wantCounts   Counts
		wantWarnings []string
	}{
		"unknown top level key": {in: "mapRoles: []\nmapGroups: []\n", wantWarnings: []string{"the mapping has no entries", "line 2: mapGroups: unknown key, ignored"}},
		"wrong case data key":   {in: cm("  mapusers: |\n    - userarn: x\n"), wantWarnings: []string{"the mapping has no entries", "line 7: data.mapusers: unknown key, ignored; keys are case-sensitive, did you mean mapUsers?"}},
		"unknown field ignored": {in: cm("  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/A\n      username: a\n      grups: [x]\n"), wantCounts: Counts{Roles: 1}, wantWarnings: []string{"line 10: mapRoles[0].grups: unknown field, ignored"}},
		"unknown field in json": {in: `{"apiVersion":"v1","kind":"ConfigMap","data":{"mapRoles":"- rolearn: arn:aws:iam::111122223333:role/A\n  username: a\n  extra: x\n"}}`, wantCounts: Counts{Roles: 1}, wantWarnings: []string{"line 1: mapRoles[0].extra: unknown field, ignored"}},
		"rolearn under mapUsers is ignored so userarn is missing": {
			in:           "mapUsers:\n  - rolearn: arn:aws:iam::111122223333:role/A\n    username: a\n",
			wantCounts:   Counts{Dropped: 1},
			wantWarnings: []string{"the mapping has no entries", "mapUsers[0].rolearn: ignored: rolearn belongs in mapRoles"},
		},
		"role arn under mapUsers maps the role": {
			in:           "mapUsers:\n  - userarn: arn:aws:iam::111122223333:role/R\n    username: a\n",
			wantCounts:   Counts{Users: 1},
			wantWarnings: []string{"is a role ARN under mapUsers; like aws-iam-authenticator this maps the role's sessions, after every mapRoles entry"},
		},
		"user arn under mapRoles maps the user": {
			in:           role("rolearn: arn:aws:iam::111122223333:user/Bob\n    username: a"),
			wantCounts:   Counts{Roles: 1},
			wantWarnings: []string{"is an IAM user ARN under mapRoles"},
		},
		"duplicate role arn any case, the later wins": {
			in:           role("rolearn: arn:aws:iam::111122223333:role/Dev\n    username: a") + "  - rolearn: arn:aws:iam::111122223333:role/dev\n    username: b\n",
			wantCounts:   Counts{Roles: 1},
			wantWarnings: []string{"line 4: mapRoles[1]: duplicate of mapRoles[0] (line 2); this later entry replaces it"},
		},
		"duplicate user arn": {
			in:           "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/Bob\n    username: a\n  - userarn: arn:aws:iam::111122223333:user/bob\n    username: b\n",
			wantCounts:   Counts{Users: 1},
			wantWarnings: []string{"line 4: mapUsers[1]: duplicate of mapUsers[0] (line 2)"},
		},
		"duplicate sso": {
			in:           role("sso: {permissionSetName: Admin, accountID: \"111122223333\"}\n    username: a") + "  - sso: {permissionSetName: admin, accountID: \"111122223333\", partition: aws}\n    username: b\n",
			wantCounts:   Counts{SSO: 1},
			wantWarnings: []string{"line 4: mapRoles[1]: duplicate of mapRoles[0] (line 2)"},
		},
		"a dropped later duplicate shadows the earlier entry": {
			in:           role("rolearn: arn:aws:iam::111122223333:role/Dev\n    username: a\n    groups: [system:masters]") + "  - rolearn: arn:aws:iam::111122223333:role/Dev\n    username: a\n    groups: [\"view,edit\"]\n",
			wantCounts:   Counts{Dropped: 1},
			wantWarnings: []string{"the mapping has no entries", "line 5: mapRoles[1]: duplicate of mapRoles[0] (line 2), which it replaces; this entry is dropped, so neither applies"},
		},
		"duplicate userid": {
			in:           role("rolearn: arn:aws:iam::111122223333:role/R\n    roleid: AROASAME\n    username: a") + "mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/U\n    userid: AROASAME\n    username: b\n",
			wantCounts:   Counts{Roles: 1, Users: 1},
			wantWarnings: []string{"line 7: mapUsers[0].userid: duplicate of mapRoles[0] (line 2)"},
		},
		"mis-indented group list": {
			in:           cm("  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/R\n      username: a\n      groups:\n        - system:bootstrappers\n         - system:nodes\n"),
			wantCounts:   Counts{Roles: 1},
			wantWarnings: []string{`line 11: mapRoles[0].groups[0]: "system:bootstrappers - system:nodes" contains whitespace; is a YAML list item mis-indented`},
		},
		"sso unknown field": {
			in:           role("sso: {permissionSetName: A, accountID: \"111122223333\", region: eu-west-1}\n    username: a"),
			wantCounts:   Counts{SSO: 1},
			wantWarnings: []string{"sso.region: unknown field, ignored"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			snap, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if snap.Counts() != tc.wantCounts {
				t.Errorf("Counts() = %+v, want %+v", snap.Counts(), tc.wantCounts)
			}
			assertProblems(t, "warning", snap.Warnings(), tc.wantWarnings)
		})
	}
}

func TestParseErrorMessageListsEveryProblem(t *testing.T) {
	_, err := ParseWith([]byte("mapAccounts: [\"1\", \"2\"]\n"), ParseOptions{Strict: true})
	want := `invalid aws-auth mapping: 2 problems: line 1: mapAccounts[0]: "1" is not a 12-digit account ID; line 1: mapAccounts[1]: "2" is not a 12-digit account ID`
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %s", err, want)
	}
}

func TestParseAliasExpansionIsBounded(t *testing.T) {
	// One entry with 1000 groups, aliased 20,000 times: 20 million group
	// nodes if every alias were walked in full.
	var b strings.Builder
	b.WriteString("mapRoles:\n  - &e\n    rolearn: arn:aws:iam::111122223333:role/R\n    username: a\n    groups: [")
	for i := 0; i < 1000; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("g")
	}
	b.WriteString("]\n")
	for i := 0; i < 20000; i++ {
		b.WriteString("  - *e\n")
	}
	_, err := Parse([]byte(b.String()))
	var perr *ParseError
	if !errors.As(err, &perr) {
		t.Fatalf("Parse(alias bomb) error = %v, want a *ParseError", err)
	}
	if len(perr.Problems) > maxProblems+1 {
		t.Errorf("got %d problems, want at most %d", len(perr.Problems), maxProblems+1)
	}
	if !strings.Contains(err.Error(), "more than") {
		t.Errorf("error = %.300s..., want the node budget or problem cap to be reported", err)
	}
}
