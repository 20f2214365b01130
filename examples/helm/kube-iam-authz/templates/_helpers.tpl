{{/* Chart name, fullname and labels (the usual helm create conventions). */}}
{{- define "kube-iam-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-iam-authz.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kube-iam-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-iam-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-iam-authz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kube-iam-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ include "kube-iam-authz.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-iam-authz.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* The listener's TLS Secret: cert-manager's, or the one given. */}}
{{- define "kube-iam-authz.tlsSecret" -}}
{{- if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "kube-iam-authz.fullname" .) }}
{{- else if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- fail "tls: set tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled=true: Envoy's listener needs a certificate kubectl can verify" }}
{{- end }}
{{- end }}

{{/* The mapping ConfigMap mounted as a file, and its key; empty for source=cluster. */}}
{{- define "kube-iam-authz.mappingConfigMap" -}}
{{- if eq .Values.awsAuth.source "values" }}
{{- printf "%s-aws-auth" (include "kube-iam-authz.fullname" .) }}
{{- else if eq .Values.awsAuth.source "existingConfigMap" }}
{{- required "awsAuth.existingConfigMap.name is required with awsAuth.source=existingConfigMap" .Values.awsAuth.existingConfigMap.name }}
{{- else if eq .Values.awsAuth.source "cluster" }}
{{- else }}
{{- fail (printf "awsAuth.source %q: want values, existingConfigMap or cluster" .Values.awsAuth.source) }}
{{- end }}
{{- end }}

{{- define "kube-iam-authz.mappingKey" -}}
{{- if eq .Values.awsAuth.source "existingConfigMap" }}
{{- .Values.awsAuth.existingConfigMap.key }}
{{- else }}
{{- "aws-auth.yaml" }}
{{- end }}
{{- end }}

{{/* source=cluster: the NAMESPACE and NAME of the ConfigMap read through the API. */}}
{{- define "kube-iam-authz.clusterConfigMapNamespace" -}}
{{- $parts := splitList "/" (required "awsAuth.clusterConfigMap is required with awsAuth.source=cluster" .Values.awsAuth.clusterConfigMap) }}
{{- if ne (len $parts) 2 }}
{{- fail (printf "awsAuth.clusterConfigMap %q: want NAMESPACE/NAME, e.g. kube-system/aws-auth" .Values.awsAuth.clusterConfigMap) }}
{{- end }}
{{- index $parts 0 }}
{{- end }}

{{- define "kube-iam-authz.clusterConfigMapName" -}}
{{- index (splitList "/" .Values.awsAuth.clusterConfigMap) 1 }}
{{- end }}
