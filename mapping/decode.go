package mapping

import (
	"fmt"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Shape is the layout a mapping file was written in. Parse detects it.
type Shape string

const (
	// ShapeConfigMap is the manifest `kubectl get cm aws-auth -n kube-system
	// -o yaml` (or -o json) prints: mapRoles, mapUsers and mapAccounts are
	// YAML documents held as strings under data.
	ShapeConfigMap Shape = "configmap"
	// ShapeData is the bare data map of that ConfigMap.
	ShapeData Shape = "data"
	// ShapeStructured has the same three keys with lists as values, in YAML
	// or JSON (aws-iam-authenticator's DynamicFile layout is one instance).
	ShapeStructured Shape = "structured"
)

// Limits that bound the work one file can cause.
const (
	// MaxFileBytes is the largest mapping Parse accepts. A ConfigMap is at
	// most 1 MiB; the structured shape may be larger.
	MaxFileBytes = 16 << 20
	// maxNodes bounds the YAML nodes visited, alias expansion included, so
	// that a file of anchors and aliases cannot make decoding quadratic.
	maxNodes = 4 << 20
	// maxGroups bounds the groups of one entry.
	maxGroups = 1000
	// maxProblems bounds the problems kept for one file.
	maxProblems = 200
)

// The data keys, case-sensitive as in the reference (it ignores "mapusers";
// we report it).
const (
	keyRoles    = "mapRoles"
	keyUsers    = "mapUsers"
	keyAccounts = "mapAccounts"
)

// dynamicFileKeys are top-level keys of aws-iam-authenticator's DynamicFile
// JSON that carry no mapping; they are accepted and ignored so that such a
// file can be used unchanged.
var dynamicFileKeys = map[string]bool{"Version": true, "LastUpdatedDateTime": true, "ClusterId": true}

// configMapKeys are the top-level keys that mark the ConfigMap shape.
var configMapKeys = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "data": true, "binaryData": true, "immutable": true}

// rawField is a decoded scalar with its position.
type rawField struct {
	value string
	line  int
	set   bool
	// number is true for an unquoted YAML number (accepted for account
	// IDs, with a warning).
	number bool
	// index is the position in its list (mapAccounts items).
	index int
}

// rawEntry is one mapRoles or mapUsers item as written.
type rawEntry struct {
	index    int
	line     int
	arn      rawField // rolearn or userarn
	username rawField
	groups   []rawField
	userID   rawField
	sso      *rawSSO
	// broken is set when decoding the entry already reported a problem, so
	// that validation does not pile "is required" on top of it; problem is
	// the first one.
	broken  bool
	problem *Problem
}

type rawSSO struct {
	line              int
	permissionSetName rawField
	accountID         rawField
	partition         rawField
}

type document struct {
	shape    Shape
	roles    []rawEntry
	users    []rawEntry
	accounts []rawField
	// droppedAccounts counts mapAccounts items dropped while decoding.
	droppedAccounts int
}

// decoder accumulates problems; it never stops at the first one.
type decoder struct {
	errs      []Problem
	warns     []Problem
	budget    int
	exhausted bool

	// nerrs counts every error, also those past the maxProblems cap, and
	// nstructural those outside an entry: whether an entry is dropped or
	// the file refused must not depend on how many problems are listed.
	nerrs, nstructural int
	// inEntry is set while one mapRoles, mapUsers or mapAccounts entry is
	// decoded or compiled: errors then drop that entry only.
	inEntry bool
	// entryProblem is the first error of the current entry.
	entryProblem *Problem
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.ruleErrorf("", line, path, format, args...)
}

// ruleErrorf records an error that stems from a divergence Rule.
func (d *decoder) ruleErrorf(rule string, line int, path, format string, args ...any) {
	d.nerrs++
	if !d.inEntry {
		d.nstructural++
	}
	first := d.inEntry && d.entryProblem == nil
	if len(d.errs) >= maxProblems && !first {
		// Past the cap only the marker is kept, and a message nobody
		// reads is not formatted (a file of thousands of broken entries).
		d.errs = addProblem(d.errs, Problem{Entry: d.inEntry})
		return
	}
	p := Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...), Entry: d.inEntry, Rule: rule}
	if first {
		// Kept even past the cap: Lookup explains a dropped entry with it.
		d.entryProblem = &p
	}
	if len(d.errs) >= maxProblems {
		d.errs = addProblem(d.errs, Problem{Entry: d.inEntry})
		return
	}
	d.errs = addProblem(d.errs, p)
}

