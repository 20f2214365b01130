//go:build race

package check

// raceEnabled: the race detector changes allocation counts (sync.Pool drops
// Puts on purpose), so allocation tests skip under it.
const raceEnabled = true
