package mapping

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// permissionSetPattern is IAM Identity Center's permission-set name rule,
// the same check the reference applies.
var permissionSetPattern = regexp.MustCompile(`^[\w+=,.@-]{1,32}$`)

// isAccountID: AWS account IDs are exactly 12 digits.
func isAccountID(s string) bool { return len(s) == 12 && allDigits(s) }

// isRoleName is IAM's role-name rule, [\w+=,.@-]{1,64}. (Loops rather than
// regexps here: they run once per entry of files with thousands.)
func isRoleName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && !strings.ContainsRune("_+=,.@-", rune(s[i])) {
			return false
		}
	}
	return true
}

// isUniqueID covers IAM unique IDs (AROA..., AIDA...; 21 characters in
// practice) with room to spare.
func isUniqueID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// compiler holds the indexes built while validating, so that duplicates are
// reported against the entry they collide with.
type compiler struct {
	*decoder
	snap    *Snapshot
	userIDs map[string]entryRef
	// usedVars is the bit set of placeholders used anywhere.
	usedVars uint8
	compiled map[string]compiledName
}

// entryRef remembers where an entry is, formatted only for a message.
type entryRef struct {
	source      Source
	index, line int
}

func (r entryRef) String() string { return where(r.source, r.index, r.line) }

func where(source Source, index, line int) string {
	if line > 0 {
		return fmt.Sprintf("%s[%d] (line %d)", source, index, line)
	}
	return indexPath(string(source), index)
}

// compile validates raw entries and builds the snapshot's indexes. It
// reports every problem. An entry with an error is dropped: it is kept in
// the index (so that it still replaces an earlier entry for the same ARN)
// but never matches. Whether structural errors or, in strict mode, any
// error discards the snapshot is the caller's decision.
func (d *decoder) compile(doc *document) *Snapshot {
	if d.exhausted {
		return nil
	}
	var ssoCount int
	for i := range doc.roles {
		if doc.roles[i].sso != nil {
			ssoCount++
		}
	}
	c := &compiler{
		decoder: d,
		snap: &Snapshot{
			roles:    make(map[string]*entry, len(doc.roles)-ssoCount),
			users:    make(map[string]*entry, len(doc.users)),
			sso:      make(map[string]*entry, ssoCount),
			accounts: make(map[string]accountEntry, len(doc.accounts)),
		},
		userIDs: map[string]entryRef{},
		// Usernames are mostly distinct, groups mostly shared: one slot
		// per entry avoids growing the map while compiling.
		compiled: make(map[string]compiledName, len(doc.roles)+len(doc.users)),
	}
	c.snap.counts.Dropped = doc.droppedAccounts
	for i := range doc.roles {
		c.role(&doc.roles[i])
	}
	for i := range doc.users {
		c.user(&doc.users[i])
	}
	for _, a := range doc.accounts {
		c.account(a)
	}
	s := c.snap
	for _, index := range []map[string]*entry{s.roles, s.sso, s.users} {
		for _, e := range index {
			if e.drop != nil {
				continue
			}
			switch {
			case e.sso:
				s.counts.SSO++
			case e.source == SourceRoles:
				s.counts.Roles++
			default:
				s.counts.Users++
			}
		}
	}
	s.counts.Accounts = len(s.accounts)
	for v := varAccountID; v <= varEC2PrivateDNSName; v++ {
		if c.usedVars&(1<<v) != 0 {
			s.templates = append(s.templates, v.String())
		}
	}
	slices.Sort(s.templates)
	if d.nstructural == 0 && s.counts.Total() == 0 {
		d.warnf(0, "", "the mapping has no entries: every identity is unmapped")
	}
	return s
}

// finish ends an entry's scope, marks it dropped if it had an error, and
// indexes it under key (unless key is empty: nothing could match it). A
// later entry for the same key replaces the earlier one, as in
// aws-iam-authenticator, which stores entries in a map by ARN in file order.
func (c *compiler) finish(e *entry, r *rawEntry, before int, index map[string]*entry, key string, path func() string) {
	p := c.endEntry(before)
	if r.problem != nil {
		p = r.problem
	}
	if p != nil {
		e.drop = p
		c.snap.counts.Dropped++
	}
	if key == "" {
		return
	}
	if prev, dup := index[key]; dup && c.wantWarning() {
		switch {
		case e.drop != nil && prev.drop == nil:
			c.warnf(r.line, path(), "duplicate of %s, which it replaces; this entry is dropped, so neither applies (%s)", prev.ref(), RuleShadowed)
		default:
			c.warnf(r.line, path(), "duplicate of %s; this later entry replaces it, as in aws-iam-authenticator", prev.ref())
		}
	}
	index[key] = e
}

