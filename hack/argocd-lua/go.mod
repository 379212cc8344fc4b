// Runs the Argo CD health check and actions of ScheduledTrigger in gopher-lua, the Lua
// interpreter Argo CD embeds, on the samples in deploy/argocd (go test ./...).
module trigger-operator/hack/argocd-lua

go 1.26

require (
	github.com/yuin/gopher-lua v1.1.1
	gopkg.in/yaml.v3 v3.0.1
)
