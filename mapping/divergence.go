package mapping

import "errors"

// Rules name the places where this project deliberately behaves differently
// from aws-iam-authenticator's EKSConfigMap mapper (AIA) for the same file
// and principal. Each is a row of the divergence table in docs/mapping.md,
// and the differential test against the real AIA (integration/aiadiff)
// accepts a difference only when it is explained by one of them.
const (
	// RuleStructural: the file, or one data key's YAML, does not parse, or
	// a key holds something other than a list. AIA drops that key and loads
	// the others; we refuse the file (the last good mapping stays).
	RuleStructural = "structural"
	// RuleWrongType: a value of the wrong YAML type (a number, a YAML 1.1
	// boolean such as yes/on, a list or mapping where a name belongs;
	// groups written as one string). AIA decodes it as empty and keeps the
	// entry; we drop the entry.
	RuleWrongType = "wrong-type"
	// RuleEmptyName: a missing or empty username or group, also after
	// rendering a template. AIA maps the principal to the empty name; we
	// drop the entry (or refuse the request when a template rendered it).
	RuleEmptyName = "empty-name"
	// RuleNameChars: a comma, a control character or leading/trailing
	// whitespace in a username or group, or a name over 1024 bytes. AIA
	// passes it on; we drop the entry (header lists split on commas, HTTP
	// trims edges, CR/LF/NUL split or truncate headers).
	RuleNameChars = "name-chars"
	// RuleTooManyGroups: more than 1000 groups in one entry. AIA has no
	// limit; we drop the entry.
	RuleTooManyGroups = "too-many-groups"
	// RuleTemplateSyntax: an unknown or malformed placeholder
	// ({{Session}}, {{SessionName). AIA leaves it in the name literally; we
	// drop the entry.
	RuleTemplateSyntax = "template-syntax"
	// RuleReservedTemplate: a template rendered a reserved prefix
	// (system:, eks:, aws:, amazon:, iam:) that its literal text does not
	// spell out. AIA's ConfigMap mapper has no reserved list by default; we
	// refuse the request.
	RuleReservedTemplate = "reserved-prefix-template"
	// RuleInstanceID: {{EC2PrivateDNSName}} with a session name that is not
	// an instance ID in lower-case hex (AIA accepts any \w). We refuse.
	RuleInstanceID = "instance-id"
	// RuleUserID: userid/roleid pins an entry to a principal ID. AIA ignores
	// the field; we match only that principal (a recreated role falls
	// through), and drop an entry whose userid is malformed or set on an sso
	// entry.
	RuleUserID = "userid"
	// RuleDuplicateField: one entry spells a field twice (rolearn and
	// roleARN). AIA takes the last; we drop the entry.
	RuleDuplicateField = "duplicate-field"
	// RuleSSO: sso entries. AIA gates them behind --feature-gates
	// SSORoleMatch, builds an empty partition into the pattern when
	// partition is set (so such entries never match), and lets permission
	// set Admin match AWSReservedSSO_Admin_ReadOnly_<suffix>; we always
	// match, honour partition, and require the exact permission set and a
	// 16-hex suffix.
	RuleSSO = "sso"
	// RulePrecedence: several entries match one principal (an exact role and
	// an sso entry, two sso entries, user ARNs differing only in case). AIA
	// picks one by Go map iteration order, i.e. at random; we pick the exact
	// ARN before sso, and the last entry of duplicates.
	RulePrecedence = "precedence"
	// RuleShadowed: a later entry for the same ARN replaces an earlier one
	// (as in AIA) even when we drop the later one, so that an edit that
	// narrows an entry and also breaks it does not leave the broader entry
	// in force. AIA uses the later entry if it is valid to AIA.
	RuleShadowed = "shadowed"
)

// Rules lists every Rule, for the differential test and the check that
// docs/mapping.md has a row for each.
var Rules = []string{
	RuleStructural, RuleWrongType, RuleEmptyName, RuleNameChars, RuleTooManyGroups,
	RuleTemplateSyntax, RuleReservedTemplate, RuleInstanceID, RuleUserID,
	RuleDuplicateField, RuleSSO, RulePrecedence, RuleShadowed,
}

// ruleError is an error that carries the Rule it stems from.
type ruleError struct {
	rule string
	err  error
}

func (e *ruleError) Error() string { return e.err.Error() }
func (e *ruleError) Unwrap() error { return e.err }

// RuleOf returns the Rule an error from Map stems from ("" if none), so that
// decision logs and the differential test can name the divergence.
func RuleOf(err error) string {
	var re *ruleError
	if errors.As(err, &re) {
		return re.rule
	}
	return ""
}
