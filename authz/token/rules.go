package token

// Rule names: the FormatError.Rule of each local check, in the order Parse
// applies them. They are stable metric label values; never rename one.
// V-numbers refer to aws-iam-authenticator's verifier (reference §2.1); the
// rest are stricter than it (reference §2.3 [REC], §3.2 strict profile).
const (
	RuleTooLarge         = "too_large"            // V1
	RulePrefix           = "prefix"               // V2
	RuleBase64           = "base64"               // V3, stricter: no CR/LF, canonical trailing bits
	RuleURL              = "url"                  // V4
	RuleScheme           = "scheme"               // V5, stricter: lower-case "https" only
	RuleUserinfo         = "userinfo"             // strict
	RuleFragment         = "fragment"             // strict
	RuleHost             = "host"                 // V6, stricter: static allow-list
	RulePath             = "path"                 // V8
	RuleQuerySyntax      = "query_syntax"         // V9, stricter: charset, empty pairs
	RuleParamNotAllowed  = "param_not_allowed"    // V11
	RuleDuplicateCase    = "duplicate_param_case" // V10, CVE-2022-2385
	RuleDuplicate        = "duplicate_param"      // V12
	RuleAction           = "action"               // V13
	RuleClusterUnsigned  = "cluster_id_unsigned"  // V14
	RuleExpires          = "expires"              // V15
	RuleDate             = "date"                 // V16, V18 format
	RuleExpired          = "expired"              // V18 window
	RuleDateFuture       = "date_future"          // strict
	RuleVersion          = "version"              // strict
	RuleAlgorithm        = "algorithm"            // strict
	RuleSignedHeaders    = "signed_headers"       // strict: SigV4 form, host signed
	RuleCredential       = "credential"           // strict: scope shape, access key id
	RuleCredentialDate   = "credential_date"      // strict
	RuleCredentialRegion = "credential_region"    // strict
	RuleSignature        = "signature"            // strict
	RuleSecurityToken    = "security_token"       // strict
)

// Rules returns every Rule name, for pre-declaring metric label values.
func Rules() []string {
	return []string{
		RuleTooLarge, RulePrefix, RuleBase64, RuleURL, RuleScheme, RuleUserinfo,
		RuleFragment, RuleHost, RulePath, RuleQuerySyntax, RuleParamNotAllowed,
		RuleDuplicateCase, RuleDuplicate, RuleAction, RuleClusterUnsigned,
		RuleExpires, RuleDate, RuleExpired, RuleDateFuture, RuleVersion,
		RuleAlgorithm, RuleSignedHeaders, RuleCredential, RuleCredentialDate,
		RuleCredentialRegion, RuleSignature, RuleSecurityToken,
	}
}
