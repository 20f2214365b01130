package token

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// TestHostTable is reference §7.5 (TestSTSEndpoints, TestSTSEndpointResolution)
// with our answers. Differences from the reference are marked: we have no
// server-region fallback (the reference's third column), so its
// "valid only with server region X" rows are invalid here, and unknown region
// labels are never accepted.
func TestHostTable(t *testing.T) {
	tests := []struct {
		partition string
		host      string
		wantOK    bool
		note      string
	}{
		{"aws", "sts.amazonaws.com", true, ""},
		{"aws-cn", "sts.amazonaws.com", false, ""},
		{"aws-us-gov", "sts.amazonaws.com", false, ""},
		{"aws-iso", "sts.amazonaws.com", false, ""},
		{"aws-iso-b", "sts.amazonaws.com", false, ""},
		{"aws-iso-e", "sts.amazonaws.com", false, ""},
		{"aws-iso-f", "sts.amazonaws.com", false, ""},
		{"aws-eusc", "sts.amazonaws.com", false, ""},
		{"aws-cn", "sts.cn-northwest-1.amazonaws.com.cn", true, ""},
		{"aws-cn", "sts.cn-north-1.amazonaws.com.cn", true, ""},
		{"aws-cn", "sts.us-iso-east-1.c2s.ic.gov", false, ""},
		{"aws-cn", "sts.not-a-region1.amazonaws.com.cn", false, ""},
		{"aws-cn", "sts.not-a-region2.amazonaws.com.cn", false, "reference: valid with server region not-a-region2"},
		{"aws", "sts-fips.us-west-2.amazonaws.com", true, ""},
		{"aws", "sts-fips.us-east-1.amazonaws.com", true, ""},
		{"aws", "sts.us-east-1.amazonaws.com", true, ""},
		{"aws", "sts.us-east-2.amazonaws.com", true, ""},
		{"aws", "sts.us-west-1.amazonaws.com", true, ""},
		{"aws", "sts.us-west-2.amazonaws.com", true, ""},
		{"aws", "sts.ap-south-1.amazonaws.com", true, ""},
		{"aws", "sts.ap-northeast-1.amazonaws.com", true, ""},
		{"aws", "sts.ap-northeast-2.amazonaws.com", true, ""},
		{"aws", "sts.ap-southeast-1.amazonaws.com", true, ""},
		{"aws", "sts.ap-southeast-2.amazonaws.com", true, ""},
		{"aws", "sts.ca-central-1.amazonaws.com", true, ""},
		{"aws", "sts.eu-central-1.amazonaws.com", true, ""},
		{"aws", "sts.eu-west-1.amazonaws.com", true, ""},
		{"aws", "sts.eu-west-2.amazonaws.com", true, ""},
		{"aws", "sts.eu-west-3.amazonaws.com", true, ""},
		{"aws", "sts.eu-north-1.amazonaws.com", true, ""},
		{"aws", "sts.amazonaws.com.cn", false, ""},
		{"aws", "website.amazonaws.com", false, ""},
		{"aws", "sts.default-region.amazonaws.com", false, "reference: valid with server region default-region"},
		{"aws-iso", "sts.us-iso-east-1.c2s.ic.gov", true, ""},
		{"aws-iso", "sts.cn-north-1.amazonaws.com.cn", false, ""},
		{"aws-iso-b", "sts.cn-north-1.amazonaws.com.cn", false, ""},
		{"aws-us-gov", "sts.us-gov-east-1.amazonaws.com", true, ""},
		{"aws-cn", "sts-fips.us-east-1.amazonaws.com", false, ""},
		{"aws-cn", "sts.us-isob-east-1.amazonaws.com.cn", false, "reference: valid with server region us-isob-east-1"},
		{"aws-iso-b", "sts.us-isob-east-1.amazonaws.com.cn", false, ""},
		{"aws", "sts.us-west-2.api.aws", true, ""},
		{"aws-cn", "sts.cn-north-1.api.amazonwebservices.com.cn", true, ""},
		{"aws", "sts.cn-north-1.api.amazonwebservices.com.cn", false, ""},
		{"aws", "sts.not-a-region.amazonaws.com", false, "reference: valid (documented weakness)"},
		{"aws-cn", "sts.not-a-region3.amazonaws.com.cn", false, ""},
		{"aws-cn", "sts.not-a-region4.amazonaws.com.cn", false, "reference: valid with server region not-a-region4"},
		{"aws-cn", "sts.not-a-region5.amazonaws.com.cn", false, ""},
		{"aws-cn", "sts.us-west-2.amazonaws.com.cn", false, ""},
		{"aws", "sts.us-west-2.amazonaws.com.cn", false, ""},
		{"aws-cn", "sts.not-a-region.amazonaws.com", false, ""},
		// Reference §2.2 [VERIFIED] accepted/rejected lists.
		{"aws", "sts.s3.amazonaws.com", false, "reference: valid (wildcard gap)"},
		{"aws", "sts.aws-global.api.aws", false, "reference: valid"},
		{"aws", "sts.us-gov-west-1.amazonaws.com", false, "reference: valid (no partition isolation)"},
		{"aws-us-gov", "sts.us-west-2.amazonaws.com", false, "reference: valid (no partition isolation)"},
		{"aws", "sts.x.y.amazonaws.com", false, ""},
		{"aws-iso", "sts.us-iso-east-1.api.aws.ic.gov", true, "reference: invalid (no dual-stack domain configured); the SDK table has one"},
		// Reference §1.3 resolver table, one row per partition.
		{"aws-us-gov", "sts.us-gov-west-1.api.aws", true, ""},
		{"aws-us-gov", "sts-fips.us-gov-west-1.api.aws", true, ""},
		{"aws-us-gov", "sts-fips.us-gov-west-1.amazonaws.com", false, "the SDK resolves GovCloud FIPS to the plain host"},
		{"aws-cn", "sts-fips.cn-north-1.amazonaws.com.cn", true, ""},
		{"aws-cn", "sts-fips.cn-north-1.api.amazonwebservices.com.cn", true, ""},
		{"aws-iso", "sts-fips.us-iso-east-1.c2s.ic.gov", true, ""},
		{"aws-iso-b", "sts.us-isob-east-1.sc2s.sgov.gov", true, ""},
		{"aws-iso-b", "sts.us-isob-east-1.api.aws.scloud", true, ""},
		{"aws-iso-b", "sts-fips.us-isob-east-1.sc2s.sgov.gov", true, ""},
		{"aws-iso-e", "sts.eu-isoe-west-1.cloud.adc-e.uk", true, ""},
		{"aws-iso-e", "sts.eu-isoe-west-1.api.cloud-aws.adc-e.uk", true, ""},
		{"aws-iso-f", "sts.us-isof-south-1.csp.hci.ic.gov", true, ""},
		{"aws-iso-f", "sts-fips.us-isof-south-1.api.aws.hci.ic.gov", true, ""},
		{"aws-eusc", "sts.eusc-de-east-1.amazonaws.eu", true, ""},
		{"aws-eusc", "sts-fips.eusc-de-east-1.api.amazonwebservices.eu", true, ""},
		{"aws-eusc", "sts.eu-central-1.amazonaws.com", false, ""},
		{"aws-iso", "sts.aws-iso-global.c2s.ic.gov", false, "pseudo-region"},
		{"aws-cn", "sts.aws-cn-global.amazonaws.com.cn", false, "pseudo-region"},
	}
	parsers := map[string]*Parser{}
	for _, tc := range tests {
		p, ok := parsers[tc.partition]
		if !ok {
			p = newTestParser(t, Options{Partition: tc.partition})
			parsers[tc.partition] = p
		}
		_, got := p.hosts[tc.host]
		if got != tc.wantOK {
			t.Errorf("%s %s: accepted = %v, want %v %s", tc.partition, tc.host, got, tc.wantOK, tc.note)
		}
	}
}