// beginEntry starts an entry's scope; the returned count tells endEntry
// whether the entry had errors.
func (d *decoder) beginEntry() int {
	d.inEntry, d.entryProblem = true, nil
	return d.nerrs
}

// endEntry ends an entry's scope and returns its first error, nil if it
// had none.
func (d *decoder) endEntry(before int) *Problem {
	d.inEntry = false
	if d.nerrs == before {
		return nil
	}
	if d.entryProblem == nil {
		return &Problem{Message: "invalid entry"}
	}
	return d.entryProblem
}

func (d *decoder) warnf(line int, path, format string, args ...any) {
	if len(d.warns) >= maxProblems {
		d.warns = addProblem(d.warns, Problem{}) // only the marker is kept
		return
	}
	d.warns = addProblem(d.warns, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// wantWarning reports whether a warnf call would still change the warning
// list (a listed warning or the "more than" marker), so that callers warning
// once per entry (a role path on thousands of roles) can skip building a
// path that would be dropped.
func (d *decoder) wantWarning() bool { return len(d.warns) <= maxProblems }

// addProblem keeps the first maxProblems problems and then one marker.
func addProblem(ps []Problem, p Problem) []Problem {
	switch {
	case len(ps) < maxProblems:
		return append(ps, p)
	case len(ps) == maxProblems:
		return append(ps, Problem{Message: fmt.Sprintf("more than %d problems; the rest are not listed", maxProblems)})
	}
	return ps
}

// resolve follows aliases and charges the node budget.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for hops := 0; n != nil && n.Kind == yaml.AliasNode && hops < 16; hops++ {
		n = n.Alias
	}
	d.budget--
	if d.budget < 0 && !d.exhausted {
		d.exhausted = true
		inEntry := d.inEntry
		d.inEntry = false // the whole file is refused, not one entry
		d.errorf(0, "", "the document expands to more than %d YAML nodes (aliases included); refusing to decode it", maxNodes)
		d.inEntry = inEntry
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// decode turns file bytes into raw entries, reporting every problem it can.
func decode(data []byte) (*document, *decoder) {
	d := &decoder{budget: maxNodes}
	doc := &document{}
	if len(data) > MaxFileBytes {
		d.errorf(0, "", "the file is %d bytes, more than the %d accepted", len(data), MaxFileBytes)
		return doc, d
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		// An in-place writer truncates before it writes: an empty file is
		// far more likely a half-written one than an intended empty mapping
		// (write `data: {}` for that).
		d.errorf(0, "", "the file is empty")
		return doc, d
	}
	root, err := parseYAML(data)
	if err != nil {
		line, msg := splitYAMLError(err)
		d.errorf(line, "", "%s", msg)
		return doc, d
	}
	if isNull(root) {
		d.errorf(0, "", "the file holds no YAML document")
		return doc, d
	}
	root = d.resolve(root)
	if root.Kind != yaml.MappingNode {
		d.errorf(root.Line, "", "the top level must be a mapping (a ConfigMap, its data map, or mapRoles/mapUsers/mapAccounts lists), found %s", kindName(root))
		return doc, d
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if configMapKeys[root.Content[i].Value] {
			doc.shape = ShapeConfigMap
			d.configMap(root, doc)
			return doc, d
		}
	}
	d.bare(root, doc)
	return doc, d
}

// configMap decodes the ConfigMap shape.
func (d *decoder) configMap(root *yaml.Node, doc *document) {
	d.envelope(root)
	var data *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "data" {
			data = d.resolve(root.Content[i+1])
		}
	}
	if isNull(data) {
		return // an aws-auth without data maps nobody; compile warns
	}
	if data.Kind != yaml.MappingNode {
		d.errorf(data.Line, "data", "must be a mapping of mapRoles, mapUsers and mapAccounts, found %s", kindName(data))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(data.Content); i += 2 {
		k, v := d.resolve(data.Content[i]), data.Content[i+1]
		path := "data." + k.Value
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k.Line, path, "duplicate key (first at line %d)", prev)
			continue
		}
		seen[k.Value] = k.Line
		if !d.dataKey(k, path) {
			continue
		}
		v = d.resolve(v)
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			if v.Kind == yaml.SequenceNode {
				d.errorf(v.Line, path, "must be a string holding a YAML list (write `%s: |` and indent the list under it); ConfigMap data values are strings", k.Value)
			} else {
				d.errorf(v.Line, path, "must be a string holding a YAML list, found %s", kindName(v))
			}
			continue
		}
		d.nested(doc, k.Value, v)
	}
}

