{{/* Names, labels and edged's config.yaml, shared by the templates. */}}

{{- define "edged.fullname" -}}
{{- default (printf "%s-edged" .Release.Name) .Values.fullnameOverride -}}
{{- end -}}

{{- define "edged.secretName" -}}
{{- default (include "edged.fullname" .) .Values.backend.existingSecret -}}
{{- end -}}

{{- define "edged.labels" -}}
app.kubernetes.io/name: edged
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: node-agent
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels never change across upgrades (a DaemonSet's selector is immutable). */}}
{{- define "edged.selectorLabels" -}}
app.kubernetes.io/name: edged
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Whether the pod mounts a Secret: a join token or a cluster key to give edged. */}}
{{- define "edged.hasSecret" -}}
{{- if or .Values.backend.url .Values.clusterKey -}}true{{- end -}}
{{- end -}}

{{/*
edged's config.yaml. Paths are where the pod mounts the host's directories; the keys
edged reads as files point into /etc/edged, where the Secret is projected next to it.
*/}}
{{- define "edged.config" -}}
data_dir: /var/lib/edged
run_dir: /run/edged
api_socket: /run/edged/edged.sock
docker_endpoint: unix:///var/run/docker.sock
{{- range $key, $value := .Values.config }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- if .Values.clusterKey }}
cluster_key_file: /etc/edged/cluster-key
{{- end }}
{{- if .Values.backend.url }}
backend: {{ .Values.backend.url | quote }}
backend_join_token_file: /etc/edged/join-token
{{- end }}
{{- if .Values.location }}
location: {{ .Values.location | quote }}
{{- end }}
{{- end -}}
