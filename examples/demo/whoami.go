package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// whoami runs `kubectl auth whoami` as id through the whole chain, prints
// what kubectl printed, and reports whether it is what the mapping says:
// the user and every group for a mapped identity, a 403 for the unmapped
// one. Each kubectl run signs a fresh token through the exec plugin.
//
// kubectl auth whoami reports any 403 as "the selfsubjectreviews API is not
// enabled in the cluster or you do not have permission to call it" and
// drops the Status message, so for a denied identity the demo also makes a
// plain request, for which kubectl prints the Status kube-iam-authz sent.
func (d *demo) whoami(ctx context.Context, id caller) bool {
	d.ui.printf("\n$ kubectl --context %s auth whoami\n  # %s: %s\n", id.Context, id.Rule, id.Principal.ARN)
	stdout, stderr, err := d.kubectl(ctx, "--context", id.Context, "auth", "whoami")
	d.ui.block(stdout)
	d.ui.block(stderr)

	var problems []string
	switch {
	case id.WantAllowed && err != nil:
		problems = append(problems, fmt.Sprintf("kubectl failed (%v), want success", err))
	case id.WantAllowed:
		if !hasField(stdout, "Username", id.WantUser) {
			problems = append(problems, fmt.Sprintf("username is not %q", id.WantUser))
		}
		for _, g := range id.WantGroups {
			if !hasGroup(stdout, g) {
				problems = append(problems, fmt.Sprintf("group %q missing", g))
			}
		}
	case err == nil:
		problems = append(problems, "kubectl auth whoami succeeded, want 403 Forbidden")
	default:
		d.ui.printf("\n$ kubectl --context %s get --raw /apis/authentication.k8s.io/v1\n  # the same 403, with the Status message kube-iam-authz sent\n", id.Context)
		rawOut, rawErr, err := d.kubectl(ctx, "--context", id.Context, "get", "--raw", "/apis/authentication.k8s.io/v1")
		d.ui.block(rawOut)
		d.ui.block(rawErr)
		switch {
		case err == nil:
			problems = append(problems, "the plain request succeeded, want 403 Forbidden")
		case !strings.Contains(rawErr, id.WantDenied):
			problems = append(problems, fmt.Sprintf("kubectl's error does not say %q", id.WantDenied))
		}
	}
	if len(problems) > 0 {
		d.ui.printf("  ✗ %s: %s\n", id.Context, strings.Join(problems, "; "))
		return false
	}
	if id.WantAllowed {
		d.ui.printf("  → %s is %s in groups %s\n", id.Context, id.WantUser, strings.Join(id.WantGroups, ", "))
	} else {
		d.ui.printf("  → %s is refused with 403: no aws-auth entry maps it\n", id.Context)
	}
	return true
}

// kubectl runs kubectl with the demo's kubeconfig in a clean environment:
// the reader's KUBECONFIG, kubectl cache and AWS setup stay out of it.
func (d *demo) kubectl(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, defaultKubectlBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.o.Kubectl, args...)
	cmd.Env = []string{
		"PATH=" + d.getenv("PATH"),
		"HOME=" + d.files.Home,
		"KUBECONFIG=" + d.files.Kubeconfig,
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// hasField finds a "Username   value" row of kubectl auth whoami's table.
func hasField(out, field, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == field && f[1] == want {
			return true
		}
	}
	return false
}

// hasGroup finds want in the "Groups  [a b c]" row.
func hasGroup(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Groups")
		if !ok {
			continue
		}
		rest = strings.Trim(strings.TrimSpace(rest), "[]")
		for _, g := range strings.Fields(rest) {
			if g == want {
				return true
			}
		}
	}
	return false
}
