package mapping

import (
	"strings"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// envelope validates everything around data against the real
// corev1.ConfigMap type, strictly, so that a typo such as `metdata:` or a
// List from `kubectl get cm -o yaml` without a name is reported rather than
// ignored. data itself is elided first: it is decoded with positions by
// configMap, and round-tripping a megabyte of strings through JSON would
// double the cost of a reload.
func (d *decoder) envelope(root *yaml.Node) {
	elided := *root
	elided.Content = make([]*yaml.Node, len(root.Content))
	copy(elided.Content, root.Content)
	kindLine, apiLine := root.Line, root.Line
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "data":
			elided.Content[i+1] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		case "kind":
			kindLine = root.Content[i].Line
		case "apiVersion":
			apiLine = root.Content[i].Line
		}
	}
	out, err := yaml.Marshal(&elided)
	if err != nil {
		d.errorf(root.Line, "", "cannot re-encode the ConfigMap envelope: %v", err)
		return
	}
	var cm corev1.ConfigMap
	if err := sigsyaml.UnmarshalStrict(out, &cm); err != nil {
		d.errorf(root.Line, "", "not a valid ConfigMap: %s", cleanJSONError(err))
		return
	}
	switch cm.Kind {
	case "ConfigMap":
	case "":
		d.errorf(kindLine, "kind", "is missing: a ConfigMap manifest needs kind: ConfigMap (for the bare data map, drop data: and the other ConfigMap fields)")
	case "List":
		d.errorf(kindLine, "kind", "is a List; export the single ConfigMap (kubectl get cm aws-auth -n kube-system -o yaml)")
	default:
		d.errorf(kindLine, "kind", "is %q, want ConfigMap", cm.Kind)
	}
	switch cm.APIVersion {
	case "v1":
	case "":
		d.errorf(apiLine, "apiVersion", "is missing: a ConfigMap manifest needs apiVersion: v1")
	default:
		d.errorf(apiLine, "apiVersion", "is %q, want v1", cm.APIVersion)
	}
	if len(cm.BinaryData) > 0 {
		d.errorf(root.Line, "binaryData", "is not read; aws-auth keys belong in data")
	}
}

// cleanJSONError drops sigs.k8s.io/yaml's wrapping, leaving e.g.
// `json: unknown field "metdata"`.
func cleanJSONError(err error) string {
	msg := err.Error()
	for _, prefix := range []string{"error unmarshaling JSON: ", "while decoding JSON: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return msg
}
