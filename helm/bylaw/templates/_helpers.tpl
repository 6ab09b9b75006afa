{{/* Names and labels shared by every template. */}}
{{- define "bylaw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bylaw.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "bylaw.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "bylaw.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "bylaw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bylaw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bylaw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bylaw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bylaw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bylaw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "bylaw.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Environment shared by the server and the cleanup hook. */}}
{{- define "bylaw.env" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: BYLAW_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: BYLAW_SERVICE_NAME
  value: {{ include "bylaw.fullname" . | quote }}
- name: BYLAW_WEBHOOK_NAME
  value: {{ include "bylaw.fullname" . | quote }}
- name: BYLAW_TLS_SECRET
  value: {{ printf "%s-tls" (include "bylaw.fullname" .) | quote }}
- name: BYLAW_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: BYLAW_LOG
  value: {{ .Values.config.logFilter | quote }}
{{- end }}
