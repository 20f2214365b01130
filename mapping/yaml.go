package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// Why yaml.v3 nodes as well as sigs.k8s.io/yaml: sigs.k8s.io/yaml converts
// YAML to JSON, which loses the two things a linter for hand-edited aws-auth
// files needs: positions (every problem should carry its line) and the
// literal text of scalars (an unquoted account ID 012345678901 becomes the
// number 12345678901, and 0123 becomes 83 under YAML 1.1 octal rules).
// yaml.v3's node tree keeps both. sigs.k8s.io/yaml still validates the
// Kubernetes envelope against the real corev1.ConfigMap type (envelope.go).

var errMultiDoc = errors.New("holds more than one YAML document (---); keep one")

// parseYAML parses exactly one YAML (or JSON) document into a node tree. It
// returns a nil node for an empty stream.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	// A third-party parser fed operator-controlled bytes must not take the
	// process down: turn a panic into an ordinary parse error.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			return nil, errMultiDoc
		}
		return nil, err
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// splitYAMLError pulls the line out of a yaml.v3 syntax error so that it can
// be shifted to a file line for documents nested in a ConfigMap string.
func splitYAMLError(err error) (line int, msg string) {
	m := yamlLineError.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, err.Error()
	}
	n, convErr := strconv.Atoi(m[1])
	if convErr != nil {
		return 0, err.Error()
	}
	return n, "YAML syntax error: " + m[2]
}

// locator turns node lines of a (possibly nested) document into file lines.
// A mapRoles value written as a literal block scalar (`mapRoles: |`, what
// kubectl prints) starts on the line after its indicator, so inner line k
// is file line base+k. Any other string style (double-quoted in `kubectl
// get -o json`, folded, plain) has no line correspondence: every problem
// inside it is reported at the key's line and located by its Path.
type locator struct {
	base  int
	exact bool
}

func (l locator) at(n *yaml.Node) int {
	if !l.exact {
		return l.base
	}
	return l.base + n.Line
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing (null)"
		case "!!str":
			return "a string"
		case "!!int":
			return "a number"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a scalar " + n.Tag
	}
	return "an unsupported YAML node"
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}
