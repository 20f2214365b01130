package mapping

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDivergenceTableListsEveryRule: the divergence table of
// docs/mapping.md has exactly one row per Rule, and no other row.
func TestDivergenceTableListsEveryRule(t *testing.T) {
	doc, err := os.ReadFile("../docs/mapping.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "### Divergences from aws-iam-authenticator")
	if !ok {
		t.Fatal("docs/mapping.md has no divergence section")
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	rows := map[string]int{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		rows[m[1]]++
	}
	for _, r := range Rules {
		if rows[r] != 1 {
			t.Errorf("the divergence table has %d rows for %q, want 1", rows[r], r)
		}
		delete(rows, r)
	}
	for r := range rows {
		t.Errorf("the divergence table has a row %q that is no Rule", r)
	}
}
