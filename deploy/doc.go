// Package deploy holds the deployment kit's checks: the container image, run as
// its Dockerfile builds and starts it. The kit itself is data: the image's
// default configuration (image/config.yaml), the Compose file (compose.yaml,
// prometheus.yml, nginx.conf) and the Helm chart (helm/creditgate). The chart
// and the Compose file are validated by the separate module in check/, which
// .ci/deploy-check runs, so the Kubernetes and Compose libraries stay out of
// creditgate's go.mod. There is no code to import here.
package deploy
