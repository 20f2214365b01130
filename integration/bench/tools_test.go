//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Tool locations: KIA_GHZ and KIA_VEGETA, defaulting to .tools/bin (where
// `make bench-tools` installs the pinned versions).
func toolPath(t testing.TB, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", ".tools", "bin", name))
	must(t, err)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("bench: %s not found (%v); run `make bench-tools` or set %s", name, err, env)
	}
	return p
}

// commandLog records the exact command lines run, for the report.
type commandLog struct {
	seen  map[string]bool
	lines []string
	// tmp is replaced by $TMP so the report does not carry temp paths.
	tmp []string
}

func (c *commandLog) add(name string, args []string) {
	line := name + " " + strings.Join(args, " ")
	for _, d := range c.tmp {
		line = strings.ReplaceAll(line, d, "$TMP")
	}
	if filepath.IsAbs(name) {
		line = strings.ReplaceAll(line, filepath.Dir(filepath.Dir(filepath.Dir(name))), "$REPO")
	}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	// Ports and temp dirs differ per run; rates, durations and counts are
	// part of the command.
	key := volatile.ReplaceAllString(line, "#")
	if !c.seen[key] {
		c.seen[key] = true
		c.lines = append(c.lines, line)
	}
}

// volatile matches the parts of a command line that change from run to
// run without changing what is measured: ports and numbered temp dirs.
var volatile = regexp.MustCompile(`127\.0\.0\.1:\d+|TestBench\d+/\d+`)

func run(t testing.TB, log *commandLog, timeout time.Duration, name string, args ...string) []byte {
	t.Helper()
	log.add(name, args)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench: %s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// ghzReport is the part of ghz's JSON report the benchmarks read.
type ghzReport struct {
	Count   uint64        `json:"count"`
	Total   time.Duration `json:"total"`
	Rps     float64       `json:"rps"`
	Average time.Duration `json:"average"`
	Slowest time.Duration `json:"slowest"`
	Dist    []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
	Errors   map[string]int `json:"errorDistribution"`
	Statuses map[string]int `json:"statusCodeDistribution"`
}

func (r ghzReport) pct(p int) time.Duration {
	for _, d := range r.Dist {
		if d.Percentage == p {
			return d.Latency
		}
	}
	return 0
}

// errors counts failed calls. When a --duration run ends, ghz closes its
// connection under the calls still in flight, which fail on the client
// side with "use of closed network connection", or, for a call that was
// just starting, grpc-go's own "Canceled: grpc: the client connection is
// closing" (only a closing ClientConn says that; no server can); those
// never reached a server decision and are counted by cutoffs instead.
func (r ghzReport) errors() int {
	n := 0
	for msg, c := range r.Errors {
		if !isCutoff(msg) {
			n += c
		}
	}
	return n
}

func (r ghzReport) cutoffs() int {
	n := 0
	for msg, c := range r.Errors {
		if isCutoff(msg) {
			n += c
		}
	}
	return n
}

func isCutoff(msg string) bool {
	return strings.Contains(msg, "use of closed network connection") ||
		strings.Contains(msg, "code = Canceled desc = grpc: the client connection is closing")
}

// ghzData writes a ghz data file: one CheckRequest as JSON, or an array
// that ghz sends round robin (request i gets element i mod len).
func ghzData(t testing.TB, dir, name string, reqs ...proto.Message) string {
	t.Helper()
	var b bytes.Buffer
	if len(reqs) > 1 {
		b.WriteByte('[')
	}
	for i, r := range reqs {
		if i > 0 {
			b.WriteByte(',')
		}
		js, err := protojson.Marshal(r)
		must(t, err)
		b.Write(js)
	}
	if len(reqs) > 1 {
		b.WriteByte(']')
	}
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, b.Bytes(), 0o600))
	return p
}

type ghzRun struct {
	addr, data  string
	concurrency int
	connections int
	duration    time.Duration // or
	total       int
	rps         int
}

func (b *bencher) ghz(t testing.TB, r ghzRun) ghzReport {
	t.Helper()
	out := filepath.Join(b.tmp, "ghz.json")
	args := []string{"--insecure", "--call", "envoy.service.auth.v3.Authorization.Check",
		"--data-file", r.data, "--concurrency", fmt.Sprint(r.concurrency), "--connections", fmt.Sprint(max(1, r.connections)),
		"--timeout", "10s", "--format", "json", "--output", out}
	if r.duration > 0 {
		args = append(args, "--duration", r.duration.String())
	} else {
		args = append(args, "--total", fmt.Sprint(r.total))
	}
	if r.rps > 0 {
		args = append(args, "--rps", fmt.Sprint(r.rps))
	}
	args = append(args, r.addr)
	run(t, &b.cmds, r.duration+5*time.Minute, b.ghzBin, args...)
	raw, err := os.ReadFile(out)
	must(t, err)
	var rep ghzReport
	must(t, json.Unmarshal(raw, &rep))
	return rep
}

// vegetaReport is vegeta's `report -type=json`.
type vegetaReport struct {
	Latencies struct {
		P50  time.Duration `json:"50th"`
		P90  time.Duration `json:"90th"`
		P99  time.Duration `json:"99th"`
		Max  time.Duration `json:"max"`
		Mean time.Duration `json:"mean"`
	} `json:"latencies"`
	Requests    uint64         `json:"requests"`
	Rate        float64        `json:"rate"`
	Throughput  float64        `json:"throughput"`
	Success     float64        `json:"success"`
	StatusCodes map[string]int `json:"status_codes"`
	Errors      []string       `json:"errors"`
}

func (b *bencher) vegeta(t testing.TB, targets, caFile string, rate int, d time.Duration) vegetaReport {
	t.Helper()
	res := filepath.Join(b.tmp, "vegeta.bin")
	run(t, &b.cmds, d+2*time.Minute, b.vegetaBin, "attack", "-targets", targets, "-root-certs", caFile,
		"-rate", fmt.Sprintf("%d/1s", rate), "-duration", d.String(), "-timeout", "10s", "-output", res)
	out := run(t, &b.cmds, time.Minute, b.vegetaBin, "report", "-type", "json", res)
	var rep vegetaReport
	must(t, json.Unmarshal(out, &rep))
	return rep
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms64(x float64) string { return fmt.Sprintf("%.2f ms", x) }
