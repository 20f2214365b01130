# syntax=docker/dockerfile:1
# Multi-stage build: static binaries on a distroless base, non-root.
# Targets: kube-iam-authz (the product) and sts-fake (the demo's STS stand-in).
# docker-compose.yml runs the official kube-apiserver and etcd images beside them.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
# Build stamps, as `make build` sets them: docker build --build-arg VERSION=v0.2.0
# --build-arg REVISION=$(git rev-parse HEAD). The .git directory is not in the
# context (.dockerignore), so nothing else can supply them.
ARG VERSION=dev
ARG REVISION=unknown
RUN go build -ldflags="-s -w -X github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app.version=${VERSION} -X github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app.commit=${REVISION}" \
      -o /out/kube-iam-authz ./cmd/kube-iam-authz \
 && go build -ldflags="-s -w" -o /out/sts-fake ./integration/stsfake/cmd/sts-fake

# The product image: one static binary, no shell, uid 65532, meant to run
# with readOnlyRootFilesystem. With no curl in the image, the binary is its
# own health probe (`kube-iam-authz healthcheck`, GET /readyz).
FROM gcr.io/distroless/static-debian12:nonroot AS kube-iam-authz
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=""
# OCI image annotations (github.com/opencontainers/image-spec annotations.md).
LABEL org.opencontainers.image.title="kube-iam-authz" \
      org.opencontainers.image.description="Envoy ext_authz server: AWS IAM authentication (k8s-aws-v1 tokens) for Kubernetes API servers, by impersonation" \
      org.opencontainers.image.source="https://github.com/kube-iam-authz/kube-iam-authz" \
      org.opencontainers.image.url="https://github.com/kube-iam-authz/kube-iam-authz" \
      org.opencontainers.image.documentation="https://github.com/kube-iam-authz/kube-iam-authz#readme" \
      org.opencontainers.image.vendor="kube-iam-authz" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/kube-iam-authz /usr/local/bin/kube-iam-authz
USER 65532:65532
EXPOSE 9001 9090
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/kube-iam-authz", "healthcheck", "--url=http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/usr/local/bin/kube-iam-authz"]
CMD ["serve"]

# The STS stand-in carries kube-iam-authz too, only as its compose health
# probe (docker-compose.yml): distroless has no curl.
FROM gcr.io/distroless/static-debian12:nonroot AS sts-fake
COPY --from=build /out/sts-fake /usr/local/bin/sts-fake
COPY --from=build /out/kube-iam-authz /usr/local/bin/kube-iam-authz
USER 65532:65532
EXPOSE 9443
ENTRYPOINT ["/usr/local/bin/sts-fake"]
