{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "flmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, or the release name alone when it already contains the chart name.
Truncated to 52 characters so that suffixed names ("-supernode", "-pushgateway") stay
valid DNS labels.
*/}}
{{- define "flmon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "flmon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels (stable across upgrades).
*/}}
{{- define "flmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels of every resource.
*/}}
{{- define "flmon.labels" -}}
helm.sh/chart: {{ include "flmon.chart" . }}
{{ include "flmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flmon
flmon.io/federation: {{ .Values.federation.name | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one component: common labels plus app.kubernetes.io/component.
Call with (dict "ctx" $ "component" "superlink").
*/}}
{{- define "flmon.componentLabels" -}}
{{ include "flmon.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "superlink").
*/}}
{{- define "flmon.componentSelectorLabels" -}}
{{ include "flmon.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Resource names of the components.
*/}}
{{- define "flmon.superlink.fullname" -}}
{{- printf "%s-superlink" (include "flmon.fullname" .) }}
{{- end }}
{{- define "flmon.supernode.fullname" -}}
{{- printf "%s-supernode" (include "flmon.fullname" .) }}
{{- end }}
{{- define "flmon.serverapp.fullname" -}}
{{- printf "%s-serverapp-metrics" (include "flmon.fullname" .) }}
{{- end }}
{{- define "flmon.watch.fullname" -}}
{{- printf "%s-watch" (include "flmon.fullname" .) }}
{{- end }}
{{- define "flmon.pushgateway.fullname" -}}
{{- printf "%s-pushgateway" (include "flmon.fullname" .) }}
{{- end }}

{{/*
Image reference: repository:tag, the tag defaulting to the chart's appVersion.
Call with (dict "image" .Values.federation.image.server "ctx" $).
*/}}
{{- define "flmon.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
SuperLink address (service:port) inside the cluster.
*/}}
{{- define "flmon.superlink.address" -}}
{{- printf "%s.%s.svc:%d" (include "flmon.superlink.fullname" .) .Release.Namespace (int .Values.federation.superlink.port) }}
{{- end }}

{{/*
Pushgateway address (host:port) for FLMON_PUSHGATEWAY: the chart's own, an external one,
or empty.
*/}}
{{- define "flmon.pushgateway.address" -}}
{{- if .Values.pushgateway.enabled }}
{{- printf "%s.%s.svc:%d" (include "flmon.pushgateway.fullname" .) .Release.Namespace (int .Values.pushgateway.port) }}
{{- else }}
{{- .Values.pushgateway.address }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding the Slack webhook URL.
*/}}
{{- define "flmon.slack.secretName" -}}
{{- if .Values.slack.create }}
{{- printf "%s-slack" (include "flmon.fullname" .) }}
{{- else }}
{{- .Values.slack.existingSecret }}
{{- end }}
{{- end }}

{{/*
Key of the Slack webhook URL in that Secret.
*/}}
{{- define "flmon.slack.secretKey" -}}
{{- if .Values.slack.create }}webhook-url{{- else }}{{ .Values.slack.existingSecretKey }}{{- end }}
{{- end }}

{{/*
Name and key of the Secret holding the Elasticsearch API key for Filebeat.
*/}}
{{- define "flmon.filebeat.secretName" -}}
{{- if .Values.filebeat.create }}
{{- printf "%s-elasticsearch" (include "flmon.fullname" .) }}
{{- else }}
{{- .Values.filebeat.existingSecret }}
{{- end }}
{{- end }}
{{- define "flmon.filebeat.secretKey" -}}
{{- if .Values.filebeat.create }}api-key{{- else }}{{ .Values.filebeat.existingSecretKey }}{{- end }}
{{- end }}

{{/*
The volumes and mounts that keep the root filesystem read-only: /tmp is writable, and HOME
and FLWR_HOME live in it.
*/}}
{{- define "flmon.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.federation.tmpSizeLimit }}
{{- end }}
{{- define "flmon.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
{{- define "flmon.flowerEnv" -}}
- name: HOME
  value: /tmp
- name: FLWR_HOME
  value: /tmp/.flwr
- name: PYTHONUNBUFFERED
  value: "1"
{{- end }}

{{/*
Fail with a clear message when a required file rendered by `flmon render` is missing.
Call with (dict "ctx" $ "path" "files/rules/flmon-rules.yaml").
*/}}
{{- define "flmon.requireFile" -}}
{{- if not (.ctx.Files.Get .path) }}
{{- fail (printf "%s is missing from the chart: run `flmon render` to write the rendered files into helm/flmon/files/" .path) }}
{{- end }}
{{- end }}

{{/*
Namespace of the Alertmanager's Secrets: alertmanager.namespace or the release namespace.
*/}}
{{- define "flmon.alertmanager.namespace" -}}
{{- default .Release.Namespace .Values.alertmanager.namespace }}
{{- end }}

{{/*
Fail clearly when Slack is on but no webhook Secret is named (the schema says the same; this
guard also holds when schema validation is skipped).
*/}}
{{- define "flmon.slack.validate" -}}
{{- if .Values.slack.enabled }}
{{- if and .Values.slack.create (not .Values.slack.webhookUrl) }}
{{- fail "slack.create is true but slack.webhookUrl is empty: set the webhook URL, or use slack.existingSecret" }}
{{- end }}
{{- if and (not .Values.slack.create) (not .Values.slack.existingSecret) }}
{{- fail "slack.enabled is true but no webhook Secret is set: set slack.existingSecret (a Secret holding the webhook URL under slack.existingSecretKey), or slack.create=true with slack.webhookUrl" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Prometheus duration of one unit (the schema's form: 15s, 500ms, 2m, 1h) in milliseconds.
*/}}
{{- define "flmon.durationMs" -}}
{{- $n := regexFind "^[0-9]+" . | atoi }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit }}
{{- mul $n $scale }}
{{- end }}

{{/*
The Prometheus Operator refuses a ServiceMonitor whose scrapeTimeout exceeds its interval and
drops it without a word: refuse such values here instead.
*/}}
{{- define "flmon.serviceMonitor.validate" -}}
{{- $sm := .Values.serviceMonitor }}
{{- if gt (include "flmon.durationMs" $sm.scrapeTimeout | atoi) (include "flmon.durationMs" $sm.interval | atoi) }}
{{- fail (printf "serviceMonitor.scrapeTimeout (%s) is longer than serviceMonitor.interval (%s): Prometheus would refuse the ServiceMonitors; make the timeout at most the interval" $sm.scrapeTimeout $sm.interval) }}
{{- end }}
{{- end }}

{{/*
The Secret with the Pushgateway's credentials (keys username, password, web-config.yml), or
empty when the Pushgateway takes no credentials.
*/}}
{{- define "flmon.pushgateway.authSecret" -}}
{{- $auth := .Values.pushgateway.auth }}
{{- if $auth.enabled }}
{{- if $auth.existingSecret }}
{{- $auth.existingSecret }}
{{- else if .Values.pushgateway.enabled }}
{{- printf "%s-auth" (include "flmon.pushgateway.fullname" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Where the ServerApp reads the Pushgateway password (a file, never an env value).
*/}}
{{- define "flmon.pushgateway.passwordDir" -}}
/etc/flmon/pushgateway
{{- end }}

{{/*
Where the ServerApp reads the live exporter's web config.
*/}}
{{- define "flmon.exporter.webConfigDir" -}}
/etc/flmon/exporter
{{- end }}

{{/*
A NetworkPolicy peer list admitting Prometheus (networkPolicy.prometheus).
*/}}
{{- define "flmon.networkPolicy.prometheusPeer" -}}
- namespaceSelector:
    {{- toYaml .Values.networkPolicy.prometheus.namespaceSelector | nindent 4 }}
  podSelector:
    {{- .Values.networkPolicy.prometheus.podSelector | default (dict "matchLabels" (dict "app.kubernetes.io/name" "prometheus")) | toYaml | nindent 4 }}
{{- end }}

{{/*
A NetworkPolicy peer list admitting the Datadog node Agent (networkPolicy.datadogAgent).
*/}}
{{- define "flmon.networkPolicy.datadogAgentPeer" -}}
{{- $peer := .Values.networkPolicy.datadogAgent }}
- namespaceSelector:
    {{- $peer.namespaceSelector | default (dict "matchLabels" (dict "kubernetes.io/metadata.name" "datadog")) | toYaml | nindent 4 }}
  podSelector:
    {{- $peer.podSelector | default (dict "matchLabels" (dict "app.kubernetes.io/component" "agent")) | toYaml | nindent 4 }}
{{- end }}

{{/*
A Datadog OpenMetrics check instance of flmon's series at an endpoint, as JSON (call with
dict "ctx" . "endpoint" URL): the namespace, metrics, `_created` exclusion and tags.
*/}}
{{- define "flmon.datadog.instance" -}}
{{- $v := .ctx.Values }}
{{- toJson (dict "openmetrics_endpoint" .endpoint "namespace" $v.datadog.namespace "metrics" $v.datadog.metrics "exclude_metrics" (list "_created$") "tags" (concat (list (printf "federation:%s" $v.federation.name)) $v.datadog.tags)) }}
{{- end }}

{{/*
The Datadog OpenMetrics check instance of the ServerApp's live exporter, as JSON: the TLS
and basic auth of exporter.webConfig, as Prometheus' ServiceMonitor has them. The CA is a
file in the Agent's containers (datadog.exporterCaFile); the credentials are the Agent's
secret handles of the webConfig Secret's keys (resolved by its secret backend), never values.
*/}}
{{- define "flmon.datadog.exporterInstance" -}}
{{- $wc := .Values.exporter.webConfig }}
{{- $scheme := "http" }}
{{- if $wc.existingSecret }}{{ $scheme = $wc.scheme }}{{ end }}
{{- $instance := include "flmon.datadog.instance" (dict "ctx" . "endpoint" (printf "%s://%%%%host%%%%:%d%s" $scheme (int .Values.exporter.port) .Values.exporter.path)) | fromJson }}
{{- if $wc.existingSecret }}
{{- if eq $wc.scheme "https" }}
{{- if not .Values.datadog.exporterCaFile }}
{{- fail (printf "datadog.exporterCaFile: the exporter serves https (exporter.webConfig.scheme), so the Datadog Agent's check needs its CA: mount ca.crt of Secret %s into the node Agent (Datadog chart: agents.volumes, agents.volumeMounts) and set datadog.exporterCaFile to its path, or send the run's series by DogStatsD instead (datadog.dogstatsd: true)" $wc.existingSecret) }}
{{- end }}
{{- $_ := set $instance "tls_verify" true }}
{{- $_ := set $instance "tls_ca_cert" .Values.datadog.exporterCaFile }}
{{- with $wc.serverName }}
{{- $_ := set $instance "headers" (dict "Host" .) }}
{{- $_ := set $instance "tls_use_host_header" true }}
{{- end }}
{{- end }}
{{- if $wc.basicAuth }}
{{- $_ := set $instance "auth_type" "basic" }}
{{- $_ := set $instance "username" (printf "ENC[k8s_secret@%s/%s/username]" .Release.Namespace $wc.existingSecret) }}
{{- $_ := set $instance "password" (printf "ENC[k8s_secret@%s/%s/password]" .Release.Namespace $wc.existingSecret) }}
{{- end }}
{{- end }}
{{- toJson $instance }}
{{- end }}

{{/*
AlertManager matcher strings (`name="value"`, `name=~"re"`...) as AlertmanagerConfig matcher
objects. Call with a list of strings.
*/}}
{{- define "flmon.alertmanager.matchers" -}}
{{- $re := "^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)\"(.*)\"$" }}
{{- $out := list }}
{{- range . }}
{{- if not (regexMatch $re .) }}
{{- fail (printf "files/alertmanager/alertmanager.yml: matcher %q is not of the form name=\"value\" (re-run `flmon render`)" .) }}
{{- end }}
{{- $out = append $out (dict "name" (regexReplaceAll $re . "${1}") "matchType" (regexReplaceAll $re . "${2}") "value" (regexReplaceAll $re . "${3}")) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
Transport security of the reference federation: Secret names, mount paths, validation.
*/}}
{{- define "flmon.tls.secretName" -}}
{{- .Values.federation.tls.secretName | default (printf "%s-superlink-tls" (include "flmon.fullname" .)) }}
{{- end }}
{{- define "flmon.supernodeAuth.secretName" -}}
{{- .Values.federation.supernodeAuth.secretName | default (printf "%s-supernode-keys" (include "flmon.fullname" .)) }}
{{- end }}
{{- define "flmon.tls.validate" -}}
{{- if and .Values.federation.supernodeAuth.enabled (not .Values.federation.tls.enabled) }}
{{- fail "federation.supernodeAuth.enabled needs federation.tls.enabled: Flower authenticates SuperNodes only over TLS" }}
{{- end }}
{{- end }}
{{/* The CA certificate only (ca.crt of the SuperLink's Secret), for SuperNodes and the run Job. */}}
{{- define "flmon.tls.caVolume" -}}
- name: superlink-ca
  secret:
    secretName: {{ include "flmon.tls.secretName" . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- define "flmon.tls.caMount" -}}
- name: superlink-ca
  mountPath: /etc/flwr/ca
  readOnly: true
{{- end }}
