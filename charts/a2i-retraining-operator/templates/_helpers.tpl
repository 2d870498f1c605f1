{{/* Chart name, at most 63 characters. */}}
{{- define "rtp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "rtp.fullname" -}}
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

{{- define "rtp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rtp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rtp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rtp.labels" -}}
helm.sh/chart: {{ include "rtp.chart" . }}
{{ include "rtp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: a2i-retraining-operator
{{- end }}

{{- define "rtp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rtp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: repository@digest when a digest is given, else repository:tag (tag defaults to appVersion). */}}
{{- define "rtp.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The rules the operator needs on its own resources, shared by the ClusterRole and the Roles. */}}
{{- define "rtp.policyRules" -}}
# RetrainingPolicy: kopf lists and watches them, and patches finalizers and its progress
# annotations; `get` reads one policy.
- apiGroups: ["retraining.hitl.dev"]
  resources: ["retrainingpolicies"]
  verbs: ["get", "list", "watch", "patch"]
# The operator's status, written through the status subresource.
- apiGroups: ["retraining.hitl.dev"]
  resources: ["retrainingpolicies/status"]
  verbs: ["get", "patch"]
# kopf posts core/v1 Events (POST only; it does not aggregate or patch events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Peering rules: list/watch every peering object (kopf filters by name client-side), get/patch only ours. */}}
{{- define "rtp.peeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  resourceNames: [{{ .name | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{/* An IP address as the host part of a URL: IPv6 in brackets. */}}
{{- define "rtp.urlHost" -}}
{{- if contains ":" . }}{{ printf "[%s]" . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* "true" for a loopback address (127.0.0.0/8, ::1), else empty. */}}
{{- define "rtp.isLoopback" -}}
{{- if or (hasPrefix "127." .) (eq . "::1") }}true{{ end }}
{{- end }}

{{/* The leader Lease's name (RTP_LEASE_NAME); a shard's operator appends -<shard>. */}}
{{/* The Secret whose key seals the ingest ledgers. */}}
{{- define "rtp.ledgerKeySecret" -}}
{{- .Values.ledgerKey.existingSecret | default .Values.ledgerKey.secretName | default (printf "%s-ledger-key" (include "rtp.fullname" .)) }}
{{- end }}

{{- define "rtp.leaseName" -}}
{{- default (include "rtp.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Operator pods the workload runs: one per shard when sharded, else replicaCount. */}}
{{- define "rtp.podCount" -}}
{{- if eq (int .Values.replicaCount) 0 }}0{{ else if gt (int .Values.shards) 1 }}{{ int .Values.shards }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* topologySpreadConstraints: each one as given; one without a labelSelector counts the
chart's own pods (its selector labels), so the default values need no release name. */}}
{{- define "rtp.topologySpreadConstraints" -}}
{{- $selector := include "rtp.selectorLabels" . | fromYaml }}
{{- $out := list }}
{{- range .Values.topologySpreadConstraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}
