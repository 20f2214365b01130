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
func (d *demo) whoami(ctx context.Context, id caller) bool {
	d.ui.printf("\n$ kubectl --context %s auth whoami\n  # %s: %s\n", id.Context, id.Rule, id.Principal.ARN)
	ctx, cancel := context.WithTimeout(ctx, defaultKubectlBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.o.Kubectl, "--context", id.Context, "auth", "whoami")
	// A clean environment: the reader's KUBECONFIG, kubectl cache and AWS
	// setup stay out of it.
	cmd.Env = []string{
		"PATH=" + d.getenv("PATH"),
		"HOME=" + d.files.Home,
		"KUBECONFIG=" + d.files.Kubeconfig,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	d.ui.block(stdout.String())
	d.ui.block(stderr.String())

	var problems []string
	switch {
	case id.WantAllowed && err != nil:
		problems = append(problems, fmt.Sprintf("kubectl failed (%v), want success", err))
	case id.WantAllowed:
		out := stdout.String()
		if !hasField(out, "Username", id.WantUser) {
			problems = append(problems, fmt.Sprintf("username is not %q", id.WantUser))
		}
		for _, g := range id.WantGroups {
			if !hasGroup(out, g) {
				problems = append(problems, fmt.Sprintf("group %q missing", g))
			}
		}
	case err == nil:
		problems = append(problems, "kubectl succeeded, want 403 Forbidden")
	case !strings.Contains(stderr.String(), id.WantDenied):
		problems = append(problems, fmt.Sprintf("kubectl's error does not say %q", id.WantDenied))
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
