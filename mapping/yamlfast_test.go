package mapping

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// fastYAMLCases are documents in the layouts fastYAML accepts, and next to
// each the near misses it must decline (yaml.v3 decides those).
var fastYAMLCases = []struct {
	name   string
	doc    string
	accept bool
}{
	{"configmap", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n    - rolearn: arn:aws:iam::111122223333:role/R\n      username: r:{{SessionName}}\n      groups:\n        - system:masters\n\n    - rolearn: x\n  mapUsers: |\n    - userarn: arn:aws:iam::111122223333:user/u\n      username: u\n      groups: [a, b ,c]\n", true},
	{"roles", "- rolearn: arn:aws:iam::111122223333:role/R\n  username: \"{{SessionName}}\"\n  groups:\n  - a\n  - 'b'\n- sso:\n    permissionSetName: P\n    accountID: \"111122223333\"\n  username: s\n", true},
	{"sequence at the key's indentation then a key", "a:\n- b\n- c\nd: e\n", true},
	{"nested sequences", "- - a\n  - b\n- c\n", true},
	{"flow sequences", "a: []\nb: [ x ,y ]\nc: [ ]\n", true},
	{"spaces in values", "a: b c  d   \nk: 'x y'\n", true},
	{"literal with more-indented and blank lines", "a: |\n  x\n    y\n\n  z\n\n\nb: c\n", true},
	{"literal at the end", "a: |\n  x\n", true},
	{"duplicate keys", "a: b\na: c\n", true},
	{"plain with commas and brackets", "a: x,y[0]\n", true},
	{"mixed case keys", "RoleARN: x\nuserName: y\n", true},
	{"strings like keywords", "a: trueish\nb: nullable\nc: yes\nd: on\ne: No\n", true},

	{"empty", "", false},
	{"comment", "a: b # c\n", false},
	{"comment line", "# c\na: b\n", false},
	{"anchor", "a: &x b\nc: *x\n", false},
	{"tag", "a: !!str b\n", false},
	{"number", "a: 012345678901\n", false},
	{"boolean", "a: true\n", false},
	{"null word", "a: null\n", false},
	{"tilde", "a: ~\n", false},
	{"empty value", "a:\nb: c\n", false},
	{"empty value at the end", "a:\n", false},
	{"multi-line plain", "a: b\n  c\n", false},
	{"multi-line quoted", "a: \"b\n  c\"\n", false},
	{"escape", "a: \"b\\nc\"\n", false},
	{"escaped single quote", "a: 'it''s'\n", false},
	{"flow mapping", "a: {b: c}\n", false},
	{"flow sequence with a colon", "a: [b: c]\n", false},
	{"flow sequence over lines", "a: [b,\n  c]\n", false},
	{"flow trailing comma", "a: [b,]\n", false},
	{"flow question mark", "A: [A?]", false}, // found by FuzzFastYAML
	{"document marker", "---\na: b\n", false},
	{"second document", "a: b\n---\nc: d\n", false},
	{"end marker", "a: b\n...\n", false},
	{"tab", "a:\tb\n", false},
	{"carriage return", "a: b\r\n", false},
	{"NUL", "A: A\x00", false}, // found by FuzzFastYAML
	{"control character", "A: A\x1f\n", false},
	{"key of 128", strings.Repeat("k", 128) + ": v\n", true},
	{"key past the implicit-key limit", strings.Repeat("(", 1100) + "A: A00 0000", false}, // found by FuzzFastYAML
	{"key of 129", strings.Repeat("k", 129) + ": v\n", false},
	{"non-ASCII", "a: é\n", false},
	{"folded", "a: >\n  b\n", false},
	{"literal strip", "a: |-\n  b\n", false},
	{"literal keep", "a: |+\n  b\n", false},
	{"literal without final newline", "a: |\n  b", false},
	{"literal leading blank", "a: |\n\n  b\n", false},
	{"literal empty", "a: |\nb: c\n", false},
	{"value with mapping", "a: b: c\n", false},
	{"quoted key", "\"a\": b\n", false},
	{"complex key", "? a\n: b\n", false},
	{"merge key", "<<: a\n", false},
	{"scalar document", "a\n", false},
	{"indented document", "  a: b\n", false},
	{"bad indentation", "a:\n  b: c\n   d: e\n", false},
	{"dash alone", "-\n  a: b\n", false},
	{"directive", "%YAML 1.2\n---\na: b\n", false},
	{"json", "{\"a\": \"b\"}\n", false},
	{"sign", "a: -1\n", false},
	{"dot", "a: .inf\n", false},
}

// TestFastYAMLMatchesYAMLv3: wherever fastYAML accepts a document, its tree
// is yaml.v3's, field for field; it accepts the layouts it is for and
// declines the rest.
func TestFastYAMLMatchesYAMLv3(t *testing.T) {
	for _, tc := range fastYAMLCases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := fastYAML(tc.doc)
			if ok != tc.accept {
				t.Fatalf("fastYAML accepted = %v, want %v", ok, tc.accept)
			}
			if ok {
				assertSameTree(t, tc.doc, got)
			}
		})
	}
	for _, name := range []string{"reference-example.yaml", "kubectl-get.yaml", "match.yaml"} {
		data := string(readTestdata(t, name))
		if got, ok := fastYAML(data); ok {
			assertSameTree(t, data, got)
		}
	}
	// The benchmark's 10,000-entry ConfigMap takes the fast path for both
	// the manifest and every nested document.
	big := string(mapping10k(1))
	root, ok := fastYAML(big)
	if !ok {
		t.Fatal("fastYAML declined the 10k ConfigMap")
	}
	assertSameTree(t, big, root)
	data := root.Content[len(root.Content)-1]
	for i := 1; i < len(data.Content); i += 2 {
		inner := data.Content[i].Value
		got, ok := fastYAML(inner)
		if !ok {
			t.Fatalf("fastYAML declined %s of the 10k ConfigMap", data.Content[i-1].Value)
		}
		assertSameTree(t, inner, got)
	}
}

