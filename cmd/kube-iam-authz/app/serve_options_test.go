package app

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// parseServe runs flag parsing and config merging the way serve does.
func parseServe(t *testing.T, args ...string) (ServeOptions, error) {
	t.Helper()
	o := defaultServeOptions()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var config string
	fs.StringVar(&config, "config", "", "")
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if config != "" {
		if err := o.applyConfigFile(config, fs); err != nil {
			return o, err
		}
	}
	return o, nil
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

func TestServeConfigFileErrors(t *testing.T) {
	tests := map[string]struct {
		content string
		want    string
	}{
		"unknown key":        {content: "cluster-id: x\nclusterid: y\n", want: "clusterid"},
		"unknown nested key": {content: "clusters:\n  - name: a\n    mapping: b\n", want: "mapping"},
		"bad duration":       {content: "sts-timeout: soon\n", want: "soon"},
		"not a mapping":      {content: "- a\n- b\n", want: "config"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseServe(t, "--config", writeTemp(t, "c.yaml", tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := parseServe(t, "--config", "/nonexistent/config.yaml"); err == nil {
		t.Error("a missing config file was accepted")
	}
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
		"--log-level", "loud", "--shutdown-grace", "-1s")
	if err != nil {
		t.Fatal(err)
	}
	err = o.Validate()
	if err == nil {
		t.Fatal("Validate accepted everything")
	}
	for _, want := range []string{
		"--grpc-listen", "--grpc-tls-cert and --grpc-tls-key", "--cluster-id is required", "--mapping-file/--mapping-configmap: one is required",
		`name "default" is already used`, "clusterID is required", "mappingFile/mappingConfigMap: one is required",
		"clusters[3] (both): mappingFile/mappingConfigMap: set only one", `clusters[4] (bad-cm): mappingFile/mappingConfigMap: namespace "Kube_System"`,
		`clusters[5] (no-slash): mappingFile/mappingConfigMap: "aws-auth": want NAMESPACE/NAME`, `name "a" is already used`,
		`clusterID "x" is already used`, "--partition", "--sts-endpoint", "--sts-timeout", "--sts-rate-limit",
		"--cache-max-entries", "MaxTTL", "--cache-negative-ttl", "--log-level", "--shutdown-grace",
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
