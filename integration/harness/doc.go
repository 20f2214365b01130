// Package harness runs real peers (Envoy, our binaries) for integration tests on
// loopback: free ports, processes whose output lands in the test's temp dir and in the
// test log when the test fails, readiness waits, clean shutdown on t.Cleanup, and a
// throwaway PKI for TLS listeners and upstreams.
//
// Everything here takes a testing.TB and fails the test on error: a harness problem is
// never a silent skip.
package harness
