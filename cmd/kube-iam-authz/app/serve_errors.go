package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/mapping"
	"github.com/kube-iam-authz/kube-iam-authz/mapping/configmap"
)

// Start-up errors of serve name the flag and the fix, on one line, with each
// path once. The components' own errors name their internals ("cache
// options: MaxTTL", "sts client: CA file") and wrap the path at every layer;
// an operator reading a CrashLoopBackOff log needs the flag.

// rootCause drops the path an *fs.PathError repeats: "no such file or
// directory" instead of "open /x: no such file or directory".
func rootCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// mappingLoadError explains why the mapping file named by flag (the flag or
// config key) did not load at start.
func mappingLoadError(flag, path string, err error) error {
	var perr *mapping.ParseError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s does not exist: mount the aws-auth ConfigMap there (as a directory, not a subPath) or fix the path", flag, path)
	case errors.As(err, &perr) && len(perr.Problems) > 0:
		return fmt.Errorf("%s %s is not a valid aws-auth mapping (%d %s, first: %s): fix the file; kube-iam-authz mapping check --mapping-file %s lists every one",
			flag, path, len(perr.Problems), plural(len(perr.Problems), "problem"), perr.Problems[0], path)
	default:
		return fmt.Errorf("%s %s cannot be used: %v", flag, path, rootCause(err))
	}
}

// configMapLoadError explains why the mapping ConfigMap named by flag (the
// flag or config key) did not load at start.
func configMapLoadError(flag, ref string, err error) error {
	ns, name, _ := strings.Cut(ref, "/")
	// The source's errors start with its own name; the flag names it here.
	detail := strings.TrimPrefix(err.Error(), configmap.Describe(ns, name)+": ")
	var perr *mapping.ParseError
	switch {
	case errors.Is(err, configmap.ErrNotFound):
		return fmt.Errorf("%s %s does not exist: create it (kubectl apply -f aws-auth.yaml) or fix the name", flag, ref)
	case errors.Is(err, configmap.ErrForbidden):
		return fmt.Errorf("%s %s: %s: grant the proxy get, list and watch on that ConfigMap (examples/kubernetes/rbac.yaml, Role kube-iam-authz-aws-auth)", flag, ref, detail)
	case errors.As(err, &perr) && len(perr.Problems) > 0:
		return fmt.Errorf("%s %s is not a valid aws-auth mapping (%d %s, first: %s): fix it; kubectl get configmap -n %s %s -o yaml > aws-auth.yaml && kube-iam-authz mapping check --mapping-file aws-auth.yaml lists every one",
			flag, ref, len(perr.Problems), plural(len(perr.Problems), "problem"), perr.Problems[0], ns, name)
	default:
		return fmt.Errorf("%s %s cannot be read: %s", flag, ref, detail)
	}
}

// kubeClientError explains a Kubernetes client that cannot be built for
// the mapping ConfigMap named by flag.
func kubeClientError(flag, ref, kubeconfig string, err error) error {
	if kubeconfig != "" {
		return fmt.Errorf("%s %s: --kubeconfig %s: %v: give a readable kubeconfig, or drop --kubeconfig to use the in-cluster API server", flag, ref, kubeconfig, rootCause(err))
	}
	return fmt.Errorf("%s %s: no Kubernetes API client: %v: run in a pod or give --kubeconfig", flag, ref, err)
}

// checkSTSCAFile reads --sts-ca-file the way the STS client will, to report
// a problem in the flag's terms.
func checkSTSCAFile(path string) error {
	if path == "" {
		return nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--sts-ca-file %s: %v: give a readable PEM CA bundle, or drop the flag to trust only the system roots", path, rootCause(err))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Errorf("--sts-ca-file %s holds no PEM certificate: give a PEM CA bundle", path)
	}
	return nil
}

// checkGRPCKeyPair loads the gRPC TLS pair the way the server will.
func checkGRPCKeyPair(cert, key string) error {
	if cert == "" {
		return nil
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return fmt.Errorf("--grpc-tls-cert %s / --grpc-tls-key %s: %v: give a matching PEM certificate and key", cert, key, rootCause(err))
	}
	return nil
}

// upstreamTokenError explains an unusable --upstream-token-file (or a
// cluster's upstreamTokenFile).
func upstreamTokenError(flag, path string, err error) error {
	if _, serr := os.Stat(path); errors.Is(err, fs.ErrNotExist) || errors.Is(serr, fs.ErrNotExist) {
		return fmt.Errorf("%s %s does not exist: mount the projected service-account token there or fix the path", flag, path)
	}
	msg := rootCause(err).Error()
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		// The token file's own checks ("is empty", "contains a control
		// character") name the path after a fixed prefix; keep the reason.
		msg = trimPathPrefix(err.Error(), path)
	}
	return fmt.Errorf("%s %s: %s", flag, path, msg)
}

// trimPathPrefix keeps what follows the last mention of path in msg.
func trimPathPrefix(msg, path string) string {
	for i := len(msg) - len(path); i >= 0; i-- {
		if msg[i:i+len(path)] == path {
			rest := msg[i+len(path):]
			for len(rest) > 0 && (rest[0] == ':' || rest[0] == ' ') {
				rest = rest[1:]
			}
			if rest != "" {
				return rest
			}
			break
		}
	}
	return msg
}
