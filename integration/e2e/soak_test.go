//go:build integration && soak

package e2e

// The soak run behind `make soak` (issue 8): open-loop load through the real Envoy at a
// fixed rate, a mix of cached, new, malformed, forged and unmapped tokens, a mapping
// swap every 10 s and an STS outage in the middle. It reports errors by class, p50/p99
// over time and serve's RSS and goroutines every 30 s, and fails on an unexpected
// status or on growth after warm-up. It is a script, not CI: run it with
//
//	make soak                       # 10 min at 1000 rps
//	make soak SOAK_DURATION=2m SOAK_RPS=300

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

var (
	soakDuration = flag.Duration("soak.duration", 10*time.Minute, "how long the soak runs")
	soakRPS      = flag.Int("soak.rps", 1000, "requests per second offered (open loop)")
	soakWorkers  = flag.Int("soak.workers", 256, "concurrent client connections")
	soakWindow   = flag.Duration("soak.window", 30*time.Second, "reporting interval")
	soakReport   = flag.String("soak.report", "", "write the Markdown report here too")
	soakSwap     = flag.Duration("soak.swap", 10*time.Second, "mapping swap interval")
)

const (
	soakPool     = 120 // role sessions that sign new and cached tokens
	soakUnmapped = 10  // role sessions of an unmapped role
)

// soak classes and what each must get: in normal operation, and during the STS outage.
var soakExpect = map[string]struct{ normal, outage []int }{
	"cached":    {[]int{200}, []int{200}},      // verified before: served stale while STS is down
	"new":       {[]int{200}, []int{503}},      // never seen: needs STS
	"malformed": {[]int{401}, []int{401}},      // refused locally, STS never asked
	"forged":    {[]int{401}, []int{401, 503}}, // STS refuses it; while down, 503 unless negatively cached
	"unmapped":  {[]int{403}, []int{403}},      // verified before, mapped nowhere
}

// soakWeights is the mix, in percent.
var soakWeights = []struct {
	class string
	pct   int
}{{"cached", 70}, {"new", 5}, {"malformed", 10}, {"forged", 5}, {"unmapped", 10}}

// soakResources is one sample of the processes' resources.
type soakResources struct {
	at                   time.Duration
	serveRSS, envoyRSS   int64 // KiB
	goroutines, cacheLen float64
	load1                float64             // the machine's 1-minute load average
	checkBuckets         map[float64]float64 // serve's Check latency histogram (cumulative, by le)
}

type soakSample struct {
	at      time.Duration // since start
	class   string
	status  int // 0: transport error
	latency time.Duration
}

func soakMapping(group string) string {
	return fmt.Sprintf(`mapRoles: |
  - rolearn: arn:aws:iam::111122223333:role/Soak
    username: soak:{{SessionName}}
    groups: [%s, viewers]
  - rolearn: arn:aws:iam::111122223333:role/Dev
    username: dev:{{SessionName}}
    groups: [devs]
`, group)
}

