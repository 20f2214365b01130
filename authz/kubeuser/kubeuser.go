// Package kubeuser is the Kubernetes user that a verified AWS identity maps to,
// and the ways a mapping can refuse to name one. It is a leaf beside
// authz/identity: package mapping produces these values, and authz/check and
// authz/impersonate consume them, without either side importing the other.
package kubeuser

// User is the Kubernetes identity an AWS identity maps to. Groups are
// rendered (templates expanded) and in file order; system:authenticated is
// not added here because the API server adds it to impersonated users itself.
type User struct {
	Username string
	Groups   []string
}