// TestHostSets checks the allow-list of every partition: bounded, built
// from the SDK, lower-case, under the partition's suffixes, one region per
// host, and the global host only in aws.
func TestHostSets(t *testing.T) {
	for _, partition := range identity.Partitions() {
		t.Run(partition, func(t *testing.T) {
			p := newTestParser(t, Options{Partition: partition})
			sdk, ok := findPartition(partition)
			if !ok {
				t.Fatalf("no SDK data")
			}
			n := len(p.hosts)
			t.Logf("%s: %d hosts (%s)", partition, n, sdkEndpointSource)
			if n < 3 || n > 4*len(sdk.Regions)+1 {
				t.Errorf("%d hosts for %d SDK regions", n, len(sdk.Regions))
			}
			for host, info := range p.hosts {
				if strings.ToLower(host) != host || strings.ContainsAny(host, ":/@[") {
					t.Errorf("host %q is not a plain lower-case name", host)
				}
				if host == globalHost {
					if partition != "aws" || info.region != "us-east-1" || info.label != "global" {
						t.Errorf("global host in %s as %+v", partition, info)
					}
					continue
				}
				if !strings.HasSuffix(host, "."+sdk.DNSSuffix) && !strings.HasSuffix(host, "."+sdk.DualStackDNSSuffix) {
					t.Errorf("host %q is outside %s's suffixes", host, partition)
				}
				if !strings.Contains(host, "."+info.region+".") || info.label != info.region {
					t.Errorf("host %q maps to %+v", host, info)
				}
				if strings.Contains(info.region, "global") {
					t.Errorf("host %q comes from pseudo-region %s", host, info.region)
				}
			}
			again := newTestParser(t, Options{Partition: partition})
			if !maps.Equal(p.hosts, again.hosts) {
				t.Errorf("allow-list is not deterministic")
			}
			if _, ok := p.hosts[globalHost]; ok != (partition == "aws") {
				t.Errorf("global host present = %v", ok)
			}
		})
	}
}

