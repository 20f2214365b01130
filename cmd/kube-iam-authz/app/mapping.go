package app

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the issue that builds this command.
func newMappingCommand(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "mapping",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("mapping: not built yet") },
	}
}
