package stsfake

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrNoAWSCLI says `aws` is not on PATH; tests skip on it.
var ErrNoAWSCLI = errors.New("stsfake: awscli (aws) is not installed")

// AWSCLIToken runs the real `aws eks get-token` offline with the given static
// credentials and an empty configuration (HOME, AWS_CONFIG_FILE and
// AWS_SHARED_CREDENTIALS_FILE point into dir, every other AWS_* variable is
// dropped) and returns its token. Without a region awscli v1 signs for the
// global host sts.amazonaws.com.
func AWSCLIToken(ctx context.Context, dir string, c Credentials, region, clusterID string) (string, error) {
	bin, err := exec.LookPath("aws")
	if err != nil {
		return "", ErrNoAWSCLI
	}
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			return "", err
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"HOME="+dir,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_ACCESS_KEY_ID="+c.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	)
	if c.SessionToken != "" {
		env = append(env, "AWS_SESSION_TOKEN="+c.SessionToken)
	}
	args := []string{"eks", "get-token", "--cluster-name", clusterID, "--output", "json"}
	if region != "" {
		args = append(args, "--region", region)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("stsfake: aws eks get-token: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var cred struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &cred); err != nil || cred.Status.Token == "" {
		return "", fmt.Errorf("stsfake: aws eks get-token printed no ExecCredential token")
	}
	return cred.Status.Token, nil
}

// SDKPresignToken makes a token with aws-sdk-go-v2's STS presign client, the
// way aws-iam-authenticator does: an API option sets the x-k8s-aws-id header
// (and X-Amz-Expires) before presigning. The SDK signs for the regional host
// sts.REGION.amazonaws.com at the current time.
func SDKPresignToken(ctx context.Context, c Credentials, region, clusterID string) (string, error) {
	client := sts.NewFromConfig(aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	})
	out, err := sts.NewPresignClient(client).PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{},
		func(po *sts.PresignOptions) {
			po.ClientOptions = append(po.ClientOptions, func(o *sts.Options) {
				o.APIOptions = append(o.APIOptions,
					smithyhttp.SetHeaderValue(ClusterIDHeader, clusterID),
					smithyhttp.SetHeaderValue("X-Amz-Expires", "60"))
			})
		})
	if err != nil {
		return "", fmt.Errorf("stsfake: presign: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(out.URL)), nil
}
