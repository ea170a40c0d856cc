{{/* Names and labels shared by every manifest of the chart. */}}
{{- define "notify.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "notify.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "notify.selectorLabels" -}}
app.kubernetes.io/name: {{ include "notify.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "notify.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "notify.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "notify.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "notify.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Provider credentials read from existing Secrets. Env ones: value name -> NOTIFY_* variable.
File ones: value name -> "NOTIFY_* variable of the path,directory under secretsDir".
*/}}
{{- define "notify.secretEnv" -}}
{{- toJson (dict "smtpPassword" "NOTIFY_SMTP_PASSWORD" "smsAuthToken" "NOTIFY_SMS_AUTH_TOKEN" "webhookSigningSecret" "NOTIFY_WEBHOOK_SIGNING_SECRET" "feedbackToken" "NOTIFY_FEEDBACK_TOKEN" "apiKeys" "NOTIFY_API_KEYS") -}}
{{- end -}}

{{- define "notify.secretFiles" -}}
{{- toJson (dict "apnsKey" "NOTIFY_APNS_KEY_FILE,apns" "fcmServiceAccount" "NOTIFY_FCM_CREDENTIALS_FILE,fcm") -}}
{{- end -}}

{{/* The setting a value renders to in the ConfigMap: strings as they are, the rest as JSON. */}}
{{- define "notify.settingValue" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{/* Checks across values that values.schema.json cannot express. */}}
{{- define "notify.checks" -}}
{{- $partitions := int (required "settings.partitions is required" .Values.settings.partitions) -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) $partitions) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) above settings.partitions (%d): a worker past the partition count owns nothing and only adds rebalances" (int .Values.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- if and (not .Values.autoscaling.enabled) (gt (int .Values.replicas) $partitions) -}}
{{- fail (printf "replicas (%d) above settings.partitions (%d)" (int .Values.replicas) $partitions) -}}
{{- end -}}
{{- $drain := float64 (required "settings.revoke_drain_seconds is required" .Values.settings.revoke_drain_seconds) -}}
{{- $needed := addf $drain .Values.termination.commitSeconds -}}
{{- if le (float64 .Values.termination.gracePeriodSeconds) $needed -}}
{{- fail (printf "termination.gracePeriodSeconds (%v) must exceed settings.revoke_drain_seconds + termination.commitSeconds (%v): a worker killed before it commits hands its partitions over uncommitted" .Values.termination.gracePeriodSeconds $needed) -}}
{{- end -}}
{{- end -}}

{{/*
The container's env: the pod's own address, provider credentials from Secrets, then extraEnv.
WEB_HOST is Faust's own variable (its web_host setting): table routes proxy a request to the
key's owner at http://<web_host>:<port>, and a bare pod name does not resolve in the cluster;
<pod>.<headless service>.<namespace>.svc does.
*/}}
{{- define "notify.env" -}}
{{- $secretEnv := include "notify.secretEnv" . | fromJson }}
{{- $secretFiles := include "notify.secretFiles" . | fromJson }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: WEB_HOST
  value: {{ printf "$(POD_NAME).%s-headless.%s.svc" (include "notify.fullname" .) .Release.Namespace | quote }}
{{- range $name, $variable := $secretEnv }}
{{- $secret := index $.Values.secrets $name }}
{{- if $secret.secretName }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret.secretName }}
      key: {{ $secret.key }}
{{- end }}
{{- end }}
{{- range $name, $spec := $secretFiles }}
{{- $secret := index $.Values.secrets $name }}
{{- if $secret.secretName }}
{{- $parts := splitList "," $spec }}
- name: {{ index $parts 0 }}
  value: {{ printf "%s/%s/%s" $.Values.secretsDir (index $parts 1) $secret.key | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
