# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless base, running as non-root.
# The image serves from environment variables alone (CREDITGATE_ADMIN_TOKENS,
# CREDITGATE_REDIS_URL, CREDITGATE_UPSTREAM_API_KEY…): its default configuration,
# deploy/image/config.yaml, is at /etc/creditgate/config.yaml. docs/deploy.md has
# the details; deploy/image_test.go runs the binary as this file builds it, with
# this file's command, environment and files.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/creditgate ./cmd/creditgate \
 && mkdir -p /out/state/spool

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/creditgate /usr/local/bin/creditgate
COPY deploy/image/config.yaml /etc/creditgate/config.yaml
COPY config.example.yaml /etc/creditgate/config.example.yaml
COPY --from=build --chown=65532:65532 /out/state /var/lib/creditgate
USER 65532:65532
# The settlement spool (settlements Redis refused, replayed when it returns) must
# survive restarts: the config puts it here; mount a persistent volume per instance.
VOLUME /var/lib/creditgate
# 8080: the OpenAI-compatible API, with /healthz and /readyz. The admin API
# (8081) listens on the container's loopback only and is not exposed: see
# deploy/image/config.yaml. A metrics listener (metrics.listen, e.g. :9090) is
# off unless configured.
EXPOSE 8080
# distroless has no shell and no curl: the binary probes its own data plane.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/creditgate", "healthcheck", "--config", "/etc/creditgate/config.yaml"]
ENTRYPOINT ["/usr/local/bin/creditgate"]
CMD ["serve", "--config", "/etc/creditgate/config.yaml"]
