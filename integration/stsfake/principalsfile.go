package stsfake

import (
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"
)

// PrincipalsFile is the YAML the sts-fake binary reads:
//
//	principals:
//	- accessKeyId: AKIAEXAMPLEUSER00001
//	  secretAccessKey: secret
//	  account: "111122223333"
//	  user: alice                 # IAM user shorthand, or
//	- accessKeyId: ASIAEXAMPLEROLE00001
//	  secretAccessKey: secret
//	  sessionToken: token
//	  account: "111122223333"
//	  role: Dev                   # assumed-role shorthand (with session), or
//	  session: alice
//	- accessKeyId: AKIAEXAMPLEROOT00001
//	  secretAccessKey: secret
//	  account: "111122223333"
//	  root: true                  # root shorthand, or
//	- ...: explicit arn and userId
type PrincipalsFile struct {
	Principals []PrincipalEntry `json:"principals"`
}

// PrincipalEntry is a Principal with optional shorthands for the usual
// kinds. Exactly one of arn, user, role or root must say who it is.
type PrincipalEntry struct {
	Principal
	User    string `json:"user,omitempty"`
	Role    string `json:"role,omitempty"`
	Session string `json:"session,omitempty"`
	Root    bool   `json:"root,omitempty"`
}

// ParsePrincipals reads a principals file strictly (unknown fields are
// errors, so a typo cannot silently drop a credential) and reports every bad
// entry.
func ParsePrincipals(data []byte) ([]Principal, error) {
	var f PrincipalsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("principals file: %w", err)
	}
	var (
		out  []Principal
		errs []error
		seen = map[string]bool{}
	)
	for i, e := range f.Principals {
		p, err := e.resolve()
		if err == nil {
			err = p.Validate()
		}
		if err == nil && seen[p.AccessKeyID] {
			err = fmt.Errorf("duplicate accessKeyId %q", p.AccessKeyID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("principals[%d]: %w", i, err))
			continue
		}
		seen[p.AccessKeyID] = true
		out = append(out, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (e PrincipalEntry) resolve() (Principal, error) {
	kinds := 0
	for _, set := range []bool{e.ARN != "", e.User != "", e.Role != "", e.Root} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return Principal{}, errors.New("exactly one of arn, user, role or root must be set")
	}
	var p Principal
	switch {
	case e.User != "":
		p = IAMUser(e.Account, e.User, e.Credentials)
	case e.Role != "":
		if e.Session == "" {
			return Principal{}, errors.New("role needs a session")
		}
		p = AssumedRole(e.Account, e.Role, e.Session, e.Credentials)
	case e.Root:
		p = Root(e.Account, e.Credentials)
	default:
		return e.Principal, nil
	}
	if e.UserID != "" {
		p.UserID = e.UserID
	}
	p.Expiration = e.Expiration
	return p, nil
}
