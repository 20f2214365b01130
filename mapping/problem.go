package mapping

import (
	"fmt"
	"strconv"
	"strings"
)

// Problem is one error or warning found in a mapping file, with its position.
type Problem struct {
	// Line is the 1-based line in the file, 0 when it is not known (e.g.
	// inside a double-quoted mapRoles string of a `kubectl get -o json`
	// manifest, where the entry index in Path still locates it).
	Line int
	// Path names the element: "mapRoles[2].rolearn", "data.mapusers",
	// "mapAccounts[0]"; empty for the file as a whole.
	Path string
	// Message says what is wrong and, where useful, how to fix it.
	Message string
	// Entry is true for an error confined to one mapRoles, mapUsers or
	// mapAccounts entry. By default such an entry is dropped (it grants
	// nothing) and the rest of the file loads, as aws-iam-authenticator
	// does; in strict mode it rejects the file. An error with Entry false is
	// structural (the file or one data key does not parse) and always
	// rejects the file.
	Entry bool
	// Rule names the check, for the divergence table in docs/mapping.md
	// (one of the Rule* constants) when this problem makes the project
	// behave differently from aws-iam-authenticator; empty otherwise.
	Rule string
}

// String renders "line 12: mapRoles[2].rolearn: message", dropping the
// parts that are unknown. Tools prefix it with "FILE:" for the compiler-style
// "FILE:12: ..." form editors jump to.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ParseError is returned by Parse when a file cannot be loaded: a structural
// problem (the file, or one data key's YAML, does not parse), or in strict
// mode any error at all. There is no partial result.
type ParseError struct {
	Problems []Problem
	// Warnings found on the way, for linters; they did not cause the error.
	Warnings []Problem
}

func (e *ParseError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid aws-auth mapping: " + e.Problems[0].String()
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("invalid aws-auth mapping: %d problems: %s", len(e.Problems), strings.Join(parts, "; "))
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ParseError) Unwrap() error { return ErrInvalid }
