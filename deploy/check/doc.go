// Package check validates creditgate's deploy kit in CI (.ci/deploy-check): the
// Compose file, loaded and schema-checked by compose-go as `docker compose`
// loads it, and held against the Prometheus and Caddy files beside it; and,
// in cmd/kubeschemas, the generator of the offline Kubernetes schemas that
// kubeconform checks the Helm chart with. It is a module of its own so that
// these libraries stay out of creditgate's go.mod.
package check
