package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// Source names the aws-auth list a match came from.
type Source string

// The three lists, tried in this order (reference §4.4).
const (
	SourceRoles    Source = "mapRoles"
	SourceUsers    Source = "mapUsers"
	SourceAccounts Source = "mapAccounts"
)

// Counts is the number of entries per kind.
type Counts struct {
	// Roles counts mapRoles entries with a rolearn.
	Roles int
	// SSO counts mapRoles entries with an sso permission-set matcher.
	SSO int
	// Users counts mapUsers entries.
	Users int
	// Accounts counts mapAccounts entries.
	Accounts int
	// Dropped counts entries that are invalid on their own and grant
	// nothing (see Snapshot.Dropped); they are not in the counts above.
	Dropped int
}

// Total is the number of entries in force, of every kind.
func (c Counts) Total() int { return c.Roles + c.SSO + c.Users + c.Accounts }

// entry is a compiled mapRoles or mapUsers item.
type entry struct {
	source Source
	index  int
	line   int
	// arn is the configured ARN after canonicalisation (role path kept), or
	// for an SSO entry the pattern it stands for; used in explanations.
	arn string
	// userID pins the entry to the principal's unique ID when set (EKS
	// access-entry semantics; reference DynamicFile strict mode).
	userID   string
	sso      bool
	username *template
	groups   []*template
	// literal is true when no name has a placeholder: Render then only
	// copies literalGroups.
	literal       bool
	literalGroups []string
	usesDNS       bool
	usesSession   bool
	// drop is the entry's first error when it is dropped: it never
	// matches, but it still replaces earlier entries for the same key.
	drop *Problem
}

// ref is "mapRoles[3] (line 12)".
func (e *entry) ref() string { return where(e.source, e.index, e.line) }

type accountEntry struct {
	index int
	line  int
}

// Snapshot is one parsed and validated mapping file. It is immutable: the
// Store swaps whole snapshots, so a reader sees one file's mapping or the
// next, never a mixture.
type Snapshot struct {
	hash      string
	shape     Shape
	counts    Counts
	templates []string
	warnings  []Problem
	dropped   []Problem

	// roles is keyed by the lower-cased role ARN with its path stripped
	// (arn:aws:iam::111122223333:role/name); users by the lower-cased
	// canonical ARN; sso by "partition:account:permissionset" lower-cased;
	// accounts by the 12-digit ID.
	roles    map[string]*entry
	users    map[string]*entry
	sso      map[string]*entry
	accounts map[string]accountEntry
}

// Hash is the hex SHA-256 of the file content the snapshot was parsed from,
// the same value `sha256sum` prints.
func (s *Snapshot) Hash() string { return s.hash }

// Shape is the layout the file was written in.
func (s *Snapshot) Shape() Shape { return s.shape }

// Counts is the number of entries per kind.
func (s *Snapshot) Counts() Counts { return s.counts }

// Templates lists the placeholders used anywhere, sorted, e.g.
// ["{{EC2PrivateDNSName}}", "{{SessionName}}"].
func (s *Snapshot) Templates() []string { return slices.Clone(s.templates) }

// UsesTemplate reports whether any entry uses the placeholder name (written
// without braces, e.g. "EC2PrivateDNSName").
func (s *Snapshot) UsesTemplate(name string) bool {
	return slices.Contains(s.templates, "{{"+name+"}}")
}

// Warnings are the problems that did not stop the file from loading.
func (s *Snapshot) Warnings() []Problem { return slices.Clone(s.warnings) }

// Dropped are the errors of the entries that were dropped (Problem.Entry is
// set on each; an entry with several errors appears several times, and the
// list is capped: Counts().Dropped is the number of entries).
func (s *Snapshot) Dropped() []Problem { return slices.Clone(s.dropped) }

// ParseOptions tune Parse.
type ParseOptions struct {
	// Strict refuses the whole file on any error, also one confined to a
	// single entry (the all-or-nothing behaviour of --mapping-strict).
	// Without it such an entry is dropped and the rest loads, as
	// aws-iam-authenticator does.
	Strict bool
}

// Parse is ParseWith default options: entries invalid on their own are
// dropped, structural errors refuse the file.
func Parse(data []byte) (*Snapshot, error) { return ParseWith(data, ParseOptions{}) }

// ParseWith reads an aws-auth mapping in any of the three shapes (see
// Shape), validates all of it and returns an immutable, indexed snapshot.
// When the file, or one data key's YAML, does not parse (or, with
// opts.Strict, on any error) it returns a *ParseError (wrapping ErrInvalid)
// listing every problem found, each with its line and path; there is no
// partial result. Otherwise entries with errors are dropped (they grant
// nothing) and listed by Snapshot.Dropped.
func ParseWith(data []byte, opts ParseOptions) (*Snapshot, error) {
	doc, d := decode(data)
	snap := d.compile(doc)
	// Problems are found shape first, entries second; report them in file
	// order (problems without a line first).
	slices.SortStableFunc(d.errs, byLine)
	slices.SortStableFunc(d.warns, byLine)
	if snap == nil || d.nstructural > 0 || (opts.Strict && d.nerrs > 0) {
		return nil, &ParseError{Problems: d.errs, Warnings: d.warns}
	}
	sum := sha256.Sum256(data)
	snap.hash = hex.EncodeToString(sum[:])
	snap.shape = doc.shape
	snap.warnings = d.warns
	snap.dropped = d.errs
	return snap, nil
}

func byLine(a, b Problem) int { return a.Line - b.Line }
