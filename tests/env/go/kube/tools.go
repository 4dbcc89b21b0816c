//go:build tools

// Package tools pins the Kubernetes build into this module's go.sum.
package tools
