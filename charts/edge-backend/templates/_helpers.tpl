{{/* Names, labels and computed settings shared by the templates. */}}

{{- define "edge-backend.fullname" -}}
{{- default (printf "%s-edge-backend" .Release.Name) .Values.fullnameOverride -}}
{{- end -}}

{{- define "edge-backend.etcdName" -}}
{{- printf "%s-etcd" (include "edge-backend.fullname" .) -}}
{{- end -}}

{{- define "edge-backend.secretName" -}}
{{- default (include "edge-backend.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* On every object; the component label is added by each one. */}}
{{- define "edge-backend.labels" -}}
app.kubernetes.io/name: edge-backend
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels never change across upgrades (a Deployment's selector is immutable). */}}
{{- define "edge-backend.selectorLabels" -}}
app.kubernetes.io/name: edge-backend
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "edge-backend.etcdSelectorLabels" -}}
app.kubernetes.io/name: edge-backend
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: etcd
{{- end -}}

{{- define "edge-backend.store" -}}
{{- if .Values.etcd.enabled -}}
{{- printf "etcd:http://%s.%s.svc.%s:2379" (include "edge-backend.etcdName" .) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- printf "etcd:%s" (required "etcd.externalUrl is required when etcd.enabled is false (e.g. http://etcd.infra.svc:2379)" .Values.etcd.externalUrl) -}}
{{- end -}}
{{- end -}}

{{- define "edge-backend.issuer" -}}
{{- default (printf "http://%s.%s.svc.%s:%v" (include "edge-backend.fullname" .) .Release.Namespace .Values.clusterDomain .Values.service.port) .Values.issuer -}}
{{- end -}}

{{/* $(POD_IP) and $(HOST_IP) are expanded by the kubelet from the container's env. */}}
{{- define "edge-backend.relayAdvertise" -}}
{{- if .Values.relay.advertise -}}
{{- .Values.relay.advertise -}}
{{- else if .Values.relay.hostPort -}}
{{- printf "$(HOST_IP):%v" .Values.relay.hostPort -}}
{{- else -}}
{{- printf "$(POD_IP):%v" .Values.relay.port -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap's data; its checksum restarts the pods when it changes. */}}
{{- define "edge-backend.config" -}}
EDGE_BACKEND_STORE: {{ include "edge-backend.store" . | quote }}
EDGE_BACKEND_ISSUER: {{ include "edge-backend.issuer" . | quote }}
EDGE_BACKEND_LOCATION: {{ .Values.location | quote }}
{{- end -}}

{{- define "edge-backend.etcdInitialCluster" -}}
{{- $name := include "edge-backend.etcdName" . -}}
{{- $domain := printf "%s-headless.%s.svc.%s" $name .Release.Namespace .Values.clusterDomain -}}
{{- range $i, $e := until (int .Values.etcd.replicas) -}}
{{- if $i }},{{ end }}{{ printf "%s-%d=http://%s-%d.%s:2380" $name $i $name $i $domain }}
{{- end -}}
{{- end -}}
