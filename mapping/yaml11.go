package mapping

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// aws-iam-authenticator turns each data key's YAML into JSON with
// sigs.k8s.io/yaml, which resolves plain scalars by YAML 1.1 rules: yes, on,
// n, 0o17, 1_000, 0b101, 2024-01-02 are booleans, numbers or timestamps
// there, while yaml.v3 (YAML 1.2) keeps them strings. A name of that kind
// reaches AIA as a non-string, which it decodes as empty. We refuse such an
// entry rather than map it to a name AIA would not (RuleWrongType).

// yaml11Words are the plain scalars YAML 1.1 resolves to a boolean, null or
// a special float.
var yaml11Words = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true,
	"n": true, "N": true, "no": true, "No": true, "NO": true,
	"true": true, "True": true, "TRUE": true, "false": true, "False": true, "FALSE": true,
	"on": true, "On": true, "ON": true, "off": true, "Off": true, "OFF": true,
	"~": true, "null": true, "Null": true, "NULL": true,
	".nan": true, ".NaN": true, ".NAN": true,
	".inf": true, ".Inf": true, ".INF": true, "+.inf": true, "+.Inf": true, "+.INF": true,
	"-.inf": true, "-.Inf": true, "-.INF": true,
}

var yaml11Float = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// isPlain reports whether a scalar was written without quotes or a block
// indicator, the only style YAML resolves by content.
func isPlain(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) == 0
}

// yaml11NonString reports whether YAML 1.1 (go-yaml v2's resolver) reads
// the plain scalar s as something other than a string.
func yaml11NonString(s string) bool {
	if s == "" {
		return true
	}
	c := s[0]
	switch {
	case c == '.', c == '+', c == '-', '0' <= c && c <= '9':
	case strings.IndexByte("yYnNtTfFoO~", c) >= 0:
		return yaml11Words[s]
	default:
		return false // the common case: names start with a letter
	}
	if yaml11Words[s] {
		return true
	}
	if c == '.' {
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	}
	if yaml11Timestamp(s) {
		return true
	}
	plain := strings.ReplaceAll(s, "_", "")
	if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
		return true
	}
	if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
		return true
	}
	if yaml11Float.MatchString(plain) {
		if _, err := strconv.ParseFloat(plain, 64); err == nil {
			return true
		}
	}
	if b, ok := strings.CutPrefix(plain, "0b"); ok {
		if _, err := strconv.ParseUint(b, 2, 64); err == nil {
			return true
		}
	} else if b, ok := strings.CutPrefix(plain, "-0b"); ok {
		if _, err := strconv.ParseInt("-"+b, 2, 64); err == nil {
			return true
		}
	}
	return false
}

// yaml11TimeFormats are the timestamp layouts go-yaml v2 accepts.
var yaml11TimeFormats = []string{
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

func yaml11Timestamp(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			break
		}
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, f := range yaml11TimeFormats {
		if _, err := time.Parse(f, s); err == nil {
			return true
		}
	}
	return false
}
