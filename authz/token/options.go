package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// Defaults and bounds of Options.
const (
	// DefaultPartition is the partition when Options.Partition is empty.
	DefaultPartition = "aws"
	// DefaultMaxTokenBytes bounds the token before anything else is done
	// with it. aws-iam-authenticator's 4096 rejects real tokens now that STS
	// session tokens can approach 4 KiB themselves (issue #1106); 16 KiB
	// leaves room for any session token while still bounding the work.
	DefaultMaxTokenBytes = 16 << 10
	// MinMaxTokenBytes and MaxMaxTokenBytes bound the configurable cap: below
	// 1 KiB not even a token without session token fits; above 1 MiB the cap
	// no longer protects anything.
	MinMaxTokenBytes = 1 << 10
	MaxMaxTokenBytes = 1 << 20
	// DefaultMaxFutureSkew is how far in the future X-Amz-Date may lie.
	// Clients with a slightly fast clock are fine; a token dated further
	// ahead would outlive its 15 minutes by as much, and STS itself refuses
	// anything more than 15 minutes ahead ("Signature not yet current").
	DefaultMaxFutureSkew = 5 * time.Minute
)

// Options configure a Parser. The zero value is valid: partition aws, every
// region the SDK knows, a 16 KiB cap, 5 minutes of future skew, time.Now.
type Options struct {
	// Partition is one of identity.Partitions(); empty means "aws".
	Partition string
	// Regions optionally restricts the accepted STS hosts to these regions
	// of Partition. Empty means every region the SDK knows for the
	// partition. A region newer than the pinned SDK may be listed as long
	// as it is shaped like a region of the partition. The global host
	// sts.amazonaws.com counts as us-east-1.
	Regions []string
	// MaxTokenBytes caps the whole token, prefix included; 0 means
	// DefaultMaxTokenBytes.
	MaxTokenBytes int
	// MaxFutureSkew is how far X-Amz-Date may be ahead of Now; 0 means
	// DefaultMaxFutureSkew. At most Validity.
	MaxFutureSkew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if o.Partition != "" && !identity.IsPartition(o.Partition) {
		errs = append(errs, fmt.Errorf("partition %q is not one of %v", o.Partition, identity.Partitions()))
	}
	if o.MaxTokenBytes != 0 && (o.MaxTokenBytes < MinMaxTokenBytes || o.MaxTokenBytes > MaxMaxTokenBytes) {
		errs = append(errs, fmt.Errorf("max token bytes %d is outside [%d, %d]", o.MaxTokenBytes, MinMaxTokenBytes, MaxMaxTokenBytes))
	}
	if o.MaxFutureSkew < 0 || o.MaxFutureSkew > Validity {
		errs = append(errs, fmt.Errorf("max future skew %s is outside [0, %s]", o.MaxFutureSkew, Validity))
	}
	if len(o.Regions) > 0 {
		p, ok := findPartition(o.withDefaults().Partition)
		if ok {
			if _, err := partitionRegions(p, o.Regions); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	if o.Partition == "" {
		o.Partition = DefaultPartition
	}
	if o.MaxTokenBytes == 0 {
		o.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if o.MaxFutureSkew == 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
