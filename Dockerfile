# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a distroless base, running as non-root.
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
COPY config.example.yaml /etc/creditgate/config.example.yaml
COPY --from=build --chown=65532:65532 /out/state /var/lib/creditgate
USER 65532:65532
# The settlement spool (settlements Redis refused, replayed when it returns) must
# survive restarts: mount a volume here, or set CREDITGATE_SPOOL_DIR to one.
ENV CREDITGATE_SPOOL_DIR=/var/lib/creditgate/spool
VOLUME /var/lib/creditgate
# 8080: the OpenAI-compatible API. 8081: the admin API, which listens on loopback
# unless admin.listen says otherwise (set it to 0.0.0.0:8081 only on a private network).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/creditgate"]
CMD ["serve", "--config", "/etc/creditgate/config.yaml"]
