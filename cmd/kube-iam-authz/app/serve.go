package app

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the issue that builds this command.
func newServeCommand(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "serve",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("serve: not built yet") },
	}
}