func TestHostSetExplicitRegions(t *testing.T) {
	tests := map[string]struct {
		regions   []string
		wantHosts []string
	}{
		"one region, no global host": {
			regions: []string{"eu-west-1"},
			wantHosts: []string{
				"sts.eu-west-1.amazonaws.com", "sts-fips.eu-west-1.amazonaws.com",
				"sts.eu-west-1.api.aws", "sts-fips.eu-west-1.api.aws",
			},
		},
		"us-east-1 brings the global host": {
			regions: []string{"us-east-1", "us-east-1"},
			wantHosts: []string{
				"sts.amazonaws.com",
				"sts.us-east-1.amazonaws.com", "sts-fips.us-east-1.amazonaws.com",
				"sts.us-east-1.api.aws", "sts-fips.us-east-1.api.aws",
			},
		},
		"region newer than the SDK, by shape": {
			regions: []string{"ap-future-9"},
			wantHosts: []string{
				"sts.ap-future-9.amazonaws.com", "sts-fips.ap-future-9.amazonaws.com",
				"sts.ap-future-9.api.aws", "sts-fips.ap-future-9.api.aws",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := newTestParser(t, Options{Regions: tc.regions})
			got := p.Hosts()
			slices.Sort(got)
			want := slices.Clone(tc.wantHosts)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("hosts = %v, want %v", got, want)
			}
		})
	}
	// A token for a region outside the list fails on the host rule.
	p := newTestParser(t, Options{Regions: []string{"eu-west-1"}})
	pre, err := p.Parse(B(usw2()))
	checkRejected(t, pre, err, RuleHost)
}

func TestSDKTableCoversEveryPartition(t *testing.T) {
	for _, partition := range identity.Partitions() {
		if _, ok := findPartition(partition); !ok {
			t.Errorf("partition %s is missing from %s", partition, sdkEndpointSource)
		}
	}
}

func TestHostProblemDetails(t *testing.T) {
	p := newTestParser(t, Options{})
	tests := map[string]struct {
		host       string
		wantDetail string
	}{
		"port":          {host: "sts.us-west-2.amazonaws.com:443", wantDetail: "carries a port"},
		"ipv4":          {host: "10.0.0.1", wantDetail: "IP literal"},
		"ipv6":          {host: "[::1]", wantDetail: "IP literal"},
		"dot":           {host: "sts.amazonaws.com.", wantDetail: "ends with a dot"},
		"upper":         {host: "STS.amazonaws.com", wantDetail: "not lower case"},
		"other":         {host: "sts.s3.amazonaws.com", wantDetail: "not an STS endpoint of partition aws"},
		"long, clipped": {host: strings.Repeat("a", 300) + ".com", wantDetail: strings.Repeat("a", 64) + "...\""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := p.Parse(B(validURL(tc.host, "us-west-2")))
			checkRejected(t, nil, err, RuleHost)
			if !strings.Contains(err.Error(), tc.wantDetail) {
				t.Errorf("error %q lacks %q", err, tc.wantDetail)
			}
		})
	}
}
