package examples

// This file's name sorts before configmaps_test.go on purpose: with -update,
// go test runs it first, so the copies below are rewritten from the
// regenerated sources in the same run.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// groupSlotSources are the reviewed Envoy configs whose route adds one
// Impersonate-Group line per dynamic metadata slot (docs/envoy-facts.md F5).
var groupSlotSources = []string{
	filepath.Join("..", "envoy", "sidecar.yaml"),
	filepath.Join("..", "envoy", "multi-cluster.yaml"),
}

// groupSlotEntries renders the route's impersonate-group entries for slots
// 0..GroupSlots-1, in order, as list items at indent.
func groupSlotEntries(indent string) []string {
	out := make([]string, 0, 4*envoy.GroupSlots)
	for i := range envoy.GroupSlots {
		out = append(out,
			indent+"- header:",
			indent+"    key: impersonate-group",
			fmt.Sprintf("%s    value: \"%%DYNAMIC_METADATA(%s:%s)%%\"", indent, envoy.MetadataNamespace, envoy.GroupSlotKey(i)),
			indent+"  append_action: APPEND_IF_EXISTS_OR_ADD",
		)
	}
	return out
}

// regenerateGroupSlots replaces every run of impersonate-group entries in
// src with groupSlotEntries at the run's indentation. It reports how many
// runs it found and how many impersonate-group keys lay outside them.
func regenerateGroupSlots(src string) (out string, runs, stray int) {
	lines := strings.Split(src, "\n")
	isEntry := func(i int) (string, bool) {
		if i+3 >= len(lines) {
			return "", false
		}
		indent, ok := strings.CutSuffix(lines[i], "- header:")
		if !ok || strings.TrimSpace(indent) != "" {
			return "", false
		}
		return indent, lines[i+1] == indent+"    key: impersonate-group"
	}
	var b []string
	for i := 0; i < len(lines); {
		indent, ok := isEntry(i)
		if !ok {
			if strings.Contains(lines[i], "key: impersonate-group") {
				stray++
			}
			b = append(b, lines[i])
			i++
			continue
		}
		runs++
		for {
			if next, ok := isEntry(i); !ok || next != indent {
				break
			}
			i += 4
		}
		b = append(b, groupSlotEntries(indent)...)
	}
	return strings.Join(b, "\n"), runs, stray
}

// TestGroupSlotRoutes: each reviewed route adds exactly the GroupSlots
// impersonate-group entries, slots 0..GroupSlots-1 in this order, nothing
// else (the policy lint checks the set; this pins the text and the order, so
// a slot cannot be skipped, repeated or reordered by hand). The entries are
// generated: -update rewrites them from envoy.GroupSlots.
func TestGroupSlotRoutes(t *testing.T) {
	for _, path := range groupSlotSources {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, runs, stray := regenerateGroupSlots(string(b))
			if runs != 1 || stray != 0 {
				t.Fatalf("%s: %d runs of impersonate-group entries and %d stray ones, want one run (the route's slots)", path, runs, stray)
			}
			if *update && want != string(b) {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				b = []byte(want)
			}
			if got := strings.Count(string(b), "%DYNAMIC_METADATA("+envoy.MetadataNamespace+":impersonate_group_"); got != envoy.GroupSlots {
				t.Errorf("%s: %d slot references, want %d", path, got, envoy.GroupSlots)
			}
			if want != string(b) {
				t.Errorf("%s: the impersonate-group entries are not slots 0..%d in order; run go test ./examples -run 'TestGroupSlotRoutes|TestCopiedConfigMaps|TestChartFilesAreCopies' -update", path, envoy.GroupSlots-1)
			}
		})
	}
}

// TestRegenerateGroupSlots: the generator finds a hand-edited run (a slot
// missing, one out of order) and rewrites it in place, leaving the lines
// around it alone; a stray entry elsewhere is reported.
func TestRegenerateGroupSlots(t *testing.T) {
	entry := func(indent string, i int) string {
		return strings.Join([]string{
			indent + "- header:",
			indent + "    key: impersonate-group",
			fmt.Sprintf("%s    value: \"%%DYNAMIC_METADATA(envoy.filters.http.ext_authz:impersonate_group_%d)%%\"", indent, i),
			indent + "  append_action: APPEND_IF_EXISTS_OR_ADD",
		}, "\n")
	}
	const in = "  "
	var all []string
	for i := range envoy.GroupSlots {
		all = append(all, entry(in, i))
	}
	before := "x:\n  - header:\n      key: x-forwarded-for\n      value: v\n    append_action: OVERWRITE_IF_EXISTS_OR_ADD\n"
	after := "\ny: 1\n"
	good := before + strings.Join(all, "\n") + after
	tests := map[string]struct {
		src       string
		wantRuns  int
		wantStray int
	}{
		"already generated": {src: good, wantRuns: 1},
		"a slot missing":    {src: before + strings.Join(all[1:], "\n") + after, wantRuns: 1},
		"two slots swapped": {src: before + entry(in, 1) + "\n" + entry(in, 0) + "\n" + strings.Join(all[2:], "\n") + after, wantRuns: 1},
		"the old 16 slots":  {src: before + strings.Join(all[:16], "\n") + after, wantRuns: 1},
		"stray entry":       {src: good + "z:\n  - header:\n      value: a\n      key: impersonate-group\n", wantRuns: 1, wantStray: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, runs, stray := regenerateGroupSlots(tc.src)
			if runs != tc.wantRuns || stray != tc.wantStray {
				t.Errorf("runs %d stray %d, want %d and %d", runs, stray, tc.wantRuns, tc.wantStray)
			}
			if tc.wantStray == 0 && got != good {
				t.Errorf("regenerated:\n%s\nwant:\n%s", got, good)
			}
		})
	}
}
