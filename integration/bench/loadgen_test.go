//go:build bench || integration

package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The closed-loop load generator of case 1. ghz builds, marshals and
// reports every call through a generic (reflection-driven) client, and on
// 2 shared cores it saturates before a fast server does, so the ratio of
// two servers it reports tends to 1 whatever they cost. This client does
// what Envoy's ext_authz filter does per worker: N calls in flight over ONE
// HTTP/2 connection. It does less than Envoy would per call: the request is
// marshalled once, and the answer is read only as far as "OK or not"
// (protowire, no message decoding), so nearly all the CPU it leaves goes
// to the server.

// checkMethod is the full gRPC method name of ext_authz Check.
const checkMethod = authv3.Authorization_Check_FullMethodName

// rawCheck is a pre-marshalled CheckRequest.
type rawCheck []byte

// checkAnswer is what the client reads of a CheckResponse.
type checkAnswer struct {
	ok bool
}

// rawCodec sends rawCheck bytes as they are and reads a CheckResponse only
// as far as checkAnswer. It is named "proto" so the content-subtype stays
// application/grpc+proto and the server decodes the request with its usual
// codec.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(rawCheck)
	if !ok {
		return nil, fmt.Errorf("loadgen: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(r)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	a, ok := v.(*checkAnswer)
	if !ok {
		return fmt.Errorf("loadgen: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	var err error
	a.ok, err = isOKAnswer(buf.ReadOnlyData())
	return err
}

// isOKAnswer reports whether a marshalled CheckResponse is an OK answer:
// status.code 0 (field 1, google.rpc.Status field 1) and an ok_response
// (field 3). A denied_response (field 2), or any non-zero code, is not OK.
func isOKAnswer(b []byte) (bool, error) {
	code, okResp, denied := int64(0), false, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			st, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false, protowire.ParseError(n)
			}
			b = b[n:]
			for len(st) > 0 {
				snum, styp, m := protowire.ConsumeTag(st)
				if m < 0 {
					return false, protowire.ParseError(m)
				}
				st = st[m:]
				if snum == 1 && styp == protowire.VarintType {
					v, m := protowire.ConsumeVarint(st)
					if m < 0 {
						return false, protowire.ParseError(m)
					}
					code, st = int64(int32(v)), st[m:]
					continue
				}
				m = protowire.ConsumeFieldValue(snum, styp, st)
				if m < 0 {
					return false, protowire.ParseError(m)
				}
				st = st[m:]
			}
			continue
		}
		denied = denied || num == 2
		okResp = okResp || num == 3
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return code == 0 && okResp && !denied, nil
}

// loadResult is one closed-loop run.
type loadResult struct {
	calls   int // answered OK
	failed  int // gRPC errors and non-OK answers
	elapsed time.Duration
	rps     float64
	p50     time.Duration
	p99     time.Duration
	// clientCPU is this process's CPU time during the run (the client's
	// cost; the test process does nothing else meanwhile).
	clientCPU time.Duration
	firstErr  error
}

var errNotOKAnswer = errors.New("loadgen: answer is not OK")

// loadClient is one HTTP/2 connection to an ext_authz server.
type loadClient struct {
	conn *grpc.ClientConn
}

func dialLoad(addr string) (*loadClient, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	conn.Connect()
	return &loadClient{conn: conn}, nil
}

func (c *loadClient) close() { c.conn.Close() }

// run keeps workers calls in flight for d (closed loop: each worker sends
// its next Check when the previous answer arrives) and measures every call.
func (c *loadClient) run(req *authv3.CheckRequest, workers int, d time.Duration) (loadResult, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return loadResult{}, err
	}
	raw := rawCheck(b)
	type workerResult struct {
		lat      []time.Duration
		failed   int
		firstErr error
	}
	results := make([]workerResult, workers)
	ctx := context.Background()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	var deadline time.Time
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			r.lat = make([]time.Duration, 0, 1<<14)
			opt := grpc.ForceCodecV2(rawCodec{})
			<-gate
			for {
				start := time.Now()
				if !start.Before(deadline) {
					return
				}
				var a checkAnswer
				err := c.conn.Invoke(ctx, checkMethod, raw, &a, opt)
				if err == nil && !a.ok {
					err = errNotOKAnswer
				}
				if err != nil {
					r.failed++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.lat = append(r.lat, time.Since(start))
			}
		}()
	}
	cpu0 := selfCPU()
	start := time.Now()
	deadline = start.Add(d)
	close(gate)
	wg.Wait()
	res := loadResult{elapsed: time.Since(start), clientCPU: selfCPU() - cpu0}
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.lat...)
		res.failed += r.failed
		if res.firstErr == nil {
			res.firstErr = r.firstErr
		}
	}
	res.calls = len(all)
	res.rps = float64(res.calls) / res.elapsed.Seconds()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res.p50, res.p99 = percentile(all, 50), percentile(all, 99)
	return res, nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
