package mapping

import (
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// fastYAML parses the plain block YAML that aws-auth is written in (what
// kubectl, eksctl and Terraform print) into exactly the node tree yaml.v3
// would build, or declines. Why: yaml.v3 spent about two thirds of a
// 10,000-entry reload's CPU and three quarters of its allocations on this
// (a token stream, an event per token, a heap node per scalar), while the
// node tree is all the decoder reads. Declining is always safe: parseYAML
// then hands the text to yaml.v3, which is the reference for every input.
// TestFastYAMLMatchesYAMLv3 and FuzzFastYAML hold the two to the same tree
// (every field: kind, style, tag, value, line, column) wherever fastYAML
// accepts.
//
// It accepts: block mappings and sequences (a sequence may sit at its
// key's indentation); plain scalars that yaml.v3 resolves to !!str (first
// character a letter or one of a few safe symbols, not true/false/null);
// single- and double-quoted scalars on one line without escapes; one-line
// flow sequences of such plain scalars; and, as a mapping value, a literal
// block scalar `|` with default chomping (the ConfigMap's mapRoles). It
// declines everything else: comments, anchors, aliases, tags, directives,
// document markers, control characters (tabs and carriage returns
// included), non-ASCII bytes, multi-line
// plain or quoted scalars, flow mappings, empty values, numbers, booleans
// and nulls.
func fastYAML(s string) (root *yaml.Node, ok bool) {
	// A bug here must cost speed, never the process: fall back instead.
	defer func() {
		if recover() != nil {
			root, ok = nil, false
		}
	}()
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x7f, c < ' ' && c != '\n', c == '#', c == '&', c == '*', c == '!', c == '\\':
			return nil, false
		}
	}
	p := &fastParser{src: s}
	p.splitLines()
	i := p.nextContent(0)
	if i < 0 {
		return nil, false // empty stream: yaml.v3 decides
	}
	if p.lines[i].indent != 0 {
		return nil, false
	}
	root, next, ok := p.block(i, 0, -1)
	if !ok || p.nextContent(next) >= 0 {
		return nil, false
	}
	return root, true
}

type fastLine struct {
	text   string // without the line break
	indent int    // leading spaces
	blank  bool   // nothing but spaces
}

type fastParser struct {
	src   string
	lines []fastLine
	// nodes and ptrs are slabs: the tree of a 10,000-entry mapping is about
	// 100,000 nodes, allocated a few thousand at a time instead of one by one.
	nodes []yaml.Node
	ptrs  []*yaml.Node
	// stack holds the children of the containers being parsed.
	stack []*yaml.Node
}

func (p *fastParser) splitLines() {
	s := p.src
	p.lines = make([]fastLine, 0, strings.Count(s, "\n")+1)
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		n := 0
		for n < len(line) && line[n] == ' ' {
			n++
		}
		p.lines = append(p.lines, fastLine{text: line, indent: n, blank: n == len(line)})
	}
}

// nextContent is the first non-blank line at or after i, or -1.
func (p *fastParser) nextContent(i int) int {
	for ; i < len(p.lines); i++ {
		if !p.lines[i].blank {
			return i
		}
	}
	return -1
}

func (p *fastParser) node(kind yaml.Kind, style yaml.Style, tag, value string, line, col int) *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		p.nodes = make([]yaml.Node, 0, 2048)
	}
	p.nodes = append(p.nodes, yaml.Node{Kind: kind, Style: style, Tag: tag, Value: value, Line: line + 1, Column: col + 1})
	return &p.nodes[len(p.nodes)-1]
}

// children moves the stack above mark into a slab slice (nil when empty,
// as yaml.v3 leaves it).
func (p *fastParser) children(mark int) []*yaml.Node {
	kids := p.stack[mark:]
	p.stack = p.stack[:mark]
	if len(kids) == 0 {
		return nil
	}
	if cap(p.ptrs)-len(p.ptrs) < len(kids) {
		p.ptrs = make([]*yaml.Node, 0, max(4096, len(kids)))
	}
	start := len(p.ptrs)
	p.ptrs = append(p.ptrs, kids...)
	return p.ptrs[start:len(p.ptrs):len(p.ptrs)]
}

