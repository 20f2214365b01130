package app

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the issue that builds this command.
func newMapCommand(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "map",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("map: not built yet") },
	}
}
