// Package kubecluster is what running a real etcd + kube-apiserver on loopback
// takes, shared by the e2e fixture (integration/harness) and the demo's
// supervisor (examples/demo): the PKI kube-apiserver needs (a cluster CA, the
// serving certificate for the names a reviewed Envoy config dials, the
// service-account signing key and a system:masters bootstrap certificate), the
// etcd and kube-apiserver flags, the admin client, kubeconfig and readiness
// probe, and the manifests a cluster gets before kube-iam-authz can act for
// anyone. Starting, supervising and stopping the processes stays with each
// caller: a test fixture fails the test, the demo prints its progress.
package kubecluster
