{{/*
Labels of one service's objects. Call with (dict "root" $ "key" <Kubernetes name>).
*/}}
{{- define "scone.selectorLabels" -}}
app.kubernetes.io/name: {{ .key }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "scone.labels" -}}
{{ include "scone.selectorLabels" . }}
app.kubernetes.io/part-of: {{ .root.Chart.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The limits of a service's container: its own plus the SGX device.
*/}}
{{- define "scone.limits" -}}
{{- $limits := deepCopy (default (dict) .svc.resources.limits) -}}
{{- if .root.Values.sgx.resource -}}
{{- $_ := set $limits .root.Values.sgx.resource (toString .root.Values.sgx.quantity) -}}
{{- end -}}
{{- toYaml $limits -}}
{{- end }}
