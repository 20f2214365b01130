package configmap

import (
	"slices"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// Render turns the ConfigMap's data into the bytes the store parses: the
// bare data map, keys sorted, each value a literal block (`mapRoles: |`)
// where YAML can write it as one, so that problem lines inside an entry are
// lines of that rendering ("configmap kube-system/aws-auth:12") and the
// content hash changes exactly when the data does. Metadata is not
// rendered: a new resourceVersion with the same data is no change.
func Render(cm *corev1.ConfigMap) []byte {
	if len(cm.Data) == 0 {
		return []byte("{}\n")
	}
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		root.Content = append(root.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: cm.Data[k], Style: yaml.LiteralStyle})
	}
	out, err := yaml.Marshal(root)
	if err != nil {
		// A map of strings always encodes; fail closed if it ever does not.
		return []byte("unencodable ConfigMap data: [\n")
	}
	return out
}
