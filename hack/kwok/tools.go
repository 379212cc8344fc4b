//go:build tools

// Package tools records the command built from this module, so that
// `go mod tidy` keeps every dependency it needs in go.sum.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
