package app

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// parseServe runs flag parsing, the environment and config merging the way
// serve does, with no environment.
func parseServe(t *testing.T, args ...string) (ServeOptions, error) {
	t.Helper()
	return parseServeEnv(t, nil, args...)
}

// parseServeEnv is parseServe with env as the process environment.
func parseServeEnv(t *testing.T, env map[string]string, args ...string) (ServeOptions, error) {
	t.Helper()
	o := defaultServeOptions()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var config string
	fs.StringVar(&config, "config", "", "")
	o.AddFlags(fs)
	bindEnv(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err := o.resolve(fs, &config, lookup)
	return o, err
}

func TestServeConfigFileAndFlags(t *testing.T) {
	cfg := writeTemp(t, "config.yaml", `
cluster-id: from-file
mapping-file: /etc/aws-auth/file.yaml
sts-timeout: 3s
sts-regions: [eu-west-1, us-east-1]
cache-ttl: 1m
grpc-listen: 127.0.0.1:7001
mapping-strict: true
clusters:
  - name: prod
    clusterID: prod-cluster
    mappingFile: /etc/aws-auth/prod.yaml
    mappingStrict: false
  - name: dev
    clusterID: dev-cluster
    mappingFile: /etc/aws-auth/dev.yaml
`)
	o, err := parseServe(t, "--config", cfg, "--cluster-id", "from-flag", "--sts-timeout", "4s")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	tests := map[string]struct{ got, want any }{
		"flag wins over file":        {o.ClusterID, "from-flag"},
		"duration flag wins":         {o.STSTimeout.Duration, 4 * time.Second},
		"file value used":            {o.MappingFile, "/etc/aws-auth/file.yaml"},
		"file duration":              {o.CacheTTL.Duration, time.Minute},
		"file list":                  {strings.Join(o.STSRegions, ","), "eu-west-1,us-east-1"},
		"file address":               {o.GRPCListen, "127.0.0.1:7001"},
		"default kept":               {o.HTTPListen, "127.0.0.1:9090"},
		"default negative ttl kept":  {o.CacheNegativeTTL.Duration, 10 * time.Second},
		"clusters from file":         {len(o.Clusters), 2},
		"file mapping-strict":        {o.MappingStrict, true},
		"cluster mappingStrict":      {*o.Clusters[0].MappingStrict, false},
		"cluster inherits strict":    {o.Clusters[1].MappingStrict == nil, true},
		"cluster name":               {o.Clusters[0].Name, "prod"},
		"cluster id":                 {o.Clusters[0].ClusterID, "prod-cluster"},
		"cluster mapping":            {o.Clusters[0].MappingFile, "/etc/aws-auth/prod.yaml"},
		"default rate limit applies": {o.STSRateLimit, float64(defaultSTSRateLimit)},
	}
	for name, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", name, tc.got, tc.want)
		}
	}
}

// TestServeConfigFileErrors: every --config problem is one line naming
// FILE:LINE, the key and the fix.
func TestServeConfigFileErrors(t *testing.T) {
	tests := map[string]struct {
		content string
		want    string // the error, with FILE for the file's path
	}{
		"unknown key, with a suggestion": {
			content: "cluster-id: x\nclusterid: y\n",
			want:    `--config FILE:2: unknown key "clusterid" (did you mean "cluster-id"?)`,
		},
		"unknown nested key": {
			content: "clusters:\n  - name: a\n    mapping: b\n",
			want:    `--config FILE:3: clusters[0]: unknown key "mapping" (did you mean "mappingFile"?)`,
		},
		"unknown key far from any": {
			content: "log-level: info\n\n\nfrobnicate: 3\n",
			want:    `--config FILE:4: unknown key "frobnicate"`,
		},
		"bad duration": {
			content: "cluster-id: x\nsts-timeout: soon\n",
			want:    `--config FILE:2: sts-timeout: want a duration like 5s or 2m, got "soon"`,
		},
		"number where a string is wanted": {
			content: "mapping-file: /x\nsts-rate-burst: lots\n",
			want:    `--config FILE:2: sts-rate-burst: want a whole number, got string lots`,
		},
		"YAML parser error (yaml.v3 says line 1)": {
			content: "cluster-id: x\nsts-regions: [eu-west-1\n",
			want:    "--config FILE:2: did not find expected ',' or ']'",
		},
		"YAML scanner error": {
			content: "cluster-id: x\nsts-timeout: 5s: 6s\n",
			want:    "--config FILE:2: mapping values are not allowed in this context",
		},
		"YAML list item at the wrong indent": {
			content: "cluster-id: x\nsts-regions:\n  - eu-west-1\n - us-east-1\n",
			want:    "--config FILE:4: did not find expected key",
		},
		"tab indentation": {
			content: "clusters:\n\t- name: a\n",
			want:    "--config FILE:2: found character that cannot start any token",
		},
		"not a mapping": {
			content: "- a\n- b\n",
			want:    "--config FILE:1: want a mapping of flag names to values, got a list",
		},
		"repeated key": {
			content: "cluster-id: a\nlog-level: info\ncluster-id: b\n",
			want:    "--config FILE:3: cluster-id repeats the key of line 1: keep one",
		},
		"two problems, two lines": {
			content: "clusterid: y\nsts-timeout: 5\n",
			want:    "--config FILE:1: unknown key \"clusterid\" (did you mean \"cluster-id\"?)\n--config FILE:2: sts-timeout: want a duration like 5s or 2m, got \"5\"",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := writeTemp(t, "c.yaml", tc.content)
			_, err := parseServe(t, "--config", path)
			want := strings.ReplaceAll(tc.want, "FILE", path)
			if err == nil || err.Error() != want {
				t.Errorf("error:\n got %v\nwant %s", err, want)
			}
		})
	}
	if _, err := parseServe(t, "--config", "/nonexistent/config.yaml"); err == nil || err.Error() != "--config: open /nonexistent/config.yaml: no such file or directory" {
		t.Errorf("missing config file: %v", err)
	}
}

