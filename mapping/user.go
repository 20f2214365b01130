// Package mapping maps verified AWS identities to Kubernetes users through an
// aws-auth ConfigMap (mapRoles, mapUsers, mapAccounts).
package mapping

// User is the Kubernetes identity an AWS identity maps to. Groups are
// rendered (templates expanded) and in file order; system:authenticated is
// not added here because the API server adds it to impersonated users itself.
type User struct {
	Username string
	Groups   []string
}
