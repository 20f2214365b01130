//go:build bench

package bench

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// ---- case 8: group slots ---------------------------------------------------

// groupSlotsMapping maps principal 0 to one group and principal 1 to
// check.MaxGroups groups.
func groupSlotsMapping() []byte {
	gs := make([]string, check.MaxGroups)
	for i := range gs {
		gs[i] = fmt.Sprintf("team-%02d", i)
	}
	var b strings.Builder
	b.WriteString("mapUsers:\n")
	fmt.Fprintf(&b, "  - userarn: arn:aws:iam::%s:user/%s\n    username: one-group\n    groups: [devs]\n", benchAccount, principalName(0))
	fmt.Fprintf(&b, "  - userarn: arn:aws:iam::%s:user/%s\n    username: many-groups\n    groups: [%s]\n", benchAccount, principalName(1), strings.Join(gs, ", "))
	return []byte(b.String())
}

// keepGroupSlots trims the reviewed route to its first n impersonate-group
// entries: the route as it was before issue #16 (n = 16).
func keepGroupSlots(n int) func(*bootstrapv3.Bootstrap) error {
	return func(b *bootstrapv3.Bootstrap) error {
		return envoy.Edit(b, func(rc *routev3.RouteConfiguration) error {
			kept, slots := rc.RequestHeadersToAdd[:0], 0
			for _, h := range rc.RequestHeadersToAdd {
				if strings.EqualFold(h.GetHeader().GetKey(), "impersonate-group") {
					if slots == n {
						continue
					}
					slots++
				}
				kept = append(kept, h)
			}
			rc.RequestHeadersToAdd = kept
			return nil
		})
	}
}

