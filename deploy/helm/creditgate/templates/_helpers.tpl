{{/* Names and labels shared by every template. */}}

{{- define "creditgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "creditgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "creditgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "creditgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "creditgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "creditgate.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "creditgate.secretName" -}}
{{- default (include "creditgate.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "creditgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "creditgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The probes' scheme: the kubelet skips certificate checks for HTTPS probes. */}}
{{- define "creditgate.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/*
creditgate's config.yaml: .Values.config with the keys the chart owns set from
the other values (listeners, TLS files, shutdown timeout, spool directory).
*/}}
{{- define "creditgate.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) -}}
{{- $_ := set $cfg "listen" (printf ":%d" (int .Values.ports.http)) -}}
{{- $_ := set $cfg "shutdown_timeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds)) -}}
{{- if .Values.tls.enabled -}}
{{- $_ := set $cfg "tls" (dict "cert_file" "/etc/creditgate-tls/tls.crt" "key_file" "/etc/creditgate-tls/tls.key") -}}
{{- end -}}
{{- $admin := deepCopy (default dict (get $cfg "admin")) -}}
{{- if .Values.admin.expose -}}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) -}}
{{- if .Values.admin.tls.enabled -}}
{{- $_ := set $admin "tls" (dict "cert_file" "/etc/creditgate-admin-tls/tls.crt" "key_file" "/etc/creditgate-admin-tls/tls.key") -}}
{{- end -}}
{{- else -}}
{{- $_ := set $admin "listen" (printf "127.0.0.1:%d" (int .Values.ports.admin)) -}}
{{- end -}}
{{- $_ := set $cfg "admin" $admin -}}
{{- $spool := deepCopy (default dict (get $cfg "spool")) -}}
{{- $_ := set $spool "dir" "/var/lib/creditgate/spool" -}}
{{- $_ := set $cfg "spool" $spool -}}
{{- toYaml $cfg -}}
{{- end -}}