// TestFastListItemsAreFastYAMLs: the items fastList hands out, one at a
// time over reused nodes, are the items of fastYAML's tree (and so of
// yaml.v3's), and it accepts exactly the sequences fastYAML accepts.
func TestFastListItemsAreFastYAMLs(t *testing.T) {
	docs := []string{}
	for _, tc := range fastYAMLCases {
		docs = append(docs, tc.doc)
	}
	root, _ := fastYAML(string(mapping10k(1)))
	data := root.Content[len(root.Content)-1]
	for i := 1; i < len(data.Content); i += 2 {
		docs = append(docs, data.Content[i].Value)
	}
	streamed := 0
	for _, doc := range docs {
		assertSameItems(t, doc)
		if _, ok := newFastList(doc); ok {
			streamed++
		}
	}
	if streamed < 5 {
		t.Fatalf("only %d documents took the streaming path", streamed)
	}
}

func assertSameItems(t testing.TB, doc string) {
	t.Helper()
	tree, treeOK := fastYAML(doc)
	l, ok := newFastList(doc)
	wantOK := treeOK && tree.Kind == yaml.SequenceNode && tree.Style == 0
	if ok != wantOK {
		t.Fatalf("newFastList accepted = %v, fastYAML accepted a block sequence = %v:\n%s", ok, wantOK, doc)
	}
	if !ok {
		return
	}
	if l.Items != len(tree.Content) {
		t.Fatalf("Items = %d, want %d", l.Items, len(tree.Content))
	}
	root := *tree
	root.Content = nil
	if !reflect.DeepEqual(l.Root, &root) {
		t.Fatalf("root differs:\n%s\nwant\n%s", dumpTree(l.Root), dumpTree(&root))
	}
	n := 0
	if !l.Each(func(i int, item *yaml.Node) bool {
		if i != n || !reflect.DeepEqual(item, tree.Content[i]) {
			t.Fatalf("item %d (call %d) differs:\n%s\nwant\n%s", i, n, dumpTree(item), dumpTree(tree.Content[i]))
		}
		n++
		return true
	}) || n != l.Items {
		t.Fatalf("Each handed out %d of %d items", n, l.Items)
	}
}

func assertSameTree(t testing.TB, doc string, got *yaml.Node) {
	t.Helper()
	want, err := parseYAMLv3([]byte(doc))
	if err != nil {
		t.Fatalf("fastYAML accepted what yaml.v3 refuses (%v):\n%s", err, doc)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("trees differ for\n%s\nfastYAML:\n%s\nyaml.v3:\n%s", doc, dumpTree(got), dumpTree(want))
	}
}

func dumpTree(n *yaml.Node) string {
	var b strings.Builder
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil {
			b.WriteString("<nil>\n")
			return
		}
		fmt.Fprintf(&b, "%skind=%d style=%d tag=%q value=%q line=%d col=%d anchor=%q comments=%q/%q/%q alias=%v\n",
			strings.Repeat("  ", depth), n.Kind, n.Style, n.Tag, n.Value, n.Line, n.Column, n.Anchor, n.HeadComment, n.LineComment, n.FootComment, n.Alias != nil)
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// FuzzFastYAML: on any input fastYAML either declines or builds yaml.v3's
// tree exactly.
func FuzzFastYAML(f *testing.F) {
	for _, tc := range fastYAMLCases {
		f.Add(tc.doc)
	}
	for _, name := range []string{"reference-example.yaml", "kubectl-get.yaml", "match.yaml"} {
		f.Add(string(readTestdata(f, name)))
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if got, ok := fastYAML(doc); ok {
			assertSameTree(t, doc, got)
		}
		assertSameItems(t, doc)
	})
}
