package main

import (
	"context"
	"fmt"
	"strings"
)

// impersonationDenial is the API server's own wording for a refused
// impersonation of a user (k8s.io/apiserver's impersonation filter), which
// serve reproduces when the SubjectAccessReview says no.
func impersonationDenial(caller, user string) string {
	return fmt.Sprintf(`users "%s" is forbidden: User "%s" cannot impersonate resource "users" in API group "" at the cluster scope`, user, caller)
}

// impersonation shows kubectl --as through the proxy (serve
// --allow-impersonation): admin, in system:masters, may act as the
// developer; the developer may not act as admin. Each decision is a
// SubjectAccessReview for the mapped caller, so it is the cluster's RBAC
// that answers, as it would for a direct client.
func (d *demo) impersonation(ctx context.Context) bool {
	admin, dev := d.ids[0], d.developer()
	ok := true

	d.ui.printf("\n$ kubectl --context %s --as %s auth whoami\n  # %s may impersonate users (system:masters)\n", admin.Context, dev.WantUser, admin.WantUser)
	stdout, stderr, err := d.kubectl(ctx, "--context", admin.Context, "--as", dev.WantUser, "auth", "whoami")
	d.ui.block(stdout)
	d.ui.block(stderr)
	var problems []string
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("kubectl failed (%v), want success", err))
	case !hasField(stdout, "Username", dev.WantUser):
		problems = append(problems, fmt.Sprintf("username is not %q", dev.WantUser))
	case !hasExtra(stdout, "kube-iam-authz.io/original-username", admin.WantUser):
		problems = append(problems, fmt.Sprintf("the AWS caller %q is not recorded in extra kube-iam-authz.io/original-username", admin.WantUser))
	}
	if len(problems) > 0 {
		d.ui.printf("  ✗ %s\n", strings.Join(problems, "; "))
		ok = false
	} else {
		d.ui.printf("  → %s acts as %s; the extras record who asked\n", admin.Context, dev.WantUser)
	}

	d.ui.printf("\n$ kubectl --context %s --as %s auth whoami\n  # %s may not impersonate\n", dev.Context, admin.WantUser, dev.WantUser)
	_, stderr, err = d.kubectl(ctx, "--context", dev.Context, "--as", admin.WantUser, "auth", "whoami")
	d.ui.block(stderr)
	if err == nil {
		d.ui.printf("  ✗ %s impersonated %s, want 403\n", dev.Context, admin.WantUser)
		return false
	}
	d.ui.printf("\n$ kubectl --context %s --as %s get --raw /api\n  # the same 403, with its Status message\n", dev.Context, admin.WantUser)
	_, stderr, err = d.kubectl(ctx, "--context", dev.Context, "--as", admin.WantUser, "get", "--raw", "/api")
	d.ui.block(stderr)
	want := impersonationDenial(dev.WantUser, admin.WantUser)
	switch {
	case err == nil:
		d.ui.printf("  ✗ %s impersonated %s, want 403\n", dev.Context, admin.WantUser)
		ok = false
	case !strings.Contains(stderr, "(Forbidden): "+want):
		d.ui.printf("  ✗ kubectl's error does not say %q\n", want)
		ok = false
	default:
		d.ui.printf("  → refused: the SubjectAccessReview for %s says no\n", dev.WantUser)
	}
	return ok
}

// hasExtra finds "Extra: key   [... want ...]" in kubectl auth whoami's
// table.
func hasExtra(out, key, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, found := strings.CutPrefix(strings.TrimSpace(line), "Extra: "+key)
		if !found || !strings.HasPrefix(rest, " ") {
			continue
		}
		for _, v := range strings.Fields(strings.Trim(strings.TrimSpace(rest), "[]")) {
			if v == want {
				return true
			}
		}
	}
	return false
}
