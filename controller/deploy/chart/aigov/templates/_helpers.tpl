{{/* The image reference of `component` (controller or gateway). */}}
{{- define "aigov.image" -}}
{{- $repo := index .root.Values.image .component -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "aigov.labels" -}}
app.kubernetes.io/part-of: aigov
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The pod security context both Deployments use: non-root, the runtime's seccomp profile. */}}
{{- define "aigov.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* The container security context: no privilege escalation, read-only root, no capabilities. */}}
{{- define "aigov.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}
