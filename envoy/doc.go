// Package envoy loads, checks and renders kube-iam-authz's reviewed Envoy
// configurations (sidecar.yaml, multi-cluster.yaml in this directory).
//
// The YAML files are the product: operators deploy them as they are. This package exists
// so that the policy they encode is machine-checked (CheckPolicy) and so that tests and
// the demo run the very same files on loopback (RenderLocal) instead of a hand-written
// look-alike that could drift from what is shipped.
package envoy
