package app

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExamples: every subcommand's --help has an Example
// section, and every kube-iam-authz command line in it parses with the
// command's real flags and argument rules, so the examples cannot rot.
func TestEveryCommandHasExamples(t *testing.T) {
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	var commands []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			commands = append(commands, sub)
			walk(sub)
		}
	}
	walk(root)
	if len(commands) < 7 {
		t.Fatalf("found only %d subcommands", len(commands))
	}
	for _, c := range commands {
		t.Run(c.CommandPath(), func(t *testing.T) {
			if strings.TrimSpace(c.Example) == "" {
				t.Fatalf("%s --help has no Example section", c.CommandPath())
			}
			lines := exampleCommandLines(c.Example)
			if len(lines) == 0 {
				t.Fatalf("no kube-iam-authz command line in the example:\n%s", c.Example)
			}
			for _, line := range lines {
				// Fresh commands: parsing must not leak between lines.
				fresh := NewRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
				// cobra adds --help and --version only when it executes.
				fresh.InitDefaultHelpFlag()
				fresh.InitDefaultVersionFlag()
				cmd, rest, err := fresh.Find(line[1:])
				if err != nil {
					t.Errorf("%q: %v", strings.Join(line, " "), err)
					continue
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("%q: %v", strings.Join(line, " "), err)
					continue
				}
				if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
					t.Errorf("%q: %v", strings.Join(line, " "), err)
				}
				// kube-iam-authz --version is the version command's other form.
				if c.Runnable() && cmd != fresh && cmd != findSame(fresh, c) {
					t.Errorf("%q runs %s, not %s", strings.Join(line, " "), cmd.CommandPath(), c.CommandPath())
				}
			}
		})
	}
}

func findSame(root, c *cobra.Command) *cobra.Command {
	found, _, _ := root.Find(strings.Fields(strings.TrimPrefix(c.CommandPath(), root.Name()+" ")))
	return found
}

// exampleCommandLines returns the kube-iam-authz invocations of an example
// text as words: continuation lines joined, comments and shell pipes left
// out, leading VAR=value assignments dropped.
func exampleCommandLines(example string) [][]string {
	var out [][]string
	joined := strings.ReplaceAll(example, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndex(line, "| "); i >= 0 {
			line = line[i+2:]
		}
		words := strings.Fields(line)
		for len(words) > 0 && strings.Contains(words[0], "=") {
			words = words[1:]
		}
		if len(words) > 0 && words[0] == "kube-iam-authz" {
			out = append(out, words)
		}
	}
	return out
}
