// Package aiadiff is a test-only module: it runs aws-iam-authenticator's own
// ConfigMap parser and matcher (sigs.k8s.io/aws-iam-authenticator, pinned in
// go.mod) beside kube-iam-authz's mapping package over the same files and
// principals, and fails on any difference not explained by a divergence
// documented in docs/mapping.md.
package aiadiff
