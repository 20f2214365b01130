package app

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kube-iam-authz/kube-iam-authz/authz/check"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

// newMappingCommand is the `mapping` group: tools for aws-auth files.
func newMappingCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "mapping",
		Short:   "Work with aws-auth mapping files",
		Example: `  kube-iam-authz mapping check --mapping-file aws-auth.yaml`,
	}
	cmd.AddCommand(newMappingCheckCommand(streams))
	return cmd
}

// mappingCheckOptions are the options of `mapping check`.
type mappingCheckOptions struct {
	// File is --mapping-file, the flag serve takes for the same file.
	File string
	// Arg is the positional FILE (kept for existing scripts).
	Arg string
	// Strict turns warnings into a failure, for CI.
	Strict bool
}

// Complete takes the positional FILE when --mapping-file is not given.
func (o *mappingCheckOptions) Complete(args []string) {
	if len(args) == 1 {
		o.Arg = args[0]
	}
	if o.File == "" {
		o.File = o.Arg
	}
}

// Validate reports every problem with the options (after Complete).
func (o *mappingCheckOptions) Validate() error {
	switch {
	case strings.TrimSpace(o.File) == "":
		return errors.New("mapping check: no file: give --mapping-file FILE (or FILE as the argument)")
	case o.Arg != "" && o.Arg != o.File:
		return fmt.Errorf("mapping check: --mapping-file %s and the argument %s differ: give one of them", o.File, o.Arg)
	}
	return nil
}

func newMappingCheckCommand(streams Streams) *cobra.Command {
	o := &mappingCheckOptions{}
	cmd := &cobra.Command{
		Use:   "check [--mapping-file] FILE",
		Short: "Lint an aws-auth mapping file",
		Long: `Lint an aws-auth mapping file exactly as the server would load it.

FILE may be the ConfigMap (kubectl get cm aws-auth -n kube-system -o yaml),
its bare data map, or mapRoles/mapUsers/mapAccounts as YAML or JSON lists.
It prints a summary (entries per kind, templates used) and every problem as
FILE:LINE: SEVERITY: PATH: MESSAGE. Exit status: 1 if there is any error
(a file the server refuses, or an entry it drops because the entry is
invalid on its own), 1 with --strict also if there are warnings, else 0.`,
		Example: `  # The file serve would load, as serve names it:
  kube-iam-authz mapping check --mapping-file /etc/kube-iam-authz/mapping/aws-auth.yaml

  # The cluster's live ConfigMap, failing CI on warnings too:
  kubectl get configmap aws-auth -n kube-system -o yaml > aws-auth.yaml
  kube-iam-authz mapping check --strict aws-auth.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			o.Complete(args)
			if err := o.Validate(); err != nil {
				return &exitError{code: 1, err: err}
			}
			return o.Run(streams)
		},
	}
	cmd.Flags().StringVar(&o.File, "mapping-file", "", "aws-auth mapping `FILE` to lint (the flag serve takes; FILE may also be given as the argument)")
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "exit 1 also if there are warnings (for CI linting of the ConfigMap)")
	return cmd
}

// Run lints the file.
func (o *mappingCheckOptions) Run(streams Streams) error {
	data, err := mapping.ReadFile(o.File, 0)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	snap, err := mapping.Parse(data)
	var perr *mapping.ParseError
	if errors.As(err, &perr) {
		for _, p := range perr.Problems {
			printDiagnostic(streams.Err, o.File, "error", p)
		}
		for _, w := range perr.Warnings {
			printDiagnostic(streams.Err, o.File, "warning", w)
		}
		return &exitError{code: 1, err: fmt.Errorf("%s: %d %s", o.File, len(perr.Problems), plural(len(perr.Problems), "problem"))}
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	c := snap.Counts()
	templates := "none"
	if t := snap.Templates(); len(t) > 0 {
		templates = strings.Join(t, ", ")
	}
	// An entry over the group limit loads but every request it maps is
	// refused (check.Decide, which serve and the map dry run share).
	warnings := append(snap.Warnings(), snap.GroupsOver(check.MaxGroups)...)
	fmt.Fprintf(streams.Out, "%s: ok (%s shape, sha256 %s)\n", o.File, snap.Shape(), snap.Hash())
	fmt.Fprintf(streams.Out, "  mapRoles:    %d (%d rolearn, %d sso)\n", c.Roles+c.SSO, c.Roles, c.SSO)
	fmt.Fprintf(streams.Out, "  mapUsers:    %d\n", c.Users)
	fmt.Fprintf(streams.Out, "  mapAccounts: %d\n", c.Accounts)
	fmt.Fprintf(streams.Out, "  templates:   %s\n", templates)
	fmt.Fprintf(streams.Out, "  dropped:     %d\n", c.Dropped)
	fmt.Fprintf(streams.Out, "  warnings:    %d\n", len(warnings))
	for _, p := range snap.Dropped() {
		printDiagnostic(streams.Err, o.File, "error", p)
	}
	for _, w := range warnings {
		printDiagnostic(streams.Err, o.File, "warning", w)
	}
	if c.Dropped > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d %s dropped (each grants nothing; serve --mapping-strict refuses the file)", o.File, c.Dropped, plural(c.Dropped, "entry is", "entries are"))}
	}
	if o.Strict && len(warnings) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d %s (--strict)", o.File, len(warnings), plural(len(warnings), "warning"))}
	}
	return nil
}

// printDiagnostic writes the compiler-style FILE:LINE: SEVERITY: PATH: MESSAGE
// that editors and CI annotators understand.
func printDiagnostic(w io.Writer, file, severity string, p mapping.Problem) {
	pos := file
	if p.Line > 0 {
		pos = fmt.Sprintf("%s:%d", file, p.Line)
	}
	if p.Path != "" {
		fmt.Fprintf(w, "%s: %s: %s: %s\n", pos, severity, p.Path, p.Message)
		return
	}
	fmt.Fprintf(w, "%s: %s: %s\n", pos, severity, p.Message)
}

// plural is word for 1, else word+"s" or the given plural form.
func plural(n int, word string, pluralForm ...string) string {
	if n == 1 {
		return word
	}
	if len(pluralForm) > 0 {
		return pluralForm[0]
	}
	return word + "s"
}