// dataKey checks a data or top-level key and reports unknown ones. They are
// ignored, as aws-iam-authenticator ignores them (so `mapusers` grants
// nothing), with a warning: `mapping check --strict` fails on it.
func (d *decoder) dataKey(k *yaml.Node, path string) bool {
	switch k.Value {
	case keyRoles, keyUsers, keyAccounts:
		return true
	}
	for _, known := range []string{keyRoles, keyUsers, keyAccounts} {
		if strings.EqualFold(k.Value, known) {
			d.warnf(k.Line, path, "unknown key, ignored; keys are case-sensitive, did you mean %s? (aws-iam-authenticator ignores it too)", known)
			return false
		}
	}
	d.warnf(k.Line, path, "unknown key, ignored (known: mapRoles, mapUsers, mapAccounts)")
	return false
}

// bare decodes the data and structured shapes.
func (d *decoder) bare(root *yaml.Node, doc *document) {
	var strs, lists int
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := d.resolve(root.Content[i]), root.Content[i+1]
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k.Line, k.Value, "duplicate key (first at line %d)", prev)
			continue
		}
		seen[k.Value] = k.Line
		if dynamicFileKeys[k.Value] {
			continue
		}
		if !d.dataKey(k, k.Value) {
			continue
		}
		v = d.resolve(v)
		switch {
		case isNull(v):
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			strs++
			d.nested(doc, k.Value, v)
		case v.Kind == yaml.SequenceNode:
			lists++
			d.list(doc, k.Value, v, locator{exact: true})
		default:
			d.errorf(v.Line, k.Value, "must be a list (or a string holding one), found %s", kindName(v))
		}
	}
	switch {
	case strs > 0 && lists > 0:
		d.errorf(root.Line, "", "mixes string values (the ConfigMap data shape) with lists (the structured shape); use one shape for the whole file")
	case lists > 0:
		doc.shape = ShapeStructured
	default:
		doc.shape = ShapeData
	}
}

// emptyMarkers are values the reference treats as an absent key.
func isEmptyMarker(s string) bool {
	switch strings.TrimSpace(s) {
	case "", "``", `""`, "''":
		return true
	}
	return false
}

// nested parses a YAML document held in a string value.
func (d *decoder) nested(doc *document, key string, v *yaml.Node) {
	if isEmptyMarker(v.Value) {
		return
	}
	loc := locator{base: v.Line, exact: v.Style&yaml.LiteralStyle != 0}
	inner, err := parseYAML([]byte(v.Value))
	if err != nil {
		line, msg := splitYAMLError(err)
		if loc.exact && line > 0 {
			line += loc.base
		} else {
			line = loc.base
		}
		d.errorf(line, key, "%s", msg)
		return
	}
	if isNull(inner) {
		return
	}
	d.list(doc, key, inner, loc)
}

