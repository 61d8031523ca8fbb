"""Kubernetes manifests derived from the component table: `python -m tools.k8s --help`."""