func (c *compiler) role(r *rawEntry) {
	before := c.beginEntry()
	// Paths are built only when a problem is reported: this runs for
	// every entry of files with thousands.
	path := func() string { return indexPath(string(SourceRoles), r.index) }
	e := &entry{source: SourceRoles, index: r.index, line: r.line}
	var key string
	index := c.snap.roles
	switch {
	case r.sso != nil && r.arn.set:
		c.errorf(r.line, path(), "only one of rolearn or sso may be set")
	case r.sso != nil:
		key, index = c.ssoKey(r.sso, path()+".sso"), c.snap.sso
		e.sso = true
		e.arn = key
		if r.userID.set {
			c.ruleErrorf(RuleUserID, r.userID.line, path()+".userid", "cannot pin an sso entry to one principal: it matches every role of its permission set")
		}
	case r.arn.set:
		e.arn, key = c.principalARN(r.arn, SourceRoles, func() string { return path() + ".rolearn" })
	default:
		if !r.broken {
			c.errorf(r.line, path(), "one of rolearn or sso is required")
		}
	}
	c.names(e, r, path)
	c.pin(e, r, path)
	c.finish(e, r, before, index, key, path)
}

func (c *compiler) user(r *rawEntry) {
	before := c.beginEntry()
	path := func() string { return indexPath(string(SourceUsers), r.index) }
	e := &entry{source: SourceUsers, index: r.index, line: r.line}
	var key string
	if r.arn.set {
		e.arn, key = c.principalARN(r.arn, SourceUsers, func() string { return path() + ".userarn" })
	} else if !r.broken {
		c.errorf(r.line, path()+".userarn", "is required")
	}
	c.names(e, r, path)
	c.pin(e, r, path)
	c.finish(e, r, before, c.snap.users, key, path)
}

// principalARN validates the ARN of a mapRoles or mapUsers entry and
// returns it and its index key (the lower-cased ARN), or "" when the entry
// can never match. aws-iam-authenticator compares the ARN as written,
// case-insensitively, with the principal's canonical ARN (an assumed-role
// session becomes arn:P:iam::A:role/NAME, without the role's path), first
// against every mapRoles entry, then every mapUsers entry; the kind of ARN
// does not matter. So a role ARN under mapUsers maps that role's sessions
// (after mapRoles), and an ARN that no canonical ARN can equal (a role
// path, an STS session ARN, a malformed ARN) grants nothing: such an entry
// is dropped with the fix in the message.
func (c *compiler) principalARN(f rawField, source Source, path func() string) (canonical, key string) {
	if strings.TrimSpace(f.value) != f.value {
		c.errorf(f.line, path(), "has leading or trailing whitespace, so it never equals a principal's ARN")
		return "", ""
	}
	canonical, kind, err := identity.Canonicalize(f.value)
	if err != nil {
		c.errorf(f.line, path(), "%v", err)
		return "", ""
	}
	_, _, resource, _ := splitARN(canonical)
	switch kind {
	case identity.KindAssumedRole:
		c.errorf(f.line, path(), "is an STS session ARN, which never equals a principal's canonical ARN; write the role ARN %s", canonical)
		return "", ""
	case identity.KindRole:
		name := resource[strings.LastIndexByte(resource, '/')+1:]
		if !isRoleName(name) {
			c.errorf(f.line, path(), "role name %q is not a valid IAM role name", name)
			return "", ""
		}
		if len(resource) != len("role/")+len(name) {
			head := canonical[:len(canonical)-len(resource)]
			hint := ""
			if strings.HasPrefix(strings.ToLower(resource), "role/aws-reserved/sso.amazonaws.com/") {
				hint = " (an IAM Identity Center role: or map its permission set with sso:)"
			}
			c.errorf(f.line, path(), "has a role path, which the ARNs of role sessions do not carry, so it never matches (as in aws-iam-authenticator); write %srole/%s%s", head, name, hint)
			return "", ""
		}
		if source == SourceUsers && c.wantWarning() {
			c.warnf(f.line, path(), "is a role ARN under mapUsers; like aws-iam-authenticator this maps the role's sessions, after every mapRoles entry; move it to mapRoles")
		}
	default:
		if source == SourceRoles && c.wantWarning() {
			c.warnf(f.line, path(), "is an IAM %s ARN under mapRoles; like aws-iam-authenticator this maps it, before every mapUsers entry; move it to mapUsers", kind)
		}
	}
	if !c.accountOf(canonical, f.line, path) {
		return "", ""
	}
	return canonical, lowerASCII(canonical)
}

