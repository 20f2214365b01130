package app

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the issue that builds this command.
func newTokenCommand(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "token",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("token: not built yet") },
	}
}
