// Package mapping maps verified AWS identities to Kubernetes users through an
// aws-auth ConfigMap (mapRoles, mapUsers, mapAccounts). It produces
// kubeuser.User and refuses with the kubeuser sentinel errors.
package mapping