// block parses the block node whose first character is at line i, column
// col, inside a parent whose indentation is parent. It returns the node and
// the line after it.
func (p *fastParser) block(i, col, parent int) (*yaml.Node, int, bool) {
	rest := p.lines[i].text[col:]
	if isSeqEntry(rest) {
		return p.sequence(i, col)
	}
	if _, _, ok := splitKey(rest); ok {
		return p.mapping(i, col)
	}
	return nil, 0, false
}

// maxFastKey is the longest mapping key fastYAML accepts.
const maxFastKey = 128

func isSeqEntry(s string) bool { return s == "-" || strings.HasPrefix(s, "- ") }

// splitKey splits "key: value" or "key:" at the key's colon.
func splitKey(s string) (key, value string, ok bool) {
	if s == "" || s[0] == '"' || s[0] == '\'' {
		return "", "", false // quoted keys: declined
	}
	i := strings.Index(s, ": ")
	if i < 0 {
		if !strings.HasSuffix(s, ":") {
			return "", "", false
		}
		i = len(s) - 1
	}
	key = s[:i]
	// yaml.v3 takes an implicit key of at most 1024 characters (the YAML
	// spec's limit); aws-auth keys are short, so anything long is declined.
	if key == "" || key[len(key)-1] == ' ' || len(key) > maxFastKey {
		return "", "", false
	}
	return key, strings.TrimLeft(s[i+1:], " "), true
}

// sequence parses a block sequence whose dashes are at column col.
func (p *fastParser) sequence(i, col int) (*yaml.Node, int, bool) {
	seq := p.node(yaml.SequenceNode, 0, "!!seq", "", i, col)
	mark := len(p.stack)
	for {
		l := p.lines[i]
		rest := l.text[col:]
		if rest == "-" {
			return nil, 0, false // the item on the next lines: declined
		}
		c := col + 1
		for c < len(l.text) && l.text[c] == ' ' {
			c++
		}
		item, next, ok := p.item(i, c, col)
		if !ok {
			return nil, 0, false
		}
		p.stack = append(p.stack, item)
		j := p.nextContent(next)
		if j < 0 || p.lines[j].indent < col {
			seq.Content = p.children(mark)
			return seq, next, true
		}
		if p.lines[j].indent > col {
			return nil, 0, false
		}
		if !isSeqEntry(p.lines[j].text[col:]) {
			// A sequence at its key's indentation ends at the next key.
			seq.Content = p.children(mark)
			return seq, next, true
		}
		i = j
	}
}

// item parses a sequence item starting at line i, column c (after "- ").
func (p *fastParser) item(i, c, dash int) (*yaml.Node, int, bool) {
	rest := p.lines[i].text[c:]
	if isSeqEntry(rest) {
		return p.sequence(i, c)
	}
	if _, _, ok := splitKey(rest); ok {
		return p.mapping(i, c)
	}
	n, ok := p.scalar(i, c, rest)
	if !ok {
		return nil, 0, false
	}
	next, ok := p.endOfScalar(i+1, dash)
	return n, next, ok
}

// endOfScalar checks that no line continues a one-line scalar (a more
// indented line after it would be a multi-line plain scalar).
func (p *fastParser) endOfScalar(next, parent int) (int, bool) {
	if j := p.nextContent(next); j >= 0 && p.lines[j].indent > parent {
		return 0, false
	}
	return next, true
}

// mapping parses a block mapping whose keys are at column col.
func (p *fastParser) mapping(i, col int) (*yaml.Node, int, bool) {
	m := p.node(yaml.MappingNode, 0, "!!map", "", i, col)
	mark := len(p.stack)
	for {
		l := p.lines[i]
		keyText, value, ok := splitKey(l.text[col:])
		if !ok {
			return nil, 0, false
		}
		key, ok := p.scalar(i, col, keyText)
		if !ok || key.Style != 0 {
			return nil, 0, false
		}
		p.stack = append(p.stack, key)
		var next int
		if value == "" {
			// The value is on the following lines: a nested block, or a
			// sequence at the key's own indentation.
			j := p.nextContent(i + 1)
			if j < 0 {
				return nil, 0, false // a null value: declined
			}
			lj := p.lines[j]
			var v *yaml.Node
			switch {
			case lj.indent > col:
				v, next, ok = p.block(j, lj.indent, col)
			case lj.indent == col && isSeqEntry(lj.text[col:]):
				v, next, ok = p.sequence(j, col)
			default:
				return nil, 0, false
			}
			if !ok {
				return nil, 0, false
			}
			p.stack = append(p.stack, v)
		} else {
			vcol := len(l.text) - len(value)
			var v *yaml.Node
			switch value[0] {
			case '|':
				v, next, ok = p.literal(i, vcol, col)
			case '[':
				v, ok = p.flowSequence(i, vcol, value)
				if ok {
					next, ok = p.endOfScalar(i+1, col)
				}
			default:
				v, ok = p.scalar(i, vcol, value)
				if ok {
					next, ok = p.endOfScalar(i+1, col)
				}
			}
			if !ok {
				return nil, 0, false
			}
			p.stack = append(p.stack, v)
		}
		j := p.nextContent(next)
		if j < 0 || p.lines[j].indent < col {
			m.Content = p.children(mark)
			return m, next, true
		}
		if p.lines[j].indent > col {
			return nil, 0, false
		}
		if isSeqEntry(p.lines[j].text[col:]) {
			// "- " at a mapping's indentation ends it only when the mapping
			// is a sequence item; let the caller decide.
			m.Content = p.children(mark)
			return m, next, true
		}
		i = j
	}
}

