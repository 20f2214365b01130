package examples

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// TestKubeconfigExamples decodes each example strictly and checks that its
// exec plugin's arguments are ones the named tool accepts: our token
// command's real flags, or aws eks get-token's.
func TestKubeconfigExamples(t *testing.T) {
	tests := map[string]struct {
		file        string
		wantCommand string
		check       func(t *testing.T, args []string)
	}{
		"aws eks get-token": {
			file:        "aws-eks-get-token.yaml",
			wantCommand: "aws",
			check: func(t *testing.T, args []string) {
				if len(args) < 2 || args[0] != "eks" || args[1] != "get-token" || !slices.Contains(args, "--cluster-name") {
					t.Fatalf("args %v: want eks get-token --cluster-name ID", args)
				}
				// Drop-in: the same flags work with kube-iam-authz token
				// (--cluster-name is its alias of --cluster-id).
				cmd := subcommand(t, "token")
				if err := cmd.ParseFlags(args[2:]); err != nil {
					t.Fatalf("kube-iam-authz token does not accept aws eks get-token's %v: %v", args[2:], err)
				}
				if id, _ := cmd.Flags().GetString("cluster-name"); id != args[slices.Index(args, "--cluster-name")+1] {
					t.Errorf("--cluster-name = %q after parsing %v", id, args[2:])
				}
			},
		},
		"kube-iam-authz token": {
			file:        "kube-iam-authz-token.yaml",
			wantCommand: "kube-iam-authz",
			check: func(t *testing.T, args []string) {
				if len(args) == 0 || args[0] != "token" {
					t.Fatalf("args %v: want token first", args)
				}
				cmd := subcommand(t, "token")
				if err := cmd.ParseFlags(args[1:]); err != nil {
					t.Fatalf("kube-iam-authz token does not accept %v: %v", args[1:], err)
				}
				if id, _ := cmd.Flags().GetString("cluster-id"); id == "" {
					t.Errorf("--cluster-id is missing")
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("kubeconfig", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var cfg clientcmdv1.Config
			if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			if len(cfg.AuthInfos) != 1 || cfg.AuthInfos[0].AuthInfo.Exec == nil {
				t.Fatalf("%s: want one user with an exec plugin", tc.file)
			}
			exec := cfg.AuthInfos[0].AuthInfo.Exec
			if exec.Command != tc.wantCommand {
				t.Errorf("command %q, want %q", exec.Command, tc.wantCommand)
			}
			if exec.InteractiveMode != clientcmdv1.NeverExecInteractiveMode {
				t.Errorf("interactiveMode %q: want Never (no prompt can reach a token plugin run by kubectl in scripts)", exec.InteractiveMode)
			}
			tc.check(t, exec.Args)
			ctx := cfg.Contexts
			if len(ctx) != 1 || ctx[0].Context.AuthInfo != cfg.AuthInfos[0].Name || ctx[0].Context.Cluster != cfg.Clusters[0].Name || cfg.CurrentContext != ctx[0].Name {
				t.Errorf("context does not tie the cluster to the user: %+v", ctx)
			}
		})
	}
}
