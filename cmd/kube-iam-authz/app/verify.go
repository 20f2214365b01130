package app

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the issue that builds this command.
func newVerifyCommand(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "verify",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("verify: not built yet") },
	}
}
