"""The local control plane for `make run` and the tests: real Kubernetes binaries, no Docker."""
