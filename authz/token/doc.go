// Package token owns the k8s-aws-v1 bearer token format: the strict local
// parser (Parser), the STS host allow-list it checks against, and the
// generator (Generator) behind the token subcommand.
//
// A token is "k8s-aws-v1." followed by the unpadded base64url encoding of a
// presigned STS GetCallerIdentity URL whose signed headers include
// x-k8s-aws-id (the cluster id). Parse applies aws-iam-authenticator's
// pre-STS checks in its order, then a stricter profile; see rules.go for the
// rule names and why each exists. Nothing in a Presigned has been confirmed
// by STS: the signature, the key and the session are STS's to judge.
//
// The STS host allow-list is built from aws-sdk-go-v2's endpoint rules over
// the regions of the SDK's partition table; zz_generated_partitions.go is a
// transcription of that table from the pinned SDK (go generate ./authz/token).
package token