// scalar parses a one-line scalar s that starts at line i, column col and
// runs to the end of the line.
func (p *fastParser) scalar(i, col int, s string) (*yaml.Node, bool) {
	s = strings.TrimRight(s, " ")
	if s == "" {
		return nil, false
	}
	switch s[0] {
	case '"', '\'':
		q := s[0]
		end := strings.IndexByte(s[1:], q)
		if end < 0 || end+2 != len(s) {
			return nil, false // multi-line, escaped quote, or text after it
		}
		style := yaml.DoubleQuotedStyle
		if q == '\'' {
			style = yaml.SingleQuotedStyle
		}
		return p.node(yaml.ScalarNode, style, "!!str", s[1:end+1], i, col), true
	}
	if !plainString(s) || strings.Contains(s, ": ") || strings.HasSuffix(s, ":") {
		return nil, false
	}
	return p.node(yaml.ScalarNode, 0, "!!str", s, i, col), true
}

// plainString reports whether yaml.v3 reads the plain scalar s as a string
// (resolve.go: a scalar whose first character is not a sign, digit, dot,
// '~' or one of yYnNtTfFoO is a string; one starting with those letters is
// a string unless it is a boolean or null spelling), and that s cannot
// start any other construct.
func plainString(s string) bool {
	c := s[0]
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '/', c == '$', c == '(', c == '=', c == '^', c == ';', c == '<' && !strings.HasPrefix(s, "<<"):
	default:
		return false
	}
	switch s {
	case "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL":
		return false
	}
	return true
}

// flowSequence parses a one-line "[a, b]" of plain strings.
func (p *fastParser) flowSequence(i, col int, s string) (*yaml.Node, bool) {
	s = strings.TrimRight(s, " ")
	if len(s) < 2 || s[len(s)-1] != ']' {
		return nil, false
	}
	inner := s[1 : len(s)-1]
	if strings.ContainsAny(inner, "[]{}:\"'") {
		return nil, false
	}
	seq := p.node(yaml.SequenceNode, yaml.FlowStyle, "!!seq", "", i, col)
	mark := len(p.stack)
	if strings.TrimLeft(inner, " ") != "" {
		off := col + 1
		for _, part := range strings.Split(inner, ",") {
			lead := len(part) - len(strings.TrimLeft(part, " "))
			v := strings.TrimSpace(part)
			if v == "" || !plainString(v) || !flowSafe(v) {
				p.stack = p.stack[:mark]
				return nil, false
			}
			p.stack = append(p.stack, p.node(yaml.ScalarNode, 0, "!!str", v, i, off+lead))
			off += len(part) + 1
		}
	}
	seq.Content = p.children(mark)
	return seq, true
}

// flowSafe reports whether a flow-sequence item holds only characters that
// cannot be an indicator inside a flow collection (there, '?', ',', ':',
// brackets and braces next to other characters change the meaning).
func flowSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == '/', c == '=', c == '@', c == '+', c == ' ':
		default:
			return false
		}
	}
	return true
}

