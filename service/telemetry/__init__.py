"""What the service tells its operators: request ids and access lines (`logs`,
`middleware`), and Prometheus metrics when METRICS is on (`metrics`)."""