func TestSoak(t *testing.T) {
	duration, rps := *soakDuration, *soakRPS
	principals := map[string]relPrincipal{}
	for i := 0; i < soakPool; i++ {
		principals[fmt.Sprintf("soak-%03d", i)] = relRole(fmt.Sprintf("ASIASOAK%012d", i), "Soak", fmt.Sprintf("s%03d", i))
	}
	for i := 0; i < soakUnmapped; i++ {
		principals[fmt.Sprintf("nobody-%03d", i)] = relRole(fmt.Sprintf("ASIANOBODY%010d", i), "Nobody", fmt.Sprintf("n%03d", i))
	}
	s := newRelStack(t, relOptions{
		mapping:    soakMapping("soak-a"),
		principals: principals,
		// warn: the decision log of every allowed request would write ~250 MB in 10
		// minutes on this small machine; denials with 5xx are still logged.
		// The production STS timeout (the fault tests shorten it to 1 s).
		serveArgs: []string{"--log-level", "warn", "--sts-rate-limit", "500", "--sts-rate-burst", "1000", "--sts-timeout", "5s"},
	})

	// Tokens. Only a few are canaries: scanning hundreds of MB of logs for thousands
	// of secrets would take longer than the soak.
	signedAt := time.Now()
	var cached, unmapped, forged []string
	for i := 0; i < 40; i++ {
		cached = append(cached, s.mint(t, fmt.Sprintf("soak-%03d", i), signedAt, i < 3))
	}
	for i := 0; i < soakUnmapped; i++ {
		unmapped = append(unmapped, s.mint(t, fmt.Sprintf("nobody-%03d", i), signedAt, i == 0))
	}
	for i := 0; i < 20; i++ {
		creds := s.principals["alice"].p.Credentials
		creds.SecretAccessKey = "not-the-secret"
		tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: creds, ClusterID: relClusterID, SignedAt: signedAt.Add(-time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		forged = append(forged, tok)
	}
	for _, tok := range cached {
		wantOK(t, "warm-up", s.get(t, tok))
	}
	for _, tok := range unmapped {
		wantStatus(t, "warm-up unmapped", s.get(t, tok), 403, "Forbidden")
	}
	// New tokens: principal p's k-th token is signed k seconds before the start, so
	// every token is new (X-Amz-Date has one-second resolution) and still valid.
	var newCount atomic.Int64
	newToken := func() string {
		n := newCount.Add(1)
		p := int(n) % soakPool
		k := int(n)/soakPool + 1
		return s.mint(t, fmt.Sprintf("soak-%03d", p), signedAt.Add(-time.Duration(k)*time.Second), false)
	}
	malformed := func(r *rand.Rand) string {
		return "k8s-aws-v1." + strconv.FormatUint(r.Uint64(), 36) + "-not-base64url!"
	}

	outageStart, outageEnd := duration*4/10, duration*5/10
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()

	// Mapping swaps and the outage.
	var swaps atomic.Int64
	go func() {
		tick := time.NewTicker(*soakSwap)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				n := swaps.Add(1)
				writeFileAtomic(t, s.mappingPath, soakMapping([]string{"soak-a", "soak-b"}[n%2]))
			}
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(outageStart):
		}
		s.stsProxy.Down()
		select {
		case <-ctx.Done():
		case <-time.After(outageEnd - outageStart):
		}
		s.stsProxy.Up(t)
	}()

	// Resource samples every window.
	var resMu sync.Mutex
	var res []soakResources
	sample := func() {
		r := soakResources{at: time.Since(start), serveRSS: rssKiB(s.currentServe().Pid()), envoyRSS: rssKiB(s.envoy.Pid())}
		if code, body, err := serveGet(s.currentServe(), "/metrics"); err == nil && code == 200 {
			r.goroutines, _ = metricValue(body, "go_goroutines")
			r.cacheLen, _ = metricValue(body, "kube_iam_authz_cache_entries")
			r.checkBuckets = histogramBuckets(body, "kube_iam_authz_check_duration_seconds_bucket")
		}
		r.load1 = loadAverage()
		resMu.Lock()
		res = append(res, r)
		resMu.Unlock()
	}
	sample()
	go func() {
		tick := time.NewTicker(*soakWindow)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sample()
			}
		}
	}()

	// Open loop: a dispatcher offers rps requests per second to a worker pool; what
	// the pool cannot take is counted as dropped (the client could not keep up), not
	// silently delayed.
	jobs := make(chan time.Duration, *soakWorkers)
	samples := make(chan soakSample, 4096)
	var dropped atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < *soakWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for at := range jobs {
				class := pickClass(r)
				var tok string
				switch class {
				case "cached":
					tok = cached[r.IntN(len(cached))]
				case "new":
					tok = newToken()
				case "malformed":
					tok = malformed(r)
				case "forged":
					tok = forged[r.IntN(len(forged))]
				case "unmapped":
					tok = unmapped[r.IntN(len(unmapped))]
				}
				t0 := time.Now()
				resp := s.soakGet(tok)
				samples <- soakSample{at: at, class: class, status: resp, latency: time.Since(t0)}
			}
		}()
	}
	var all []soakSample
	collected := make(chan struct{})
	go func() {
		for smp := range samples {
			all = append(all, smp)
		}
		close(collected)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	sent := 0
dispatch:
	for {
		select {
		case <-ctx.Done():
			break dispatch
		case <-tick.C:
			elapsed := time.Since(start)
			due := int(elapsed.Seconds()*float64(rps)) - sent
			for i := 0; i < due; i++ {
				select {
				case jobs <- elapsed:
				default:
					dropped.Add(1)
				}
				sent++
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	close(samples)
	<-collected
	sample()
	resMu.Lock()
	res = append([]soakResources(nil), res...)
	resMu.Unlock()
	// Idle: once in-flight requests are done and idle connections have timed out
	// (the STS client keeps up to 32 for 90 s, two goroutines each), goroutines must
	// be back near where they were after warm-up; a leak would keep them.
	warmGoroutines := res[min(1, len(res)-1)].goroutines
	idleStart := time.Now()
	var idleGoroutines float64
	var metricsText string
	for {
		metricsText = serveMetrics(t, s.currentServe())
		idleGoroutines, _ = metricValue(metricsText, "go_goroutines")
		if idleGoroutines <= warmGoroutines+5 || time.Since(idleStart) > 100*time.Second {
			break
		}
		time.Sleep(5 * time.Second)
	}
	idleAfter := time.Since(idleStart).Round(time.Second)

	report := soakReportText(all, res, duration, rps, dropped.Load(), swaps.Load(), outageStart, outageEnd)
	report += fmt.Sprintf("\nserve goroutines: %.0f after warm-up, %.0f when the load stopped, %.0f after %s idle\n",
		warmGoroutines, res[len(res)-1].goroutines, idleGoroutines, idleAfter)
	report += "\nserve's counters at the end:\n\n```\n"
	for _, line := range strings.Split(metricsText, "\n") {
		for _, prefix := range []string{"kube_iam_authz_checks_total", "kube_iam_authz_sts_requests_total", "kube_iam_authz_cache_requests_total", "kube_iam_authz_cache_entries", "kube_iam_authz_mapping_reloads_total"} {
			if strings.HasPrefix(line, prefix) && !strings.HasSuffix(line, " 0") {
				report += line + "\n"
			}
		}
	}
	report += "```\n"
	t.Log("\n" + report)
	if *soakReport != "" {
		if err := os.WriteFile(*soakReport, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}

	// Verdicts: no unexpected status; no growth after warm-up.
	unexpected := 0
	for _, smp := range all {
		if !soakExpected(smp, outageStart, outageEnd) {
			unexpected++
		}
	}
	if unexpected > 0 {
		t.Errorf("%d unexpected statuses (see the report)", unexpected)
	}
	if len(res) >= 4 {
		warm := res[1] // after the first window
		last := res[len(res)-1]
		if idleGoroutines > warm.goroutines+5 {
			t.Errorf("goroutines grew from %v after warm-up to %v once idle", warm.goroutines, idleGoroutines)
		}
		// The verification cache legitimately grows while new tokens arrive: an entry
		// lives until its token expires (15 min; bounded at --cache-max-entries), at
		// about 640 B of heap each (BenchmarkCacheHeap). Anything beyond 2 KiB of RSS
		// per added entry plus 16 MiB is growth that is not the cache.
		allowed := warm.serveRSS + int64(2*max(0, last.cacheLen-warm.cacheLen)) + 16<<10
		if last.serveRSS > allowed {
			t.Errorf("serve RSS grew from %d KiB after warm-up to %d KiB (cache %v -> %v entries; allowed %d KiB)",
				warm.serveRSS, last.serveRSS, warm.cacheLen, last.cacheLen, allowed)
		}
	}
	if d := dropped.Load(); d > int64(float64(sent)*0.01) {
		t.Errorf("the client dropped %d of %d requests: the offered rate was not reached", d, sent)
	}
}

// mint signs a token without registering it as a canary unless asked.
func (s *relStack) mint(t *testing.T, who string, signedAt time.Time, canary bool) string {
	p := s.principals[who]
	tok, err := stsfake.SignToken(context.Background(), stsfake.TokenRequest{Credentials: p.p.Credentials, ClusterID: relClusterID, SignedAt: signedAt})
	if err != nil {
		t.Error(err)
		return ""
	}
	if canary {
		if err := s.canary.AddToken(tok); err != nil {
			t.Error(err)
		}
	}
	return tok
}

// soakGet is a GET /version that records nothing (the soak makes millions).
func (s *relStack) soakGet(tok string) int {
	req, err := http.NewRequest(http.MethodGet, s.url()+"/version", nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = ioCopyDiscard(resp.Body)
	return resp.StatusCode
}

func pickClass(r *rand.Rand) string {
	n := r.IntN(100)
	for _, w := range soakWeights {
		if n < w.pct {
			return w.class
		}
		n -= w.pct
	}
	return soakWeights[0].class
}

// soakGuard is how close to an outage edge either answer is accepted: a request that
// straddles the edge, a cached negative entry, the proxy coming back.
const soakGuard = 3 * time.Second

func soakExpected(smp soakSample, outageStart, outageEnd time.Duration) bool {
	e := soakExpect[smp.class]
	var allowed []int
	switch {
	case smp.at > outageStart+soakGuard && smp.at < outageEnd-soakGuard:
		allowed = e.outage
	case smp.at < outageStart-soakGuard || smp.at > outageEnd+soakGuard:
		allowed = e.normal
	default:
		allowed = append(append([]int{}, e.normal...), e.outage...)
	}
	return containsInt(allowed, smp.status)
}

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

func soakReportText(all []soakSample, res []soakResources, duration time.Duration, rps int, dropped, swaps int64, outageStart, outageEnd time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Soak: %s at %d rps offered (STS down from %s to %s, %d mapping swaps)\n\n", duration, rps, outageStart, outageEnd, swaps)
	fmt.Fprintf(&b, "Requests completed: %d (%.0f/s); dropped by the client (pool full): %d\n\n", len(all), float64(len(all))/duration.Seconds(), dropped)

	// Outcomes by class.
	classes := []string{"cached", "new", "malformed", "forged", "unmapped"}
	fmt.Fprintf(&b, "| class | outcomes (status: count) | unexpected |\n|---|---|---|\n")
	for _, c := range classes {
		counts := map[int]int{}
		unexpected := 0
		for _, s := range all {
			if s.class != c {
				continue
			}
			counts[s.status]++
			if !soakExpected(s, outageStart, outageEnd) {
				unexpected++
			}
		}
		var codes []int
		for code := range counts {
			codes = append(codes, code)
		}
		sort.Ints(codes)
		var parts []string
		for _, code := range codes {
			name := strconv.Itoa(code)
			if code == 0 {
				name = "error"
			}
			parts = append(parts, fmt.Sprintf("%s: %d", name, counts[code]))
		}
		fmt.Fprintf(&b, "| %s | %s | %d |\n", c, strings.Join(parts, ", "), unexpected)
	}

	// Latency and resources per window.
	window := *soakWindow
	fmt.Fprintf(&b, "\nLatency is end to end (client → Envoy → serve → Envoy → apiserver-fake and back, TLS on both legs); \"Check p99\" is serve's own answer time (its histogram, bucket upper bound).\n")
	fmt.Fprintf(&b, "\n| window | requests | p50 ms | p99 ms | max ms | Check p99 ms | serve RSS MiB | Envoy RSS MiB | goroutines | cache entries | load avg | unexpected |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	n := int(duration/window) + 1
	for i := 0; i < n; i++ {
		lo, hi := time.Duration(i)*window, time.Duration(i+1)*window
		var lat []float64
		unexpected := map[string]int{}
		for _, s := range all {
			if s.at >= lo && s.at < hi {
				lat = append(lat, float64(s.latency.Microseconds())/1000)
				if !soakExpected(s, outageStart, outageEnd) {
					unexpected[fmt.Sprintf("%s %d", s.class, s.status)]++
				}
			}
		}
		var unexpectedText []string
		for k, v := range unexpected {
			unexpectedText = append(unexpectedText, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(unexpectedText)
		if len(unexpectedText) == 0 {
			unexpectedText = []string{"0"}
		}
		if len(lat) == 0 {
			continue
		}
		sort.Float64s(lat)
		pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		var r, prev *soakResources
		for j := range res {
			if res[j].at >= hi-time.Second || j == len(res)-1 {
				r = &res[j]
				if j > 0 {
					prev = &res[j-1]
				}
				break
			}
		}
		checkP99 := "–"
		if prev != nil {
			if q, ok := histogramQuantile(prev.checkBuckets, r.checkBuckets, 0.99); ok {
				checkP99 = fmt.Sprintf("≤ %.2f", q*1000)
			}
		}
		fmt.Fprintf(&b, "| %s–%s | %d | %.2f | %.2f | %.1f | %s | %.1f | %.1f | %.0f | %.0f | %.1f | %s |\n",
			lo, hi, len(lat), pct(0.50), pct(0.99), lat[len(lat)-1], checkP99,
			float64(r.serveRSS)/1024, float64(r.envoyRSS)/1024, r.goroutines, r.cacheLen, r.load1, strings.Join(unexpectedText, ", "))
	}
	return b.String()
}

// histogramBuckets sums a histogram's cumulative bucket counts over its label sets,
// by upper bound.
func histogramBuckets(metrics, name string) map[float64]float64 {
	out := map[float64]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.LastIndex(line, " ")
		if i < 0 || j < 0 {
			continue
		}
		leText := line[i+4:]
		leText = leText[:strings.IndexByte(leText, '"')]
		le, err := strconv.ParseFloat(leText, 64)
		if err != nil {
			continue // +Inf
		}
		v, err := strconv.ParseFloat(line[j+1:], 64)
		if err == nil {
			out[le] += v
		}
	}
	return out
}

// histogramQuantile is the upper bound of the bucket holding quantile q of the
// observations made between two samples.
func histogramQuantile(before, after map[float64]float64, q float64) (float64, bool) {
	les := make([]float64, 0, len(after))
	for le := range after {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0, false
	}
	total := after[les[len(les)-1]] - before[les[len(les)-1]]
	if total <= 0 {
		return 0, false
	}
	for _, le := range les {
		if after[le]-before[le] >= q*total {
			return le, true
		}
	}
	return les[len(les)-1], true
}

func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