// literal parses a `|` block scalar (clip chomping, indentation detected)
// whose indicator is at line i, column col, for a key at column parent.
func (p *fastParser) literal(i, col, parent int) (*yaml.Node, int, bool) {
	if p.lines[i].text[col:] != "|" || i+1 >= len(p.lines) {
		return nil, 0, false
	}
	first := i + 1
	if p.lines[first].blank {
		return nil, 0, false // leading blank lines: declined
	}
	ind := p.lines[first].indent
	if ind <= parent {
		return nil, 0, false // an empty block scalar: declined
	}
	size := 0
	last := first // the last non-blank line of the block
	for j := first; j < len(p.lines); j++ {
		l := p.lines[j]
		if l.blank {
			if len(l.text) > ind {
				return nil, 0, false // spaces past the indentation: declined
			}
		} else {
			if l.indent < ind {
				break
			}
			last = j
		}
	}
	if last+1 == len(p.lines) && !strings.HasSuffix(p.src, "\n") {
		return nil, 0, false // no final line break: declined
	}
	for j := first; j <= last; j++ {
		if l := p.lines[j]; !l.blank {
			size += len(l.text) - ind
		}
		size++
	}
	var b strings.Builder
	b.Grow(size)
	for j := first; j <= last; j++ {
		if l := p.lines[j]; !l.blank {
			b.WriteString(l.text[ind:])
		}
		b.WriteByte('\n')
	}
	return p.node(yaml.ScalarNode, yaml.LiteralStyle, "!!str", b.String(), i, col), last + 1, true
}

// fastList is fastYAML for a document whose root is a block sequence (a
// ConfigMap's mapRoles, mapUsers or mapAccounts), handing each item to the
// caller as it is parsed instead of building the whole tree. The item's
// nodes are reused for the next one, so the tree of a 10,000-entry list
// (about 15 MB, twice the live heap of a serving process) is never
// allocated, and a reload triggers half the garbage collections.
//
// It parses twice: first only to learn that fastYAML would accept all of s
// and how many items there are (nothing is handed out, a parser panic
// declines), then handing out the items. Declining therefore never leaves a
// list half decoded.
type fastList struct {
	p     *fastParser
	first int
	// Root is the sequence node (its Content left empty); Items the number
	// of items.
	Root  *yaml.Node
	Items int
}

// newFastList runs the first pass; ok is false where fastYAML would decline
// s or its root is not a block sequence.
func newFastList(s string) (l *fastList, ok bool) {
	defer func() {
		if recover() != nil {
			l, ok = nil, false
		}
	}()
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x7f, c < ' ' && c != '\n', c == '#', c == '&', c == '*', c == '!', c == '\\':
			return nil, false
		}
	}
	p := &fastParser{src: s}
	p.splitLines()
	first := p.nextContent(0)
	if first < 0 || p.lines[first].indent != 0 || !isSeqEntry(p.lines[first].text) {
		return nil, false
	}
	root, n, ok := p.streamSequence(first, nil)
	if !ok {
		return nil, false
	}
	return &fastList{p: p, first: first, Root: root, Items: n}, true
}

// Each hands out the items in order until each returns false. each must
// not keep the node, or any node under it, past its return. It reports
// false only if the second pass disagrees with the first, which the parser
// being deterministic rules out; a caller fails closed on it anyway.
func (l *fastList) Each(each func(i int, item *yaml.Node) bool) bool {
	_, _, ok := l.p.streamSequence(l.first, each)
	return ok
}

// streamSequence parses the root block sequence starting at line i, column
// 0, calling each (when not nil) for every item and then reusing the
// item's nodes.
func (p *fastParser) streamSequence(i int, each func(int, *yaml.Node) bool) (*yaml.Node, int, bool) {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: i + 1, Column: 1}
	for n := 0; ; n++ {
		l := p.lines[i]
		if l.text == "-" {
			return nil, 0, false // the item on the next lines: declined
		}
		c := 1
		for c < len(l.text) && l.text[c] == ' ' {
			c++
		}
		item, next, ok := p.item(i, c, 0)
		if !ok {
			return nil, 0, false
		}
		if each != nil && !each(n, item) {
			return seq, n + 1, true
		}
		p.nodes, p.ptrs, p.stack = p.nodes[:0], p.ptrs[:0], p.stack[:0]
		j := p.nextContent(next)
		if j < 0 {
			return seq, n + 1, true
		}
		if p.lines[j].indent != 0 || !isSeqEntry(p.lines[j].text) {
			return nil, 0, false
		}
		i = j
	}
}