// TestServePrecedence: flag > KUBE_IAM_AUTHZ_<FLAG> > --config > default, for
// each kind of flag.
func TestServePrecedence(t *testing.T) {
	cfg := writeTemp(t, "config.yaml", "sts-timeout: 3s\nsts-regions: [eu-west-1]\nec2-lookups: true\nlog-level: warn\n")
	envCfg := writeTemp(t, "env-config.yaml", "sts-timeout: 2s\n")
	tests := map[string]struct {
		args []string
		env  map[string]string
		want func(o ServeOptions) (got, want any)
	}{
		"default": {
			want: func(o ServeOptions) (any, any) { return o.STSTimeout.Duration, 5 * time.Second },
		},
		"file over default": {
			args: []string{"--config", cfg},
			want: func(o ServeOptions) (any, any) { return o.STSTimeout.Duration, 3 * time.Second },
		},
		"env over file": {
			args: []string{"--config", cfg},
			env:  map[string]string{"KUBE_IAM_AUTHZ_STS_TIMEOUT": "4s"},
			want: func(o ServeOptions) (any, any) { return o.STSTimeout.Duration, 4 * time.Second },
		},
		"flag over env": {
			args: []string{"--config", cfg, "--sts-timeout", "1s"},
			env:  map[string]string{"KUBE_IAM_AUTHZ_STS_TIMEOUT": "4s"},
			want: func(o ServeOptions) (any, any) { return o.STSTimeout.Duration, time.Second },
		},
		"env list over file list": {
			args: []string{"--config", cfg},
			env:  map[string]string{"KUBE_IAM_AUTHZ_STS_REGIONS": "us-west-2,ap-south-1"},
			want: func(o ServeOptions) (any, any) { return strings.Join(o.STSRegions, ","), "us-west-2,ap-south-1" },
		},
		"env bool over file bool": {
			args: []string{"--config", cfg},
			env:  map[string]string{"KUBE_IAM_AUTHZ_EC2_LOOKUPS": "false"},
			want: func(o ServeOptions) (any, any) { return o.Lookups, false },
		},
		"file value kept where no env": {
			args: []string{"--config", cfg},
			env:  map[string]string{"KUBE_IAM_AUTHZ_STS_TIMEOUT": "4s"},
			want: func(o ServeOptions) (any, any) { return o.LogLevel, "warn" },
		},
		"config file named by env": {
			env:  map[string]string{"KUBE_IAM_AUTHZ_CONFIG": envCfg},
			want: func(o ServeOptions) (any, any) { return o.STSTimeout.Duration, 2 * time.Second },
		},
		"service-link variables are not flags": {
			env:  map[string]string{"KUBE_IAM_AUTHZ_PORT": "tcp://10.0.0.1:443", "KUBE_IAM_AUTHZ_SERVICE_HOST": "10.0.0.1"},
			want: func(o ServeOptions) (any, any) { return o.GRPCListen, defaultGRPCListen },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := parseServeEnv(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tc.want(o); got != want {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// TestServeEveryFlagFromEnv: each serve flag has its variable, and a bad
// value names the variable, the flag and the fix.
func TestServeEveryFlagFromEnv(t *testing.T) {
	fs := subcommandFlags(t, "serve")
	var n int
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		t.Run(f.Name, func(t *testing.T) {
			name := EnvName(f.Name)
			if want := "KUBE_IAM_AUTHZ_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")); name != want {
				t.Fatalf("EnvName(%s) = %s, want %s", f.Name, name, want)
			}
			// A value of the flag's type, different from its default.
			value := map[string]string{"string": "x-" + f.Name, "duration": "7s", "int": "7", "float64": "7", "bool": "true", "stringSlice": "a,b"}[f.Value.Type()]
			if value == "" {
				t.Fatalf("no test value for type %s", f.Value.Type())
			}
			fresh := subcommandFlags(t, "serve")
			if err := applyEnv(fresh, func(k string) (string, bool) { return value, k == name }); err != nil {
				t.Fatalf("%s=%s: %v", name, value, err)
			}
			got := fresh.Lookup(f.Name)
			if !got.Changed || strings.Trim(got.Value.String(), "[]") != value {
				t.Errorf("%s=%s left --%s at %q", name, value, f.Name, got.Value.String())
			}
		})
	})
	if n < 20 {
		t.Fatalf("serve has only %d flags?", n)
	}
	err := applyEnv(subcommandFlags(t, "serve"), func(k string) (string, bool) { return "soon", k == "KUBE_IAM_AUTHZ_STS_TIMEOUT" })
	if want := `KUBE_IAM_AUTHZ_STS_TIMEOUT="soon": not a valid --sts-timeout (time: invalid duration "soon"): fix or unset the variable`; err == nil || err.Error() != want {
		t.Errorf("bad value: %v\nwant %s", err, want)
	}
	bad := map[string]string{"KUBE_IAM_AUTHZ_STS_RATE_BURST": "many", "KUBE_IAM_AUTHZ_EC2_LOOKUPS": "yes please"}
	err = applyEnv(subcommandFlags(t, "serve"), func(k string) (string, bool) { v, ok := bad[k]; return v, ok })
	if err == nil || strings.Count(err.Error(), "\n") != 1 || !strings.Contains(err.Error(), "KUBE_IAM_AUTHZ_STS_RATE_BURST") || !strings.Contains(err.Error(), "KUBE_IAM_AUTHZ_EC2_LOOKUPS") {
		t.Errorf("two bad variables: %v, want both, one line each", err)
	}
}

// subcommandFlags returns the flags of a fresh `kube-iam-authz <name>`.
func subcommandFlags(t *testing.T, name string) *pflag.FlagSet {
	t.Helper()
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	cmd, _, err := root.Find([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Flags()
}

func TestServeValidateReportsEverything(t *testing.T) {
	cfg := writeTemp(t, "config.yaml", `
clusters:
  - name: default
    clusterID: ""
  - name: a
    clusterID: x
    mappingFile: a.yaml
  - name: a
    clusterID: x
    mappingFile: a.yaml
  - name: both
    clusterID: both
    mappingFile: b.yaml
    mappingConfigMap: kube-system/aws-auth
  - name: bad-cm
    clusterID: bad-cm
    mappingConfigMap: Kube_System/aws-auth
  - name: no-slash
    clusterID: no-slash
    mappingConfigMap: aws-auth
`)
	o, err := parseServe(t, "--config", cfg,
		"--grpc-listen", "nope", "--http-listen", "127.0.0.1:9090", "--grpc-tls-cert", "c.pem",
		"--partition", "aws-moon", "--sts-endpoint", "ftp://x", "--sts-timeout", "0s",
		"--sts-rate-limit", "-1", "--cache-max-entries", "0", "--cache-ttl", "20m", "--cache-negative-ttl", "0s",
		"--log-level", "loud", "--shutdown-grace", "-1s", "--log-cache-hit-interval", "10ms",
		"--sar-timeout", "1m", "--sar-cache-ttl", "0s", "--kubeconfig", "/k", "--passthrough-non-aws-tokens")
	if err != nil {
		t.Fatal(err)
	}
	err = o.Validate()
	if err == nil {
		t.Fatal("Validate accepted everything")
	}
	for _, want := range []string{
		"--grpc-listen", "--grpc-tls-cert and --grpc-tls-key", "--cluster-id is required", "--mapping-file or --mapping-configmap is required",
		`name "default" is already used`, "clusterID is required", "mappingFile or mappingConfigMap is required",
		"clusters[3] (both): mappingFile and mappingConfigMap are exclusive: set only one", `clusters[4] (bad-cm): mappingConfigMap "Kube_System/aws-auth": namespace "Kube_System"`,
		`clusters[5] (no-slash): mappingConfigMap "aws-auth": want NAMESPACE/NAME`, `name "a" is already used`,
		`clusterID "x" is already used`, "--partition", "--sts-endpoint", "--sts-timeout", "--sts-rate-limit",
		"--cache-max-entries", "--cache-ttl 20m0s: at most 15m0s", "--cache-negative-ttl", "--log-level", "--shutdown-grace", "--log-cache-hit-interval",
		"--sar-timeout", "--sar-cache-ttl",
		"--passthrough-non-aws-tokens needs --upstream-token-file",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q in:\n%v", want, err)
		}
	}
}

func TestFlagsMarkdownListsServeFlags(t *testing.T) {
	o := defaultServeOptions()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.AddFlags(fs)
	md := FlagsMarkdown(fs)
	for _, flag := range []string{
		"grpc-listen", "grpc-tls-cert", "grpc-tls-key", "http-listen", "cluster-id", "mapping-file", "sts-endpoint",
		"sts-ca-file", "sts-timeout", "upstream-token-file", "cache-max-entries", "cache-ttl", "cache-negative-ttl",
		"sts-rate-limit", "sts-rate-burst", "partition", "sts-regions", "log-level", "shutdown-grace",
	} {
		if !strings.Contains(md, "| `--"+flag+"` |") && !strings.Contains(md, "| `--"+flag+" ") {
			t.Errorf("markdown lacks --%s", flag)
		}
	}
	if !strings.Contains(md, "| `--grpc-listen ADDR` | `127.0.0.1:9001` |") || !strings.Contains(md, "| `--sts-timeout duration` | `5s` |") {
		t.Errorf("defaults not rendered:\n%s", md)
	}
}

func TestServeConfigEC2Keys(t *testing.T) {
	o, err := parseServe(t, "--config", writeTemp(t, "c.yaml", "ec2-lookups: true\nec2-region: eu-west-1\n"), "--ec2-endpoint", "https://ec2.example")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Lookups || o.Region != "eu-west-1" || o.Endpoint != "https://ec2.example" {
		t.Errorf("EC2 options %+v", o.EC2Options)
	}
}

func TestServeImpersonationFlags(t *testing.T) {
	o, err := parseServe(t, "--cluster-id", "c", "--mapping-file", "m")
	if err != nil {
		t.Fatal(err)
	}
	if o.AllowImpersonation || o.PassthroughNonAWSTokens {
		t.Fatal("impersonation or pass-through on by default")
	}
	if o.SARTimeout.Duration != 2*time.Second || o.SARCacheTTL.Duration != 5*time.Second {
		t.Errorf("SAR defaults %s, %s", o.SARTimeout.Duration, o.SARCacheTTL.Duration)
	}
	cfg := writeTemp(t, "config.yaml", "allow-impersonation: true\nkubeconfig: /etc/kube/config\npassthrough-non-aws-tokens: true\nsar-cache-ttl: 3s\n")
	o, err = parseServe(t, "--config", cfg, "--cluster-id", "c", "--mapping-file", "m", "--sar-timeout", "1s", "--upstream-token-file", "/t")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if !o.AllowImpersonation || !o.PassthroughNonAWSTokens || o.Kubeconfig != "/etc/kube/config" ||
		o.SARTimeout.Duration != time.Second || o.SARCacheTTL.Duration != 3*time.Second {
		t.Errorf("options %+v", o)
	}
}

// TestServeKubeconfigNeedsAUse: --kubeconfig alone is a mistake (the
// operator believes something talks to the API server that does not).
func TestServeKubeconfigNeedsAUse(t *testing.T) {
	cmConfig := writeTemp(t, "config.yaml", "clusters:\n  - name: b\n    clusterID: b\n    mappingConfigMap: kube-system/aws-auth\n")
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"alone": {
			args:    []string{"--mapping-file", "m"},
			wantErr: "--kubeconfig is only used with --allow-impersonation or --mapping-configmap",
		},
		"for --allow-impersonation":                 {args: []string{"--mapping-file", "m", "--allow-impersonation"}},
		"for --mapping-configmap":                   {args: []string{"--mapping-configmap", "kube-system/aws-auth"}},
		"for a --config cluster's mappingConfigMap": {args: []string{"--mapping-file", "m", "--config", cmConfig}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := parseServe(t, append([]string{"--cluster-id", "c", "--kubeconfig", "/k"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			err = o.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
