{{/* Chart name, overridable with nameOverride. */}}
{{- define "workspace-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the operator's resources: the release name when it already contains the chart
name (so `helm install workspace-operator` gives the same names as config/default), else
"<release>-<chart>".
*/}}
{{- define "workspace-operator.fullname" -}}
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

{{- define "workspace-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart renders, but for app.kubernetes.io/component. */}}
{{- define "workspace-operator.commonLabels" -}}
helm.sh/chart: {{ include "workspace-operator.chart" . }}
app.kubernetes.io/name: {{ include "workspace-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: workspace-operator
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "workspace-operator.labels" -}}
{{ include "workspace-operator.commonLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "workspace-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workspace-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "workspace-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workspace-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "workspace-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Whether the operator runs leader election: always with more than one replica, otherwise as
leaderElection.enabled says.
*/}}
{{- define "workspace-operator.leaderElect" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{- define "workspace-operator.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* The operator's command-line arguments, one per flag of main.go. */}}
{{- define "workspace-operator.args" -}}
{{- $v := .Values -}}
{{- if include "workspace-operator.leaderElect" . }}
- --leader-elect
{{- end }}
{{- with $v.leaderElection.namespace }}
- {{ printf "--leader-election-namespace=%s" . | quote }}
{{- end }}
{{- if $v.metrics.enabled }}
- {{ printf "--metrics-bind-address=:%d" (int $v.metrics.port) | quote }}
{{- else }}
- "--metrics-bind-address=0"
{{- end }}
- {{ printf "--metrics-secure=%t" $v.metrics.secure | quote }}
- {{ printf "--health-probe-bind-address=:%d" (int $v.probes.port) | quote }}
{{- with $v.pprof.bindAddress }}
- {{ printf "--pprof-bind-address=%s" . | quote }}
{{- end }}
- {{ printf "--namespace-prefix=%s" $v.namespacePrefix | quote }}
- {{ printf "--ingress-namespaces=%s" (join "," $v.ingressNamespaces) | quote }}
- {{ printf "--cluster-pod-cidrs=%s" (join "," $v.clusterPodCIDRs) | quote }}
- {{ printf "--cluster-service-cidrs=%s" (join "," $v.clusterServiceCIDRs) | quote }}
- {{ printf "--dns-namespace=%s" $v.dnsNamespace | quote }}
{{- $labels := list }}
{{- range $key, $value := $v.dnsPodLabels }}
{{- $labels = append $labels (printf "%s=%s" $key $value) }}
{{- end }}
- {{ printf "--dns-pod-labels=%s" (join "," $labels) | quote }}
- {{ printf "--default-issuer=%s/%s" $v.defaultIssuer.kind $v.defaultIssuer.name | quote }}
- {{ printf "--owner-cluster-role=%s" $v.ownerClusterRole | quote }}
- {{ printf "--max-concurrent-reconciles=%d" (int $v.maxConcurrentReconciles) | quote }}
- {{ printf "--kube-api-qps=%v" $v.kubeApiQps | quote }}
- {{ printf "--kube-api-burst=%d" (int $v.kubeApiBurst) | quote }}
- {{ printf "--stalled-retry-interval=%s" $v.stalledRetryInterval | quote }}
- {{ printf "--cluster-name=%s" $v.clusterName | quote }}
- {{ printf "--aws-region=%s" $v.aws.region | quote }}
- {{ printf "--aws-replica-region=%s" $v.aws.replicaRegion | quote }}
- {{ printf "--replication-role-arn=%s" $v.aws.replicationRoleArn | quote }}
- {{ printf "--aws-s3-path-style=%t" $v.aws.s3PathStyle | quote }}
- {{ printf "--aws-drift-check-interval=%s" $v.aws.driftCheckInterval | quote }}
- {{ printf "--bucket-prefix=%s" $v.aws.bucketPrefix | quote }}
- {{ printf "--kms-alias-prefix=%s" $v.aws.kmsAliasPrefix | quote }}
{{- if $v.aws.kmsKeyPolicy }}
- "--kms-key-policy-file=/etc/workspace-operator/kms/key-policy.json"
{{- end }}
- {{ printf "--workload-role-arn-template=%s" $v.aws.workloadRoleArnTemplate | quote }}
- {{ printf "--storage-provisioner=%s" $v.storage.provisioner | quote }}
{{- $parameters := list }}
{{- range $key, $value := $v.storage.parameters }}
{{- $parameters = append $parameters (printf "%s=%v" $key $value) }}
{{- end }}
- {{ printf "--storage-parameters=%s" (join "," $parameters) | quote }}
- {{ printf "--storage-kms-key-parameter=%s" $v.storage.kmsKeyParameter | quote }}
- {{ printf "--volume-driver-role-arn=%s" $v.storage.volumeDriverRoleArn | quote }}
- {{ printf "--purge-window=%s" $v.purge.window | quote }}
- {{ printf "--purge-audit-period=%s" $v.purge.auditPeriod | quote }}
- {{ printf "--backup-image=%s" (include "workspace-operator.image" .) | quote }}
- {{ printf "--backup-command=%s" $v.backup.command | quote }}
- {{ printf "--backup-max-retention-days=%d" (int $v.backup.maxRetentionDays) | quote }}
- {{ printf "--backup-hour=%d" (int $v.backup.hour) | quote }}
- {{ printf "--backup-stale-after=%s" $v.backup.staleAfter | quote }}
- {{ printf "--backup-role-arn-template=%s" $v.backup.roleArnTemplate | quote }}
- {{ printf "--mover-namespace=%s" $v.dataMover.namespace | quote }}
- {{ printf "--mover-concurrency=%d" (int $v.dataMover.concurrency) | quote }}
- {{ printf "--mover-volume-timeout=%s" $v.dataMover.volumeTimeout | quote }}
- {{ printf "--zap-log-level=%s" $v.logLevel | quote }}
- {{ printf "--zap-encoder=%s" $v.logFormat | quote }}
- {{ printf "--zap-stacktrace-level=%s" $v.logStacktraceLevel | quote }}
- {{ printf "--zap-time-encoding=%s" $v.logTimeEncoding | quote }}
- {{ printf "--zap-devel=%t" $v.logDevelopment | quote }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Checks across values that the JSON schema cannot express; fail with a message that says
what to change.
*/}}
{{- define "workspace-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "leaderElection.enabled=false needs replicas: 1 (got %d): several replicas without leader election would reconcile the same Workspaces at once" (int .Values.replicas)) }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.probes.port)) }}
{{- fail (printf "metrics.port and probes.port must differ (both %d)" (int .Values.probes.port)) }}
{{- end }}
{{- if regexMatch "^(0+(\\.0+)?(ns|us|µs|ms|s|m|h))+$" .Values.stalledRetryInterval }}
{{- fail (printf "stalledRetryInterval must be positive (got %q)" .Values.stalledRetryInterval) }}
{{- end }}
{{- if le (float64 .Values.kubeApiQps) 0.0 }}
{{- fail (printf "kubeApiQps must be positive (got %v)" .Values.kubeApiQps) }}
{{- end }}
{{- if eq .Values.image.tag "latest" }}
{{- fail "image.tag must not be \"latest\": pin a released version, or set image.digest" }}
{{- end }}
{{- if and .Values.aws.replicaRegion (not .Values.aws.replicationRoleArn) }}
{{- fail "aws.replicaRegion needs aws.replicationRoleArn, the IAM role S3 replication assumes" }}
{{- end }}
{{- if and .Values.aws.replicaRegion (eq .Values.aws.replicaRegion .Values.aws.region) }}
{{- fail (printf "aws.replicaRegion must differ from aws.region (both %s)" .Values.aws.region) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- end }}
