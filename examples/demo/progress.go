package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows what the demo is doing. On a terminal a step is one line
// with a spinner that turns into ✓ or ✗; elsewhere (CI, a test, a pipe) it
// prints plain lines: "starting envoy…" and then "envoy ready (0.4s)".
type progress struct {
	out io.Writer
	tty bool
	now func() time.Time

	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

func newProgress(out io.Writer, getenv func(string) string, now func() time.Time) *progress {
	// NO_COLOR (no-color.org) and TERM=dumb get the plain lines too.
	tty := isTerminal(out) && getenv("TERM") != "dumb" && getenv("NO_COLOR") == ""
	return &progress{out: out, tty: tty, now: now}
}

// isTerminal is true for a character device (a terminal), which is all the
// spinner needs to know; it avoids a terminal library for one bit.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// step starts a step and returns the function that ends it: end(nil, "ready
// on …") or end(err, "").
func (p *progress) step(doing string) func(err error, result string) {
	start := p.now()
	if !p.tty {
		p.printf("%s…\n", doing)
	} else {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.spin(doing, p.stop, p.done)
	}
	return func(err error, result string) {
		took := p.now().Sub(start).Round(10 * time.Millisecond)
		if p.tty {
			close(p.stop)
			<-p.done
		}
		switch {
		case err != nil && p.tty:
			p.printf("\r\033[K  \033[31m✗\033[0m %s: %v\n", doing, err)
		case err != nil:
			p.printf("FAILED: %s: %v\n", doing, err)
		case p.tty:
			p.printf("\r\033[K  \033[32m✓\033[0m %s (%s)\n", result, took)
		default:
			p.printf("%s (%s)\n", result, took)
		}
	}
}

func (p *progress) spin(doing string, stop, done chan struct{}) {
	defer close(done)
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		p.printf("\r\033[K  %s %s…", frames[i%len(frames)], doing)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// heading prints a section title, bold on a terminal.
func (p *progress) heading(title string) {
	if p.tty {
		p.printf("\n\033[1m%s\033[0m\n", title)
		return
	}
	p.printf("\n== %s\n", title)
}

// block prints text indented by four spaces.
func (p *progress) block(text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if line != "" {
			b.WriteString("    ")
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	p.printf("%s", b.String())
}
