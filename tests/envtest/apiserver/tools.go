//go:build tools

// Package tools pins k8s.io/kubernetes/cmd/kube-apiserver so that
// `go build k8s.io/kubernetes/cmd/kube-apiserver` resolves it from this module.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