// list decodes the items of mapRoles, mapUsers or mapAccounts.
func (d *decoder) list(doc *document, key string, n *yaml.Node, loc locator) {
	n = d.resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(loc.at(n), key, "must be a list, found %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		if d.exhausted {
			return
		}
		path := indexPath(key, i)
		item = d.resolve(item)
		before := d.beginEntry()
		switch key {
		case keyAccounts:
			f := d.scalar(item, loc, path, "", true)
			if !f.set && isNull(item) {
				d.errorf(loc.at(item), path, "is empty")
			}
			if d.endEntry(before) != nil {
				doc.droppedAccounts++
				continue
			}
			f.index = i
			doc.accounts = append(doc.accounts, f)
		case keyRoles:
			if doc.roles == nil {
				doc.roles = make([]rawEntry, 0, len(n.Content))
			}
			e := d.entry(item, loc, path, i, true)
			e.problem = d.endEntry(before)
			e.broken = e.problem != nil
			doc.roles = append(doc.roles, e)
		case keyUsers:
			if doc.users == nil {
				doc.users = make([]rawEntry, 0, len(n.Content))
			}
			e := d.entry(item, loc, path, i, false)
			e.problem = d.endEntry(before)
			e.broken = e.problem != nil
			doc.users = append(doc.users, e)
		}
	}
}

// entry decodes one mapRoles (role=true) or mapUsers item. Field names are
// case-insensitive like the reference's encoding/json decoding (rolearn,
// roleARN and RoLeArN are one field), so a second spelling of the same field
// is a duplicate, not a silent override.
func (d *decoder) entry(n *yaml.Node, loc locator, path string, index int, role bool) rawEntry {
	e := rawEntry{index: index, line: loc.at(n)}
	if n.Kind != yaml.MappingNode {
		what := "userarn"
		if role {
			what = "rolearn"
		}
		d.ruleErrorf(RuleWrongType, e.line, path, "must be a mapping with %s, username and groups, found %s", what, kindName(n))
		return e
	}
	// Known fields seen so far (a fixed set, so no map per entry).
	var seen [len(entryFields)]bool
	var seenLine [len(entryFields)]int
	var idKey string
	for i := 0; i+1 < len(n.Content) && !d.exhausted; i += 2 {
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		name := strings.ToLower(k.Value)
		if slot := fieldSlot(name); slot >= 0 {
			if seen[slot] {
				d.ruleErrorf(RuleDuplicateField, loc.at(k), path+"."+name, "duplicate field (first at line %d; field names are case-insensitive)", seenLine[slot])
				continue
			}
			seen[slot], seenLine[slot] = true, loc.at(k)
		}
		switch {
		case name == "username":
			e.username = d.scalar(v, loc, path, "username", false)
		case name == "groups":
			e.groups = d.stringList(v, loc, path+".groups")
		case role && name == "rolearn", !role && name == "userarn":
			e.arn = d.scalar(v, loc, path, name, false)
		case name == "userid", role && name == "roleid":
			if idKey != "" {
				d.ruleErrorf(RuleUserID, loc.at(k), path+"."+name, "both %s and %s are set; use one", idKey, name)
				continue
			}
			idKey = name
			e.userID = d.scalar(v, loc, path, "userid", false)
		case role && name == "sso":
			e.sso = d.sso(v, loc, path+".sso")
		// Unknown fields are ignored, as aws-iam-authenticator's JSON
		// decoding ignores them: a misspelt rolearn leaves the entry without
		// one (dropped), a misspelt groups leaves it without groups.
		case role && name == "userarn":
			d.warnf(loc.at(k), path+"."+name, "ignored: userarn belongs in mapUsers; mapRoles entries use rolearn (any principal's ARN works there)")
		case !role && name == "rolearn":
			d.warnf(loc.at(k), path+"."+name, "ignored: rolearn belongs in mapRoles; mapUsers entries use userarn (any principal's ARN works there)")
		default:
			known := "userarn, username, groups, userid"
			if role {
				known = "rolearn, sso, username, groups, userid (or roleid)"
			}
			d.warnf(loc.at(k), path+"."+name, "unknown field, ignored (known: %s)", known)
		}
	}
	return e
}

// entryFields are the field names of mapRoles and mapUsers entries.
var entryFields = [...]string{"rolearn", "userarn", "username", "groups", "userid", "roleid", "sso"}

func fieldSlot(name string) int {
	for i, f := range entryFields {
		if f == name {
			return i
		}
	}
	return -1
}

