//go:build unix

package cache

import (
	"syscall"
	"time"
)

// processCPU is the user+system CPU time this process has used. Benchmarks
// report it per operation (cpu-ns/op) next to wall time because the
// machines they run on are shared: other load inflates ns/op, far less so
// the CPU an operation itself burns.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
