// Package authz assembles the request path of kube-iam-authz serve (path.go):
// the one place where the parts below are connected, in the order a request
// meets them. This comment walks one request through it and says, for each
// check, which attack or which Envoy or Kubernetes behaviour it exists for.
// docs/design.md has the picture and the package table; docs/envoy-facts.md
// proves the Envoy facts cited here as F1..F15.
//
// # 0. Envoy, before any of this runs (envoy/sidecar.yaml)
//
// kubectl talks TLS to Envoy; Envoy's ext_authz filter sends a gRPC
// CheckRequest to this server and waits. The reviewed configuration is part
// of the path, and envoy.CheckPolicy holds it to these choices:
// failure_mode_allow is false, so an authz error or timeout is a 503 and
// never a pass (CVE-2023-27488 and CVE-2024-23324 turned allow-on-error into
// bypasses; F10). encode_raw_headers sends one header_map entry per header
// line (F6). use_remote_address makes every client external, so Envoy strips
// the client's x-envoy-retry-on, x-envoy-upstream-rq-timeout-ms and the like,
// and the route overwrites X-Forwarded-For with the real peer and removes
// x-envoy-auth-failure-mode-allowed, which Envoy lets through (F8). The ext_authz
// header-mutation allow-list admits only authorization, impersonate-user,
// impersonate-uid and impersonate-extra-*; anything else the server might
// set is a 500 (F4). max_stream_duration (15 minutes) bounds how long a watch
// or an exec session outlives the token that opened it (F9).
//
// # 1. The Check service reads the request (authz/check)
//
//   - The cluster comes from the route's context_extensions (cluster_id,
//     mapping; F13). An unknown one is a 500, not the default cluster: the
//     caller would otherwise be mapped with another cluster's rules.
//   - Headers are read from header_map (one entry per line), else from the
//     merged headers map (F6).
//   - A client Impersonate-* header, in any letter case, is refused (403)
//     unless --allow-impersonation is set. Neither removing it nor adding
//     ours next to it is safe: Envoy applies headers_to_remove after the
//     headers it sets, so removing impersonate-* would also delete ours and
//     send the request on as the proxy itself (F3); and the API server takes
//     the union of every Impersonate-Group line, so a client's
//     system:masters would survive next to our groups (F5).
//   - Exactly one Authorization value, "Bearer <token>", with no comma:
//     Envoy's codec joins repeated Authorization lines with a comma (F6), and
//     in CVE-2021-32777 ext_authz and the upstream saw different values of a
//     repeated header. The token must start with k8s-aws-v1.; any other is a
//     401, or with --passthrough-non-aws-tokens is forwarded untouched for
//     the API server to judge, and only where the proxy authenticates
//     upstream with a bearer token (with mTLS the API server would
//     authenticate the proxy's certificate first, and the client would act as
//     the proxy).
//   - A cluster whose mapping has not loaded yet answers 503 (not_ready).
//
// # 2. The verification cache (authz/cache)
//
// kube-apiserver caches token reviews itself (2 minutes by default); a proxy
// in front of it bypasses that cache, so this one replaces it. Keys are
// HMAC(per-process random key, cluster id, token): the token is never
// stored. An identity is served for at most --cache-ttl and never past the
// token's expiry (X-Amz-Date + 15 min), so the cache cannot outlive the
// credential. Concurrent misses for one token share one STS call
// (singleflight). Which failures are cached is the Verification column of
// the one error table (authz/outcome): a verdict on the token (malformed,
// refused by STS) is cached for --cache-negative-ttl; throttling, outages
// and timeouts never are, and an identity STS verified earlier for the same
// unexpired token is served through them, so an STS outage locks out only
// tokens never seen before. Only the identity is cached, never the mapping.
//
// # 3. The strict local parse (authz/token)
//
// Before anything leaves the process: the size bound first, then
// aws-iam-authenticator's rules in its order (so its test vectors fail on the
// same rule), then stricter ones. https only, and only the STS hosts of the
// configured partition and regions, from aws-sdk-go-v2's endpoint data: the
// server will send a request to the URL, so a free host would be request
// forgery. Action=GetCallerIdentity, x-k8s-aws-id among the signed headers,
// X-Amz-Expires and X-Amz-Date inside STS's window. Query keys that repeat,
// even in another letter case, are refused: that is CVE-2022-2385, where
// aws-iam-authenticator read an attacker's lower-case x-amz-credential twin
// while STS checked the real one, so a mapped identity could choose the
// access key id its {{AccessKeyID}} username was rendered from. A rejection
// here is a 401 (malformed_token) without any call to STS.
//
// # 4. The one outbound call (authz/sts, then authz/identity)
//
// One GET of the presigned GetCallerIdentity URL, no retries, with
// x-k8s-aws-id set to this cluster's id, never the client's: SigV4 fails
// unless the client signed that exact value, which binds a token to one
// cluster (the same device as Vault's X-Vault-AWS-IAM-Server-ID). Redirects
// are never followed (a redirect would carry the signed request to another
// host). The answer is size-bounded; an error never quotes the URL (Go's
// url.Error would print the presigned query, a live credential). A local
// rate limit protects the account's STS quota. Errors are typed: refused
// (401, sts_rejected), throttled (429) and unavailable (503). STS's answer
// becomes an identity.Identity with the assumed-role ARN folded into the
// role ARN, as aws-iam-authenticator does, so the mapping compares like with
// like.
//
// # 5. The mapping (mapping, behind check.Cluster.Mapper)
//
// The aws-auth mapping runs on every request, cache hit or not, so a
// changed ConfigMap takes effect on the next request. It reads an immutable
// snapshot (a broken reload keeps the last good one). A template whose
// caller-chosen part ({{SessionName}} is set by whoever assumes the role)
// would produce a name under system:, eks:, aws:, amazon: or iam:, or a
// session name with ':' or '/', is refused (403): the caller must not be able
// to name themselves system:masters or a node. Refusals are kubeuser.ErrUnmapped
// and kubeuser.ErrForbidden (403) and kubeuser.ErrUnavailable (503).
//
// # 6. The response (authz/check: decide.go, response.go; authz/impersonate)
//
// The user becomes header lines by the code check.Decide runs, which the map
// dry run calls too (so a dry run cannot promise what serve refuses); an OK
// answer built for the same identity, user and credential is reused. More groups than Envoy has slots (check.MaxGroups) is a 403:
// dropping one could drop a group RBAC relies on. Names with a comma, CR, LF
// or NUL are refused (a comma would make one bogus group line, a newline
// would split headers), and Impersonate-Extra keys are percent-encoded as
// client-go does, because the API server lower-cases and path-unescapes
// them. The OK answer sets authorization to the proxy's own credential (the
// client's token must never reach the API server), impersonate-user,
// impersonate-uid (aws-iam-authenticator:<account>:<principal id>, the uid
// aws-iam-authenticator gives) and the impersonate-extra-* lines. Groups go
// as dynamic metadata slots that the route turns into one Impersonate-Group
// line each, because Envoy's gRPC ext_authz ignores append_action and keeps
// only the last value of a repeated header (F1, F5). Nothing is listed in
// headers_to_remove (F3).
//
// The API server then does the rest as its impersonation filter always does:
// it authenticates the proxy's credential, checks with RBAC that the proxy
// may impersonate that user, each group, the uid and each extra
// (examples/kubernetes/rbac.yaml grants exactly those), adds
// system:authenticated itself, and authorizes the request as the
// impersonated user.
//
// With --allow-impersonation, a client's own Impersonate-* lines (kubectl
// --as) are handled after its token is verified and mapped, as the API
// server authenticates before it impersonates: they are parsed as the API
// server's filter parses them (authz/impersonate), each requested attribute
// is authorized for the mapped caller with a SubjectAccessReview
// (authz/sar), and the OK names the requested user with reserved
// kube-iam-authz.io/original-* extras naming the caller, which no client can
// set.
//
// A refusal is a Kubernetes Status body from its row of authz/outcome, with
// WWW-Authenticate on a 401 (client-go then re-runs its exec credential
// plugin) and Retry-After on a 429 or 503 (client-go retries a 503 only when
// it carries one). A panic is a Denied 500, never a gRPC error. Every miss,
// denial and error is logged once (allowed cache hits are counted into one
// line per identity per interval) with the token's fingerprint
// (token.Fingerprint), never the token or its URL.
package authz