func (d *decoder) sso(n *yaml.Node, loc locator, path string) *rawSSO {
	s := &rawSSO{line: loc.at(n)}
	if n.Kind != yaml.MappingNode {
		d.ruleErrorf(RuleWrongType, s.line, path, "must be a mapping with permissionSetName, accountID and optional partition, found %s", kindName(n))
		return s
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		name := strings.ToLower(k.Value)
		if prev, dup := seen[name]; dup {
			d.ruleErrorf(RuleDuplicateField, loc.at(k), path+"."+k.Value, "duplicate field (first at line %d; field names are case-insensitive)", prev)
			continue
		}
		seen[name] = loc.at(k)
		switch name {
		case "permissionsetname":
			s.permissionSetName = d.scalar(v, loc, path, "permissionSetName", false)
		case "accountid":
			s.accountID = d.scalar(v, loc, path, "accountID", true)
		case "partition":
			s.partition = d.scalar(v, loc, path, "partition", false)
		default:
			d.warnf(loc.at(k), path+"."+k.Value, "unknown field, ignored (known: permissionSetName, accountID, partition)")
		}
	}
	return s
}

// scalar decodes a string. Numbers are accepted only where numberOK (account
// IDs), keeping their literal text; anything else must be a YAML string so
// that `username: yes` or `groups: [0755]` is not silently re-typed.
//
// The element's path is path.field (or path when field is empty), built only
// when there is a problem to report.
func (d *decoder) scalar(n *yaml.Node, loc locator, path, field string, numberOK bool) rawField {
	f := rawField{line: loc.at(n)}
	switch {
	case isNull(n):
		return f
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str" && !numberOK && isPlain(n) && yaml11NonString(n.Value):
		// aws-iam-authenticator reads these strings as YAML 1.1 (through
		// sigs.k8s.io/yaml), where yes, on, 0o17 or 1_000 are not strings.
		d.ruleErrorf(RuleWrongType, f.line, joinPath(path, field), "must be a string, found %q, which YAML 1.1 (read by aws-iam-authenticator) takes for a boolean, number or date; quote it", n.Value)
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		f.value, f.set = n.Value, true
	case n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") && numberOK && allDigits(n.Value):
		// yaml.v3 tags 012345678901 !!float (not valid octal); either way
		// the literal text keeps the leading zero.
		f.value, f.set, f.number = n.Value, true, true
	case n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float" || n.Tag == "!!bool"):
		d.ruleErrorf(RuleWrongType, f.line, joinPath(path, field), "must be a string, found %s %s; quote it", kindName(n), n.Value)
	default:
		d.ruleErrorf(RuleWrongType, f.line, joinPath(path, field), "must be a string, found %s", kindName(n))
	}
	return f
}

func joinPath(path, field string) string {
	if field == "" {
		return path
	}
	return path + "." + field
}

// indexPath is path[i].
func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func (d *decoder) stringList(n *yaml.Node, loc locator, path string) []rawField {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.ruleErrorf(RuleWrongType, loc.at(n), path, "must be a list of strings (`groups: [a, b]` or one `- name` per line), found %s", kindName(n))
		return nil
	}
	if len(n.Content) > maxGroups {
		d.ruleErrorf(RuleTooManyGroups, loc.at(n), path, "has %d groups, more than %d", len(n.Content), maxGroups)
		return nil
	}
	out := make([]rawField, 0, len(n.Content))
	for i, item := range n.Content {
		if d.exhausted {
			return nil
		}
		item = d.resolve(item)
		if item.Kind == yaml.ScalarNode && item.Tag == "!!str" && !(isPlain(item) && yaml11NonString(item.Value)) {
			// The common case, without building a path nobody reads.
			out = append(out, rawField{value: item.Value, line: loc.at(item), set: true})
			continue
		}
		ipath := indexPath(path, i)
		if isNull(item) {
			d.ruleErrorf(RuleEmptyName, loc.at(item), ipath, "is empty")
			continue
		}
		d.scalar(item, loc, ipath, "", false) // reports the type problem
	}
	return out
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
