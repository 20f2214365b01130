package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix starts the environment variable of every serve flag:
// KUBE_IAM_AUTHZ_<FLAG>, upper case, dashes as underscores
// (--sts-timeout is KUBE_IAM_AUTHZ_STS_TIMEOUT).
//
// Variables with the prefix that name no flag are ignored, not refused: in a
// pod of a namespace with a Service named kube-iam-authz, the kubelet injects
// Docker-link variables such as KUBE_IAM_AUTHZ_PORT and
// KUBE_IAM_AUTHZ_SERVICE_HOST (enableServiceLinks defaults to true), and
// refusing them would stop the server from starting.
const EnvPrefix = "KUBE_IAM_AUTHZ_"

// envAnnotation marks a flag settable from the environment; its value is the
// variable name. FlagsMarkdown lists it.
const envAnnotation = "kube-iam-authz/env"

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv makes every flag of fs settable from its environment variable.
func bindEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		_ = fs.SetAnnotation(f.Name, envAnnotation, []string{EnvName(f.Name)})
	})
}

// applyEnv sets every flag not given on the command line from its variable,
// if set: a flag wins over the environment, which wins over --config (the
// file only fills flags that are still unchanged) and the defaults. lookup
// is os.LookupEnv outside tests.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		names := f.Annotations[envAnnotation]
		if f.Changed || len(names) == 0 {
			return
		}
		v, ok := lookup(names[0])
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a valid --%s (%s): fix or unset the variable", names[0], v, f.Name, flagSetError(err)))
		}
	})
	return errors.Join(errs...)
}

// flagSetError is pflag's reason without its own restatement of the flag.
func flagSetError(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "invalid argument") {
		return after
	}
	return msg
}
