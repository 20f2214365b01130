package token

//go:generate go run ./internal/gen -out zz_generated_partitions.go

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// globalHost is the legacy global STS endpoint. Only the aws partition has
// one; it signs with region us-east-1. awscli v1 still uses it by default and
// aws-iam-authenticator releases before the regional switch (2019) did too.
const globalHost = "sts.amazonaws.com"

// globalRegion is the signing region of globalHost.
const globalRegion = "us-east-1"

// GlobalRegionLabel is Presigned.RegionLabel for globalHost.
const GlobalRegionLabel = "global"

// sdkPartition is one row of the SDK's partition table
// (zz_generated_partitions.go).
type sdkPartition struct {
	ID                 string
	DNSSuffix          string
	DualStackDNSSuffix string
	// RegionRegex is the SDK's pattern for the partition's region names. A
	// listed region that does not match it is a pseudo-region such as
	// aws-global or aws-iso-global: an endpoint alias, not a place.
	RegionRegex string
	Regions     []string
}

// hostInfo is what the allow-list knows about an accepted STS host.
type hostInfo struct {
	region string // signing region of the credential scope
	label  string // metric label: region, or "global"
}

// hostSet is the immutable STS host allow-list of one Parser: a map built
// once at construction and only read afterwards, so lookups are O(1), need
// no lock, and cannot grow at run time. (aws-iam-authenticator caches hosts
// accepted by a wildcard rule in an unbounded map, which unauthenticated
// callers can grow, reference §2.2.)
type hostSet map[string]hostInfo

// findPartition returns the SDK's data for partition id.
func findPartition(id string) (sdkPartition, bool) {
	for _, p := range sdkPartitions() {
		if p.ID == id {
			return p, true
		}
	}
	return sdkPartition{}, false
}

// validRegionName reports whether r is shaped like a DNS label of lower-case
// letters, digits and inner dashes. The SDK's own region patterns use \w,
// which admits upper case and '_'; neither can be part of a host we accept.
func validRegionName(r string) bool {
	if r == "" || len(r) > 63 || r[0] == '-' || r[len(r)-1] == '-' {
		return false
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// partitionRegions returns the regions whose STS hosts are accepted: the
// explicit list when one is given (each must be shaped like a region of the
// partition, so that an operator can add a region newer than the pinned SDK
// but cannot add `s3` or another partition's region), else every real region
// the SDK knows for the partition.
func partitionRegions(p sdkPartition, explicit []string) ([]string, error) {
	re, err := regexp.Compile(p.RegionRegex)
	if err != nil {
		return nil, fmt.Errorf("partition %s: SDK region pattern: %w", p.ID, err)
	}
	if len(explicit) > 0 {
		var bad []string
		for _, r := range explicit {
			if !validRegionName(r) || !re.MatchString(r) {
				bad = append(bad, fmt.Sprintf("%q", r))
			}
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("regions %s are not regions of partition %s", strings.Join(bad, ", "), p.ID)
		}
		out := slices.Clone(explicit)
		slices.Sort(out)
		return slices.Compact(out), nil
	}
	var out []string
	for _, r := range p.Regions {
		// Pseudo-regions (aws-global, aws-cn-global, ...) resolve to names
		// like sts.aws-global.api.aws that no client should produce; the one
		// real global host is added explicitly.
		if validRegionName(r) && re.MatchString(r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("partition %s: the SDK lists no regions", p.ID)
	}
	return out, nil
}

// newHostSet builds the allow-list for partition id and the given regions
// (empty: all of the partition's regions). Every name comes from the SDK's
// own STS endpoint rules, for the four FIPS × dual-stack combinations, so it
// is exactly what an SDK-based client can produce; names outside the
// partition's DNS suffixes are dropped, which keeps partitions that share
// nothing apart. aws and aws-us-gov share amazonaws.com, so they are kept
// apart by the region patterns instead.
//
// What the resolver returns, and what we make of it (sts v1.52.0):
//   - GovCloud FIPS without dual-stack is the plain regional name
//     (sts.us-gov-west-1.amazonaws.com): GovCloud STS is FIPS already.
//   - ISO partitions resolve dual-stack names (sts.us-iso-east-1.api.aws.ic.gov);
//     the SDK table now carries their dual-stack suffixes, so we accept them,
//     where aws-iam-authenticator rejects them for lack of a configured domain.
//   - Region us-east-1 never resolves to the global name; only the pseudo-region
//     aws-global does, hence globalHost is added by hand for aws.
//   - Unknown labels resolve under the commercial pattern (sts.s3.amazonaws.com);
//     that is why only listed or pattern-checked regions are ever resolved.
func newHostSet(id string, regions []string) (hostSet, error) {
	p, ok := findPartition(id)
	if !ok {
		return nil, fmt.Errorf("partition %q is not in the SDK's partition table (%s)", id, sdkEndpointSource)
	}
	list, err := partitionRegions(p, regions)
	if err != nil {
		return nil, err
	}
	suffixes := []string{"." + p.DNSSuffix}
	if p.DualStackDNSSuffix != "" {
		suffixes = append(suffixes, "."+p.DualStackDNSSuffix)
	}
	resolver := sts.NewDefaultEndpointResolverV2()
	set := make(hostSet, 4*len(list)+1)
	for _, region := range list {
		for _, fips := range []bool{false, true} {
			for _, dualStack := range []bool{false, true} {
				ep, err := resolver.ResolveEndpoint(context.Background(), sts.EndpointParameters{
					Region:       &region,
					UseFIPS:      &fips,
					UseDualStack: &dualStack,
				})
				if err != nil {
					// The SDK refuses some combinations (e.g. FIPS where a
					// partition has none); those hosts simply do not exist.
					continue
				}
				if ep.URI.Scheme != "https" || ep.URI.Port() != "" || ep.URI.Path != "" || ep.URI.User != nil {
					continue
				}
				host := ep.URI.Host
				if !hasAnySuffix(host, suffixes) {
					continue
				}
				if prev, dup := set[host]; dup && prev.region != region {
					// Fail closed: a host that means two regions would make
					// the credential-scope check ambiguous.
					return nil, fmt.Errorf("STS host %s resolves for regions %s and %s", host, prev.region, region)
				}
				set[host] = hostInfo{region: region, label: region}
			}
		}
	}
	if id == "aws" && (len(regions) == 0 || slices.Contains(regions, globalRegion)) {
		set[globalHost] = hostInfo{region: globalRegion, label: GlobalRegionLabel}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("partition %s: no STS host resolved", id)
	}
	return set, nil
}

func hasAnySuffix(host string, suffixes []string) bool {
	for _, s := range suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}