// caseGroupSlots measures what the group slots cost end to end (issue #16
// item 4): the same Envoy, ext_authz server and API-server stand-in, with
// the old 16-slot route and the reviewed 64-slot one, for a user with one
// group and one with 64. Beside vegeta's latencies it reads each process's
// CPU time over the run, per request.
func (b *bencher) caseGroupSlots(t *testing.T) {
	w := newWorld(t, 2)
	must(t, os.WriteFile(w.mappingFile, groupSlotsMapping(), 0o600))
	s := startSTS(t, w, 0)
	srv := startServe(t, w, s, serveOptions{})
	api := startAPIServer(t)
	now := time.Now()
	oneGroup := [][2]string{{"Authorization", "Bearer " + w.token(t, 0, 0, now)}}
	manyGroups := [][2]string{{"Authorization", "Bearer " + w.token(t, 1, 0, now)}}

	route64 := startEnvoyStack(t, srv.grpcAddr, api, true)
	route16 := startEnvoyStack(t, srv.grpcAddr, api, true, keepGroupSlots(16))
	type arm struct {
		name    string
		stack   *envoyStack
		headers [][2]string
		groups  int
		targets string
	}
	arms := []*arm{
		{name: "16-slot route (before), 1 group", stack: route16, headers: oneGroup, groups: 1},
		{name: "64-slot route, 1 group", stack: route64, headers: oneGroup, groups: 1},
		{name: fmt.Sprintf("64-slot route, %d groups", check.MaxGroups), stack: route64, headers: manyGroups, groups: check.MaxGroups},
	}
	for i, a := range arms {
		if code := a.stack.get(t, "/version", a.headers); code != http.StatusOK {
			t.Fatalf("bench: GET /version, %s: %d", a.name, code)
		}
		// What arrived is what the arm says: the stand-in saw every group.
		var lines int
		for _, h := range api.impersonationHeaders(t, "/version") {
			if strings.EqualFold(h[0], "impersonate-group") {
				lines++
			}
		}
		if lines != a.groups {
			t.Fatalf("bench: %s: the API server received %d Impersonate-Group lines, want %d", a.name, lines, a.groups)
		}
		a.targets = vegetaTargets(t, b.tmp, fmt.Sprintf("targets-groups-%d.txt", i), a.stack.url+"/version", a.headers)
		b.vegeta(t, a.targets, a.stack.caFile, b.p.e2eRates[len(b.p.e2eRates)-1], min(b.p.e2eDuration, 3*time.Second)) // warm-up
	}

	type sample struct{ p50, p99, succ, envoyCPU, authzCPU, apiCPU []float64 }
	perReq := func(d time.Duration, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return float64(d.Microseconds()) / float64(n)
	}
	us := func(x float64) string { return fmt.Sprintf("%.0f µs", x) }
	dur := max(b.p.e2eDuration/2, time.Second)
	sec := section{
		title:  fmt.Sprintf("8. Group slots: the 16-slot route against the reviewed %d-slot one (vegeta, %s per run, GET /version through Envoy 1.40.0 to the API-server stand-in)", envoy.GroupSlots, dur),
		header: []string{"rate", "setup", "p50", "p99", "success", "Envoy CPU / request", "kube-iam-authz CPU / request", "API server CPU / request"},
	}
	for _, rate := range b.p.e2eRates {
		res := make([]sample, len(arms))
		for i := range b.p.e2eReps {
			for j := range arms {
				k := (i + j) % len(arms)
				a := arms[k]
				pid := a.stack.envoy.Pid()
				e0, s0, p0 := pidCPU(pid), srv.cpu(), api.cpu()
				r := b.vegeta(t, a.targets, a.stack.caFile, rate, dur)
				e1, s1, p1 := pidCPU(pid), srv.cpu(), api.cpu()
				res[k].p50 = append(res[k].p50, ms(r.Latencies.P50))
				res[k].p99 = append(res[k].p99, ms(r.Latencies.P99))
				res[k].succ = append(res[k].succ, r.Success)
				res[k].envoyCPU = append(res[k].envoyCPU, perReq(e1-e0, r.Requests))
				res[k].authzCPU = append(res[k].authzCPU, perReq(s1-s0, r.Requests))
				res[k].apiCPU = append(res[k].apiCPU, perReq(p1-p0, r.Requests))
				if r.Success < 1 {
					t.Logf("bench: %s at %d rps: success %.4f, status codes %v, first errors %q", a.name, rate, r.Success, r.StatusCodes, r.Errors[:min(len(r.Errors), 3)])
				}
			}
		}
		for k, a := range arms {
			sec.rows = append(sec.rows, []string{fmt.Sprintf("%d rps", rate), a.name, ms64(median(res[k].p50)), ms64(median(res[k].p99)), fmt.Sprintf("%.2f%%", 100*median(res[k].succ)),
				us(median(res[k].envoyCPU)), us(median(res[k].authzCPU)), us(median(res[k].apiCPU))})
		}
		slots50, slotsCPU := diff(res[1].p50, res[0].p50), diff(res[1].envoyCPU, res[0].envoyCPU)
		groups50, groupsCPU, groupsAuthz, groupsAPI := diff(res[2].p50, res[1].p50), diff(res[2].envoyCPU, res[1].envoyCPU), diff(res[2].authzCPU, res[1].authzCPU), diff(res[2].apiCPU, res[1].apiCPU)
		sec.notes = append(sec.notes,
			fmt.Sprintf("%d rps, **16 → 64 slots, one group** (median of the per-round differences): p50 %+.3f ms, p99 %+.3f ms, Envoy CPU %+.0f µs per request (rounds: p50 %s ms; Envoy CPU %s µs).", rate,
				median(slots50), median(diff(res[1].p99, res[0].p99)), median(slotsCPU), fmtList(slots50, "%+.3f"), fmtList(slotsCPU, "%+.0f")),
			fmt.Sprintf("%d rps, **64 groups − 1 group on the 64-slot route**: p50 %+.3f ms, Envoy CPU %+.0f µs, kube-iam-authz CPU %+.0f µs, API server CPU %+.0f µs per request (rounds: p50 %s ms; Envoy CPU %s µs; API server CPU %s µs).", rate,
				median(groups50), median(groupsCPU), median(groupsAuthz), median(groupsAPI), fmtList(groups50, "%+.3f"), fmtList(groupsCPU, "%+.0f"), fmtList(groupsAPI, "%+.0f")))
	}
	sec.notes = append(sec.notes,
		fmt.Sprintf("%d rounds per rate, the three setups in rotating order, medians reported. CPU is each process's user+system time from /proc over the run divided by the requests sent (10 ms clock ticks). Both Envoys run the reviewed envoy/sidecar.yaml (one worker) against the same kube-iam-authz serve and API-server stand-in; the 16-slot one has the route's impersonate-group entries after the 16th removed, as the route was before issue #16. The API server's impersonation filter authorizes every impersonated group, so its CPU grows with the groups; an empty slot adds no line.", b.p.e2eReps),
	)
	b.rep.sections = append(b.rep.sections, sec)
	route16.envoy.Stop()
	route64.envoy.Stop()
	api.stop()
	srv.stop()
	s.stop()
}

// diff is a[i] − b[i] per round.
func diff(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] - b[i]
	}
	return out
}
