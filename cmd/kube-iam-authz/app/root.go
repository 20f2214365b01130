// Package app wires the kube-iam-authz subcommands. Each subcommand lives in
// its own file with an options struct that validates itself; this file only
// assembles them.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Streams are the process's standard streams, passed in so that commands are
// testable without touching os.Stdout.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// NewRootCommand builds the command tree.
func NewRootCommand(streams Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "kube-iam-authz",
		Short:         "AWS IAM authentication for Kubernetes API servers behind Envoy",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints the same line as `kube-iam-authz version`.
		Version: buildInfo().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.AddCommand(
		newServeCommand(streams),
		newTokenCommand(streams),
		newVerifyCommand(streams),
		newMapCommand(streams),
		newMappingCommand(streams),
		newHealthcheckCommand(streams),
		newVersionCommand(streams),
	)
	return root
}

// Run executes the command line and returns the process exit code: 0 on
// success, the command's own code for an exitError, 1 otherwise.
func Run(ctx context.Context, args []string, streams Streams) int {
	root := NewRootCommand(streams)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(streams.Err, "kube-iam-authz: %v\n", err)
		var exit *exitError
		if errors.As(err, &exit) {
			return exit.code
		}
		return 1
	}
	return 0
}
