package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedFileIsCurrent regenerates the partition table from the pinned
// SDK and fails when the committed file differs: an SDK bump that adds a
// region (or changes a suffix) must come with `go generate ./authz/token`.
func TestGeneratedFileIsCurrent(t *testing.T) {
	mod, err := locateSDK()
	if err != nil {
		t.Fatalf("locate SDK: %v", err)
	}
	want, err := generate(mod)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "zz_generated_partitions.go"))
	if err != nil {
		t.Fatalf("read committed file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("authz/token/zz_generated_partitions.go is stale for %s@%s: run `go generate ./authz/token`", mod.Path, mod.Version)
	}
}

func TestRender(t *testing.T) {
	tests := map[string]struct {
		json        string
		wantErr     string
		wantContain []string
	}{
		"regions sorted and pseudo-regions kept": {
			json: `{"partitions":[{"id":"aws","outputs":{"dnsSuffix":"amazonaws.com","dualStackDnsSuffix":"api.aws","extra":1},
				"regionRegex":"^us\\-\\w+\\-\\d+$","regions":{"us-west-2":{},"aws-global":{},"us-east-1":{"description":"x"}}}]}`,
			wantContain: []string{
				`const sdkEndpointSource = "sdk@v0"`,
				"\"aws-global\",\n\t\t\t\t\"us-east-1\",\n\t\t\t\t\"us-west-2\",",
				`RegionRegex:        "^us\\-\\w+\\-\\d+$"`,
				`DualStackDNSSuffix: "api.aws"`,
			},
		},
		"not JSON":            {json: `{`, wantErr: "unexpected end"},
		"no partitions":       {json: `{"partitions":[]}`, wantErr: "no partitions"},
		"missing suffix":      {json: `{"partitions":[{"id":"aws","regionRegex":"^x$"}]}`, wantErr: "lacks id, dnsSuffix or regionRegex"},
		"bad regex":           {json: `{"partitions":[{"id":"aws","outputs":{"dnsSuffix":"a"},"regionRegex":"("}]}`, wantErr: "regionRegex"},
		"duplicate partition": {json: `{"partitions":[{"id":"aws","outputs":{"dnsSuffix":"a"},"regionRegex":"x"},{"id":"aws","outputs":{"dnsSuffix":"a"},"regionRegex":"x"}]}`, wantErr: "listed twice"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src, err := render([]byte(tc.json), "sdk@v0")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			for _, want := range tc.wantContain {
				if !strings.Contains(string(src), want) {
					t.Errorf("output lacks %q:\n%s", want, src)
				}
			}
		})
	}
}
