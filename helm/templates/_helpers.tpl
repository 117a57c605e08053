{{/* Labels every object carries. */}}
{{- define "matchbook.labels" -}}
app.kubernetes.io/name: matchbook-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* The gateway pods: the Service, PDB, spread constraints and ServiceMonitor select on these. */}}
{{- define "matchbook.selectorLabels" -}}
app.kubernetes.io/name: matchbook-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "matchbook.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "matchbook.serviceAccountName" -}}
{{ .Values.serviceAccount.name | default .Values.names.deployment }}
{{- end -}}

{{/*
An env value as the gateway reads it. Helm reads numbers from values files as float64, which would
print 10000000 as 1e+07: whole numbers are printed as integers.
*/}}
{{- define "matchbook.envValue" -}}
{{- if kindIs "float64" . -}}
{{- if eq (floor .) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{ . }}
{{- end -}}
{{- end -}}

{{- define "matchbook.redisSecretName" -}}
{{ .Values.redisPassword.existingSecret | default (printf "%s-redis" .Values.names.deployment) }}
{{- end -}}

{{- define "matchbook.redisSentinelSecretName" -}}
{{ .Values.redisSentinelPassword.existingSecret | default (printf "%s-redis" .Values.names.deployment) }}
{{- end -}}

{{/* The gateway's variables from values (sorted, nulls left to the gateway's defaults), then the Redis passwords and extraEnv. */}}
{{- define "matchbook.env" -}}
{{- range $name, $value := .Values.env }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ $name }}
  value: {{ include "matchbook.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- if or .Values.redisPassword.existingSecret .Values.redisPassword.value }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "matchbook.redisSecretName" . }}
      key: {{ .Values.redisPassword.key }}
{{- end }}
{{- if or .Values.redisSentinelPassword.existingSecret .Values.redisSentinelPassword.value }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "matchbook.redisSentinelSecretName" . }}
      key: {{ .Values.redisSentinelPassword.key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Milliseconds of a shutdown variable the chart sizes the grace period with; it must be set. */}}
{{- define "matchbook.requiredMs" -}}
{{- $value := index .env .name -}}
{{- if kindIs "invalid" $value -}}
{{- fail (printf "env.%s must be set: the chart sizes terminationGracePeriodSeconds from it" .name) -}}
{{- end -}}
{{- int64 $value -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds must outlast the preStop sleep, the spread-out drain and the shutdown
deadline, or the kubelet's SIGKILL cuts the drain short and clients see 1006 instead of 1001.
*/}}
{{- define "matchbook.terminationGrace" -}}
{{- $spread := include "matchbook.requiredMs" (dict "env" .Values.env "name" "DRAIN_SPREAD_MS") | int64 -}}
{{- $shutdown := include "matchbook.requiredMs" (dict "env" .Values.env "name" "SHUTDOWN_TIMEOUT_MS") | int64 -}}
{{- $neededMs := add (mul (int64 .Values.preStopSleepSeconds) 1000) $spread $shutdown -}}
{{- $grace := int64 .Values.terminationGracePeriodSeconds -}}
{{- if le (mul $grace 1000) $neededMs -}}
{{- fail (printf "terminationGracePeriodSeconds=%d must be longer than preStopSleepSeconds (%ds) + DRAIN_SPREAD_MS (%dms) + SHUTDOWN_TIMEOUT_MS (%dms) = %dms" $grace (int64 .Values.preStopSleepSeconds) $spread $shutdown $neededMs) -}}
{{- end -}}
{{- $grace -}}
{{- end -}}

{{/* The memory limit in MiB, from a quantity in Mi or Gi. */}}
{{- define "matchbook.memoryLimitMiB" -}}
{{- $memory := toString .Values.resources.limits.memory -}}
{{- if regexMatch "^[0-9]+Gi$" $memory -}}
{{- mul (trimSuffix "Gi" $memory | int64) 1024 -}}
{{- else if regexMatch "^[0-9]+Mi$" $memory -}}
{{- trimSuffix "Mi" $memory | int64 -}}
{{- else -}}
{{- fail (printf "resources.limits.memory=%q must be in Mi or Gi (e.g. 1Gi): --max-old-space-size is derived from it" $memory) -}}
{{- end -}}
{{- end -}}

{{/* The image's command with the V8 heap bounded by the container's memory limit. */}}
{{- define "matchbook.args" -}}
{{- $heap := div (mul (include "matchbook.memoryLimitMiB" . | int64) (int64 .Values.heapPercent)) 100 -}}
- node
- --max-semi-space-size=4
- --max-old-space-size={{ $heap }}
- dist/src/main.js
{{- end -}}

{{/* The restrictive pod and container settings both Deployments share. */}}
{{- define "matchbook.podSecurity" -}}
serviceAccountName: {{ include "matchbook.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
