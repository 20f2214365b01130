//go:build race

package cache

// raceEnabled: under the race detector sync.Pool drops a share of Puts on
// purpose, so allocation counts mean nothing there.
const raceEnabled = true