// accountOf checks the account field of an ARN.
func (c *compiler) accountOf(arn string, line int, path func() string) bool {
	if _, account, _, ok := splitARN(arn); !ok || !isAccountID(account) {
		c.errorf(line, path(), "the account ID in %s must be 12 digits", arn)
		return false
	}
	return true
}

func (c *compiler) ssoKey(s *rawSSO, path string) string {
	ok := true
	if !s.permissionSetName.set {
		c.errorf(s.line, path+".permissionSetName", "is required")
		ok = false
	} else if !permissionSetPattern.MatchString(s.permissionSetName.value) {
		c.errorf(s.permissionSetName.line, path+".permissionSetName", "%q is not a permission-set name (1-32 of letters, digits and +=,.@_-; no wildcards)", s.permissionSetName.value)
		ok = false
	}
	account := s.accountID.value
	switch {
	case !s.accountID.set:
		c.errorf(s.line, path+".accountID", "is required")
		ok = false
	case !isAccountID(account):
		c.errorf(s.accountID.line, path+".accountID", "%s", accountMessage(s.accountID))
		ok = false
	case s.accountID.number:
		c.warnf(s.accountID.line, path+".accountID", "is an unquoted YAML number; quote it (many YAML readers turn an unquoted 012345678901 into the number 12345678901)")
	}
	partition := "aws"
	if s.partition.set {
		// The reference builds an empty partition into its pattern whenever
		// partition is set, so such entries never match (reference §4.7).
		// Here a set partition is used as written (RuleSSO).
		partition = s.partition.value
		if !identity.IsPartition(partition) {
			c.errorf(s.partition.line, path+".partition", "%q is not an AWS partition (known: %s)", partition, strings.Join(identity.Partitions(), ", "))
			ok = false
		}
	}
	if !ok {
		return ""
	}
	return lowerASCII(partition + ":" + account + ":" + s.permissionSetName.value)
}

func accountMessage(f rawField) string {
	if f.number && len(f.value) < 12 {
		return fmt.Sprintf("%s is %d digits, not 12; if the account ID starts with 0, quote it: YAML reads an unquoted 012345678901 as a number", f.value, len(f.value))
	}
	return fmt.Sprintf("%q is not a 12-digit account ID", f.value)
}

// pin validates the optional userid / roleid.
func (c *compiler) pin(e *entry, r *rawEntry, path func() string) {
	if !r.userID.set {
		return
	}
	id := r.userID.value
	if !isUniqueID(id) {
		c.ruleErrorf(RuleUserID, r.userID.line, path()+".userid", "%q is not an IAM unique ID (letters and digits, such as AROAEXAMPLE...)", id)
		return
	}
	if prev, dup := c.userIDs[id]; dup {
		// One principal has one ARN, so at most one of the two can match
		// it; harmless, but likely a copy-and-paste slip.
		c.warnf(r.userID.line, path()+".userid", "duplicate of %s", prev)
	}
	c.userIDs[id] = entryRef{source: e.source, index: e.index, line: e.line}
	e.userID = id
}

