package token

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ClusterIDHeader is the signed header that binds a token to one cluster.
const ClusterIDHeader = "x-k8s-aws-id"

// presignExpires is the X-Amz-Expires every producer writes. STS ignores it
// for GetCallerIdentity (15 minutes apply regardless); it is kept for byte
// compatibility with aws eks get-token and aws-iam-authenticator.
const presignExpires = "60"

// GeneratorOptions configure a Generator.
type GeneratorOptions struct {
	// Config supplies the region, the credentials and endpoint settings
	// (FIPS, dual-stack, endpoint overrides), typically from
	// config.LoadDefaultConfig.
	Config aws.Config
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem with o at once.
func (o GeneratorOptions) Validate() error {
	var errs []error
	if o.Config.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	if o.Config.Credentials == nil {
		errs = append(errs, errors.New("no credentials provider"))
	}
	return errors.Join(errs...)
}

// Generator presigns STS GetCallerIdentity the way `aws eks get-token` and
// aws-iam-authenticator do: GET, path /, Action and Version in the query,
// X-Amz-Expires=60, signed headers host;x-k8s-aws-id.
type Generator struct {
	cfg aws.Config
	now func() time.Time
}

// NewGenerator validates o.
func NewGenerator(o GeneratorOptions) (*Generator, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("token generator options: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Generator{cfg: o.Config.Copy(), now: o.Now}, nil
}

// Generated is a freshly presigned token.
type Generated struct {
	// Token is the bearer token, Prefix + base64url(presigned URL).
	Token string
	// SignedAt is the X-Amz-Date of the token.
	SignedAt time.Time
	// Expiry is when the token stops working: SignedAt + Validity, or
	// earlier when the signing credentials expire first (STS refuses a
	// presigned URL whose session has ended; aws-iam-authenticator #401).
	Expiry time.Time
}

// Generate presigns a token for clusterID.
func (g *Generator) Generate(ctx context.Context, clusterID string) (Generated, error) {
	if clusterID == "" {
		return Generated{}, errors.New("token: cluster id is empty")
	}
	// Retrieve the credentials here, not inside the presigner, so that the
	// expiry we report belongs to the very credentials that signed.
	creds, err := g.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return Generated{}, fmt.Errorf("token: AWS credentials: %w", err)
	}
	signedAt := g.now().UTC().Truncate(time.Second)
	client := sts.NewFromConfig(g.cfg, func(o *sts.Options) {
		o.Credentials = staticCredentials{creds}
	})
	presigner := sts.NewPresignClient(client, func(o *sts.PresignOptions) {
		o.Presigner = fixedTimePresigner{signer: v4.NewSigner(), at: signedAt}
	})
	req, err := presigner.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.PresignOptions) {
		o.ClientOptions = append(o.ClientOptions, func(o *sts.Options) {
			o.APIOptions = append(o.APIOptions,
				smithyhttp.SetHeaderValue(ClusterIDHeader, clusterID),
				// An X-Amz-* header is hoisted into the query by the presigner.
				smithyhttp.SetHeaderValue("X-Amz-Expires", presignExpires),
			)
		})
	})
	if err != nil {
		return Generated{}, fmt.Errorf("token: presign GetCallerIdentity: %w", err)
	}
	if req.Method != http.MethodGet {
		return Generated{}, fmt.Errorf("token: presigned method %s, want GET", req.Method)
	}
	expiry := signedAt.Add(Validity)
	if creds.CanExpire && creds.Expires.Before(expiry) {
		expiry = creds.Expires
	}
	return Generated{
		Token:    Prefix + base64.RawURLEncoding.EncodeToString([]byte(req.URL)),
		SignedAt: signedAt,
		Expiry:   expiry,
	}, nil
}

// staticCredentials hands the presigner credentials already retrieved.
type staticCredentials struct{ v aws.Credentials }

func (s staticCredentials) Retrieve(context.Context) (aws.Credentials, error) { return s.v, nil }

// fixedTimePresigner signs at a given time instead of the SDK's own clock,
// so that SignedAt is exact and tests are deterministic.
type fixedTimePresigner struct {
	signer *v4.Signer
	at     time.Time
}

func (p fixedTimePresigner) PresignHTTP(ctx context.Context, credentials aws.Credentials, r *http.Request,
	payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions),
) (string, http.Header, error) {
	return p.signer.PresignHTTP(ctx, credentials, r, payloadHash, service, region, p.at, optFns...)
}
