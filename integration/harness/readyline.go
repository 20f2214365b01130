package harness

import (
	"regexp"
	"time"
)

// readyLineTimeout bounds how long a stand-in takes to print its ready line (the API
// server stand-in builds its handler chain first: about a second here).
const readyLineTimeout = 60 * time.Second

// waitReadyLine waits until the process prints a stdout line matching re and returns
// its submatches.
func (p *Process) waitReadyLine(re *regexp.Regexp) ([]string, error) {
	var m []string
	err := p.waitFor(readyLineTimeout, func() error {
		if m = re.FindStringSubmatch(p.Stdout()); m == nil {
			return errNotReady
		}
		return nil
	})
	return m, err
}
