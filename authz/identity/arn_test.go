package identity

import (
	"errors"
	"testing"
)

// Vectors from aws-iam-authenticator pkg/arn tests (reference §7.6).
func TestCanonicalize(t *testing.T) {
	tests := map[string]struct {
		arn       string
		want      string
		wantKind  Kind
		wantError bool
	}{
		"not an arn":              {arn: "NOT AN ARN", wantError: true},
		"user":                    {arn: "arn:aws:iam::123456789012:user/Alice", want: "arn:aws:iam::123456789012:user/Alice", wantKind: KindUser},
		"user with path":          {arn: "arn:aws:iam::123456789012:user/path/Alice", want: "arn:aws:iam::123456789012:user/path/Alice", wantKind: KindUser},
		"role":                    {arn: "arn:aws:iam::123456789012:role/Users", want: "arn:aws:iam::123456789012:role/Users", wantKind: KindRole},
		"assumed role":            {arn: "arn:aws:sts::123456789012:assumed-role/Admin/Session", want: "arn:aws:iam::123456789012:role/Admin", wantKind: KindAssumedRole},
		"assumed role keeps case": {arn: "arn:aws:sts::123456789012:assumed-role/KubeAdmin/s", want: "arn:aws:iam::123456789012:role/KubeAdmin", wantKind: KindAssumedRole},
		"assumed role with path":  {arn: "arn:aws:sts::123456789012:assumed-role/Org/Team/Admin/Session", want: "arn:aws:iam::123456789012:role/Org/Team/Admin", wantKind: KindAssumedRole},
		"assumed role no session": {arn: "arn:aws:sts::123456789012:assumed-role/OnlyName", wantError: true},
		"federated user":          {arn: "arn:aws:sts::123456789012:federated-user/Bob", want: "arn:aws:sts::123456789012:federated-user/Bob", wantKind: KindFederatedUser},
		"root":                    {arn: "arn:aws:iam::123456789012:root", want: "arn:aws:iam::123456789012:root", wantKind: KindRoot},
		"iso partition":           {arn: "arn:aws-iso:iam::123456789012:user/Chris", want: "arn:aws-iso:iam::123456789012:user/Chris", wantKind: KindUser},
		"iso-b partition":         {arn: "arn:aws-iso-b:iam::123456789012:user/Chris", want: "arn:aws-iso-b:iam::123456789012:user/Chris", wantKind: KindUser},
		"china assumed role":      {arn: "arn:aws-cn:sts::123456789012:assumed-role/R/s", want: "arn:aws-cn:iam::123456789012:role/R", wantKind: KindAssumedRole},
		"unknown partition":       {arn: "arn:aws-nk:iam::123456789012:user/Chris", wantError: true},
		"s3 bucket":               {arn: "arn:aws:s3:::b", wantError: true},
		"iam group":               {arn: "arn:aws:iam::1:group/g", wantError: true},
		"sts other resource":      {arn: "arn:aws:sts::1:thing/x", wantError: true},
		"bare word":               {arn: "arn", wantError: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, kind, err := Canonicalize(tc.arn)
			if tc.wantError {
				if !errors.Is(err, ErrInvalidARN) {
					t.Fatalf("Canonicalize(%q) error = %v, want ErrInvalidARN", tc.arn, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Canonicalize(%q) unexpected error %v", tc.arn, err)
			}
			if got != tc.want || kind != tc.wantKind {
				t.Errorf("Canonicalize(%q) = %q, %q; want %q, %q", tc.arn, got, kind, tc.want, tc.wantKind)
			}
		})
	}
}

func TestStripPath(t *testing.T) {
	tests := map[string]struct {
		arn       string
		want      string
		wantError bool
	}{
		"not an arn":     {arn: "NOT AN ARN", wantError: true},
		"role with path": {arn: "arn:aws:iam::123456789012:role/Org/Team/Admin", want: "arn:aws:iam::123456789012:role/Admin"},
		"role":           {arn: "arn:aws:iam::123456789012:role/Admin", want: "arn:aws:iam::123456789012:role/Admin"},
		"user":           {arn: "arn:aws:iam::123456789012:user/Alice", want: "arn:aws:iam::123456789012:user/Alice"},
		"federated":      {arn: "arn:aws:sts::123456789012:federated-user/Bob", want: "arn:aws:sts::123456789012:federated-user/Bob"},
		"sso role":       {arn: "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef", want: "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123456789abcdef"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := StripPath(tc.arn)
			if (err != nil) != tc.wantError {
				t.Fatalf("StripPath(%q) error = %v, wantError %v", tc.arn, err, tc.wantError)
			}
			if got != tc.want {
				t.Errorf("StripPath(%q) = %q, want %q", tc.arn, got, tc.want)
			}
		})
	}
}