// names compiles the username and group templates.
func (c *compiler) names(e *entry, r *rawEntry, path func() string) {
	e.literal = true
	if !r.username.set {
		if !r.broken {
			c.ruleErrorf(RuleEmptyName, r.line, path()+".username", "is required")
		}
	} else {
		e.username = c.template(e, r.username, func() string { return path() + ".username" })
	}
	// Entries have a handful of groups: a scan of the earlier ones is
	// cheaper than a map per entry. Long lists get a map.
	var seen map[string]int
	if len(r.groups) > smallGroups {
		seen = make(map[string]int, len(r.groups))
	}
	for i, g := range r.groups {
		gpath := func() string { return indexPath(path()+".groups", i) }
		if prev := firstGroup(r.groups, seen, i); prev >= 0 {
			c.warnf(g.line, gpath(), "duplicate of groups[%d]", prev)
		}
		if t := c.template(e, g, gpath); t != nil {
			if e.groups == nil {
				e.groups = make([]*template, 0, len(r.groups))
			}
			e.groups = append(e.groups, t)
		}
	}
	if e.literal {
		e.literalGroups = make([]string, len(e.groups))
		for i, g := range e.groups {
			e.literalGroups[i] = g.raw
		}
	}
}

// smallGroups is the group count up to which duplicates are found by
// scanning rather than with a map.
const smallGroups = 16

// firstGroup returns the index of the first group before i with the value of
// groups[i], or -1. seen, when not nil, indexes first occurrences and is
// updated.
func firstGroup(groups []rawField, seen map[string]int, i int) int {
	v := groups[i].value
	if seen != nil {
		if prev, dup := seen[v]; dup {
			return prev
		}
		seen[v] = i
		return -1
	}
	for j := range i {
		if groups[j].value == v {
			return j
		}
	}
	return -1
}

func (c *compiler) template(e *entry, f rawField, path func() string) *template {
	t, err := c.compileName(f.value)
	if err != nil {
		c.ruleErrorf(RuleOf(err), f.line, path(), "%v", err)
		return nil
	}
	if hasSpace(f.value) && c.wantWarning() {
		if strings.Contains(f.value, " - ") {
			c.warnf(f.line, path(), "%q contains whitespace; is a YAML list item mis-indented so that two groups became one?", f.value)
		} else {
			c.warnf(f.line, path(), "%q contains whitespace", f.value)
		}
	}
	if t.literal() {
		return t
	}
	c.usedVars |= t.uses
	e.literal = false
	e.usesDNS = e.usesDNS || t.has(varEC2PrivateDNSName)
	e.usesSession = e.usesSession || t.usesSession()
	if e.source == SourceUsers && (t.usesSession() || t.has(varEC2PrivateDNSName)) && c.wantWarning() {
		c.warnf(f.line, path(), "IAM users have no session name, so this template renders empty and every request for this entry is refused")
	}
	if p := reservedPrefix(t.prefix); p != "" && t.usesSession() && c.wantWarning() {
		c.warnf(f.line, path(), "whoever can assume this role chooses the rest of this %s name through the role session name", p)
	}
	return t
}

// compileName checks and compiles a username or group once per distinct
// text: the same groups recur across thousands of entries, and a compiled
// template is immutable, so entries can share it.
func (c *compiler) compileName(s string) (*template, error) {
	if r, ok := c.compiled[s]; ok {
		return r.t, r.err
	}
	var t *template
	err := checkName(s)
	if err == nil {
		t, err = compileTemplate(s)
		if err != nil {
			err = &ruleError{rule: RuleTemplateSyntax, err: err}
		}
	}
	c.compiled[s] = compiledName{t: t, err: err}
	return t, err
}

type compiledName struct {
	t   *template
	err error
}

func (c *compiler) account(f rawField) {
	i := f.index
	path := indexPath(string(SourceAccounts), i)
	if !isAccountID(f.value) {
		before := c.beginEntry()
		c.errorf(f.line, path, "%s", accountMessage(f))
		c.endEntry(before)
		c.snap.counts.Dropped++
		return
	}
	if f.number {
		c.warnf(f.line, path, "is an unquoted YAML number; quote it (many YAML readers turn an unquoted 012345678901 into the number 12345678901)")
	}
	if prev, dup := c.snap.accounts[f.value]; dup {
		c.warnf(f.line, path, "duplicate of %s", where(SourceAccounts, prev.index, prev.line))
		return
	}
	c.snap.accounts[f.value] = accountEntry{index: i, line: f.line}
}
