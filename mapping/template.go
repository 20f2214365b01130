package mapping

import (
	"fmt"
	"strings"
)

// variable is one of the placeholders aws-iam-authenticator defines for
// usernames and groups (reference §4.5).
type variable uint8

const (
	varNone variable = iota
	varAccountID
	varSessionName
	varSessionNameRaw
	varAccessKeyID
	varEC2PrivateDNSName
)

// templateNames are the placeholders in the spelling users write them.
var templateNames = map[string]variable{
	"AccountID":         varAccountID,
	"SessionName":       varSessionName,
	"SessionNameRaw":    varSessionNameRaw,
	"AccessKeyID":       varAccessKeyID,
	"EC2PrivateDNSName": varEC2PrivateDNSName,
}

func (v variable) String() string {
	for name, w := range templateNames {
		if w == v {
			return "{{" + name + "}}"
		}
	}
	return ""
}

// templateList is the known placeholders for error messages.
const templateList = "{{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, {{EC2PrivateDNSName}}"

// part is a literal run of text or one placeholder.
type part struct {
	lit string
	v   variable
}

// template is a username or group compiled at load time. Compiling up front
// means an unknown placeholder is a load error, not a literal "{{Session}}"
// group handed to the API server (the reference leaves unknown placeholders
// in place), and rendering is a single pass: a substituted value is never
// scanned again, so a session name such as "{{AccountID}}" stays literal.
type template struct {
	raw   string
	parts []part
	// prefix is the literal text before the first placeholder. A rendered
	// name may carry a reserved prefix only if prefix already does.
	prefix string
	uses   uint8 // bit set of variables
}

func (t *template) literal() bool { return t.uses == 0 }

func (t *template) has(v variable) bool { return t.uses&(1<<v) != 0 }

func (t *template) usesSession() bool { return t.has(varSessionName) || t.has(varSessionNameRaw) }

// compileTemplate parses s. Its errors name the offending placeholder.
func compileTemplate(s string) (*template, error) {
	if !strings.Contains(s, "{{") && !strings.Contains(s, "}}") {
		return &template{raw: s, prefix: s}, nil // the common, literal case
	}
	t := &template{raw: s}
	rest := s
	first := true
	for {
		open := strings.Index(rest, "{{")
		closing := strings.Index(rest, "}}")
		if open < 0 {
			if closing >= 0 {
				return nil, fmt.Errorf("stray %q with no matching {{", "}}")
			}
			if rest != "" {
				t.parts = append(t.parts, part{lit: rest})
			}
			if first {
				t.prefix = s
			}
			return t, nil
		}
		if closing >= 0 && closing < open {
			return nil, fmt.Errorf("stray %q with no matching {{", "}}")
		}
		end := strings.Index(rest[open+2:], "}}")
		if end < 0 {
			return nil, fmt.Errorf("unclosed {{ in %q", s)
		}
		name := rest[open+2 : open+2+end]
		v, ok := templateNames[name]
		if !ok {
			return nil, fmt.Errorf("unknown template {{%s}} (known: %s; names are case-sensitive)", name, templateList)
		}
		if open > 0 {
			t.parts = append(t.parts, part{lit: rest[:open]})
		}
		if first {
			t.prefix = s[:len(s)-len(rest)+open]
			first = false
		}
		t.parts = append(t.parts, part{v: v})
		t.uses |= 1 << v
		rest = rest[open+2+end+2:]
	}
}

// values are the per-request inputs of a render.
type values struct {
	accountID      string
	sessionName    string // sanitised: '@' replaced by '-'
	sessionNameRaw string
	accessKeyID    string
	dnsName        string
}

func (v *values) get(x variable) string {
	switch x {
	case varAccountID:
		return v.accountID
	case varSessionName:
		return v.sessionName
	case varSessionNameRaw:
		return v.sessionNameRaw
	case varAccessKeyID:
		return v.accessKeyID
	case varEC2PrivateDNSName:
		return v.dnsName
	}
	return ""
}

func (t *template) render(v *values) string {
	if t.literal() {
		return t.raw
	}
	// Sized first: one allocation per rendered name, not one per growth
	// (this runs on every Check, cache hits included).
	n := 0
	for _, p := range t.parts {
		if p.v == varNone {
			n += len(p.lit)
		} else {
			n += len(v.get(p.v))
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range t.parts {
		if p.v == varNone {
			b.WriteString(p.lit)
		} else {
			b.WriteString(v.get(p.v))
		}
	}
	return b.String()
}
