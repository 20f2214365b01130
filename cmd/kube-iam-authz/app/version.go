package app

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// version and commit are stamped by the linker (Makefile LDFLAGS, Dockerfile
// build args):
//
//	go build -ldflags "-X github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app.version=v0.2.0 \
//	                   -X github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app.commit=$(git rev-parse HEAD)"
//
// They are the only package-level variables of the program: -X can set
// nothing else, and these are never written at run time (the accepted Go
// idiom for build stamps). Everything reads them through buildInfo.
var (
	version = "dev"
	commit  = ""
)

// BuildInfo identifies the binary.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

// String is the one-line form `kube-iam-authz --version` prints.
func (b BuildInfo) String() string {
	return fmt.Sprintf("kube-iam-authz %s (commit %s, %s)", b.Version, b.Commit, b.GoVersion)
}

// buildInfo returns the linker-stamped version and commit. A plain `go
// build` in a git checkout has no -X flags, so the commit then comes from
// the VCS stamp Go embeds itself (vcs.revision, "-dirty" appended when the
// tree had changes); "unknown" when neither exists (go test, go run).
func buildInfo() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if b.Commit == "" {
		b.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			var rev, dirty string
			for _, s := range bi.Settings {
				switch {
				case s.Key == "vcs.revision":
					rev = s.Value
				case s.Key == "vcs.modified" && s.Value == "true":
					dirty = "-dirty"
				}
			}
			if rev != "" {
				b.Commit = rev + dirty
			}
		}
	}
	return b
}

// registerBuildInfo exports kube_iam_authz_build_info{version, revision,
// goversion} = 1, so dashboards and alerts can tell which build serves
// (and a rollout shows as two series during the overlap).
func registerBuildInfo(reg prometheus.Registerer, b BuildInfo) error {
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   "kube_iam_authz",
		Name:        "build_info",
		Help:        "Always 1; the labels identify the running build (version, revision = git commit, goversion).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Commit, "goversion": b.GoVersion},
	}, func() float64 { return 1 }))
}

// versionOptions are the version command's flags.
type versionOptions struct {
	Output string
}

// Validate reports a bad --output.
func (o versionOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("--output %q: want text or json", o.Output)
	}
	return nil
}

func newVersionCommand(streams Streams) *cobra.Command {
	o := versionOptions{Output: "text"}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, git commit and Go version of this binary",
		Example: "  kube-iam-authz version\n" +
			"  kube-iam-authz version --output json\n" +
			"  kube-iam-authz --version",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			b := buildInfo()
			if o.Output == "json" {
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			_, err := fmt.Fprintln(streams.Out, b.String())
			return err
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Output format: text or json.")
	return cmd
}
