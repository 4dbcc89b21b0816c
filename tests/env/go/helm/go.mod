// Wrapper module: builds Helm from the Go module proxy, for the chart's lint, template,
// install, upgrade and uninstall tests.
module aigov.dev/tools/helm

go 1.26.8

require helm.sh/helm/v3 v3.22.0
