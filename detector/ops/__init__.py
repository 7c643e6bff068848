"""What operators see: Prometheus metrics, liveness/readiness, the HTTP endpoints and consumer status."""
