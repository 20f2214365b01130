package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/kube-iam-authz/kube-iam-authz/authz/outcome"
	"github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app"
)

// The README's reference tables are generated from the code: the real
// cobra commands (app.NewRootCommand) and the demo driver's flag set. This
// file regenerates them (-update) and fails when the README disagrees with
// the code, names a flag that does not exist, a metric the code does not
// register, or a file the repository does not have.

const readmePath = repoRoot + "/README.md"

// readmeCommands are the documented commands, by path under the root.
var readmeCommands = [][]string{{"serve"}, {"token"}, {"verify"}, {"map"}, {"mapping", "check"}, {"healthcheck"}, {"version"}}

// otherToolsFlags are flags of other programs the README shows, each with
// the program, so that a typo in one of ours cannot hide here.
var otherToolsFlags = map[string]string{
	"--context":          "kubectl",
	"--raw":              "kubectl",
	"--as":               "kubectl",
	"--build":            "docker compose up",
	"--wait":             "docker compose up",
	"--namespace":        "helm install",
	"--create-namespace": "helm install",
	"--set":              "helm install",
	// The demo's kube-apiserver (examples/demo/kubeapiserver.go).
	"--authorization-mode": "kube-apiserver",
	"--token-auth-file":    "kube-apiserver",
	// `kube-apiserver --version` (README: make kube-apiserver) is covered by our
	// own root --version below: one flag name cannot be listed twice.
}

