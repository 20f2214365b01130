// Package stsfake is a stand-in for AWS STS GetCallerIdentity that verifies
// presigned SigV4 query signatures the way STS does, so that tokens made by
// the real `aws eks get-token` or aws-sdk-go-v2 can be verified end to end
// without AWS.
//
// No published STS emulator verifies presigned SigV4 (moto routes such
// requests to its S3 handler and accepts anything), and a stand-in that
// accepts every signature would let a verifier that forgets to send its own
// x-k8s-aws-id, or that rewrites the query, pass every test. This one
// recomputes the canonical request from what it actually received, so those
// mistakes fail here as they would against STS.
//
// Where it is deliberately stricter than STS: it refuses a request whose
// signed headers do not include x-k8s-aws-id (STS would happily verify such a
// request; the whole system relies on that header being signed, so the
// stand-in makes the omission visible).
package stsfake
