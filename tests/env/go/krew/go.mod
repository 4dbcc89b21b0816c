// Wrapper module: builds krew (the kubectl plugin manager) from the Go module proxy, for the
// test that installs kubectl-aigov through it.
module aigov.dev/tools/krew

go 1.26.8

require sigs.k8s.io/krew v0.4.3