func commandFlags(t *testing.T, path []string) *pflag.FlagSet {
	t.Helper()
	root := app.NewRootCommand(app.Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	cmd, _, err := root.Find(path)
	if err != nil || cmd.CommandPath() != "kube-iam-authz "+strings.Join(path, " ") {
		t.Fatalf("kube-iam-authz has no command %q: %v", path, err)
	}
	return cmd.Flags()
}

// demoFlagsMarkdown renders the driver's flags like app.FlagsMarkdown.
func demoFlagsMarkdown() string {
	o, _ := parseOptions(nil, func(string) string { return "" }, io.Discard)
	var b strings.Builder
	b.WriteString("| flag (`make demo DEMO_ARGS='…'`) | default | description |\n|---|---|---|\n")
	o.flagSet(io.Discard).VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		switch {
		case f.Name == "kubectl":
			def = "`/usr/bin/kubectl`, else `kubectl` on PATH"
		case f.Name == "etcd":
			def = "`/usr/bin/etcd`, else `etcd` on PATH"
		case def == "" || def == "false":
			def = " "
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s |\n", f.Name, def, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	return b.String()
}

// generatedSections maps each README marker to its content.
func generatedSections(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"demo flags": demoFlagsMarkdown()}
	for _, path := range readmeCommands {
		out[strings.Join(path, " ")+" flags"] = app.FlagsMarkdown(commandFlags(t, path))
	}
	return out
}

func TestREADMEFlagTables(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	for name, body := range generatedSections(t) {
		re := regexp.MustCompile(`(?s)(<!-- BEGIN GENERATED ` + regexp.QuoteMeta(name) + `:[^>]*-->\n)(.*?)(<!-- END GENERATED ` + regexp.QuoteMeta(name) + ` -->)`)
		m := re.FindStringSubmatch(readme)
		if m == nil {
			t.Errorf("README has no generated section %q", name)
			continue
		}
		if m[2] != body {
			if *updateGolden {
				readme = strings.Replace(readme, m[0], m[1]+body+m[3], 1)
				continue
			}
			t.Errorf("README's %s table is stale; regenerate with go test ./examples/demo -run TestREADME -update", name)
		}
	}
	if *updateGolden {
		if err := os.WriteFile(readmePath, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestREADMEFlagsExist: every --flag the README names is a flag of one of
// our commands, of the demo driver, or of a named other tool; and every
// serve flag is documented.
func TestREADMEFlagsExist(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{}
	for _, path := range readmeCommands {
		commandFlags(t, path).VisitAll(func(f *pflag.Flag) { known["--"+f.Name] = "kube-iam-authz " + strings.Join(path, " ") })
	}
	// The root command's --version (cobra adds the flag when it executes).
	known["--version"] = "kube-iam-authz"
	o, _ := parseOptions(nil, func(string) string { return "" }, io.Discard)
	o.flagSet(io.Discard).VisitAll(func(f *flag.Flag) { known["--"+f.Name] = "make demo" })
	for f, tool := range otherToolsFlags {
		if ours, clash := known[f]; clash {
			t.Errorf("%s is listed as %s's but is also %s's: drop it from otherToolsFlags", f, tool, ours)
		}
		known[f] = tool
	}
	mentioned := map[string]bool{}
	for _, m := range regexp.MustCompile("(?:^|[\\s`(\\[|'\"])(--[a-z][a-z0-9-]*[a-z0-9])").FindAllStringSubmatch(string(raw), -1) {
		mentioned[m[1]] = true
	}
	var unknown []string
	for f := range mentioned {
		if _, ok := known[f]; !ok {
			unknown = append(unknown, f)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("README names flags that exist nowhere: %v", unknown)
	}
	commandFlags(t, []string{"serve"}).VisitAll(func(f *pflag.Flag) {
		if !regexp.MustCompile("`--" + regexp.QuoteMeta(f.Name) + "[ `]").Match(raw) {
			t.Errorf("serve flag --%s is not documented in the README", f.Name)
		}
	})
}

// TestREADMEMetricsExist: every metric the README's catalogue names is
// registered somewhere in the code (the integration test checks the other
// direction against a live /metrics).
func TestREADMEMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var source strings.Builder
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != repoRoot || d.Name() == "integration" || d.Name() == "examples") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			source.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := source.String()
	names := regexp.MustCompile("`(kube_iam_authz_[a-z0-9_]+)`").FindAllStringSubmatch(string(raw), -1)
	if len(names) < 10 {
		t.Fatalf("README's metrics catalogue names only %d metrics", len(names))
	}
	for _, m := range names {
		name := m[1]
		// Either the full name, or Namespace "kube_iam_authz" + Name.
		if !strings.Contains(code, `"`+name+`"`) && !strings.Contains(code, `"`+strings.TrimPrefix(name, "kube_iam_authz_")+`"`) {
			t.Errorf("README documents %s, which no code registers", name)
		}
	}
}

// TestREADMEPathsExist: every repository path the README links to or
// names in backticks exists.
func TestREADMEPathsExist(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(([^)#:]+)\)`).FindAllStringSubmatch(string(raw), -1) {
		paths[m[1]] = true
	}
	for _, m := range regexp.MustCompile("`((?:examples|envoy|docs|integration|authz|mapping|cmd|server)/[A-Za-z0-9_./-]*)`").FindAllStringSubmatch(string(raw), -1) {
		paths[m[1]] = true
	}
	if len(paths) < 5 {
		t.Fatalf("found only %d paths in the README", len(paths))
	}
	for p := range paths {
		if strings.Contains(p, "*") {
			matches, _ := filepath.Glob(filepath.Join(repoRoot, p))
			if len(matches) == 0 {
				t.Errorf("README names %s, which matches nothing", p)
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot, p)); err != nil {
			t.Errorf("README names %s: %v", p, err)
		}
	}
}

// TestREADMEReasonLabels: the README's list of kube_iam_authz_checks_total
// reason values is exactly the label column of the one error table
// (authz/outcome), so a new row cannot go undocumented.
func TestREADMEReasonLabels(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "| `kube_iam_authz_checks_total` |") {
			row = line
		}
	}
	_, list, ok := strings.Cut(row, "`reason` is ")
	if !ok {
		t.Fatal("README: no kube_iam_authz_checks_total row whose text says \"`reason` is …\"")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(list, -1) {
		documented[m[1]] = true
	}
	for _, l := range outcome.Labels() {
		if !documented[l] {
			t.Errorf("README's kube_iam_authz_checks_total row lacks reason %q", l)
		}
		delete(documented, l)
	}
	for l := range documented {
		t.Errorf("README's kube_iam_authz_checks_total row lists reason %q, which authz/outcome does not have", l)
	}
}
