{{/* Names, labels and the values the chart derives. */}}

{{- define "strom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
At most 52 characters: the StatefulSet controller labels pods with
"<name>-<10-character revision hash>", which must fit in 63.
*/}}
{{- define "strom.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else if contains (include "strom.name" .) .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "strom.name" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
A value as server.properties wants it: YAML numbers reach templates as
floats, which would print 1073741824 as 1.073741824e+09.
*/}}
{{- define "strom.propertyValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/*
What every pod's configuration depends on, hashed into the pod template so
that changing it rolls the pods (replicaCount only where it changes the
voters or the replication defaults, that is up to 3).
*/}}
{{- define "strom.configChecksum" -}}
{{- $shared := dict "config" .Values.config "clusterId" (include "strom.clusterId" .) "voters" (include "strom.quorumVoters" .) "replication" (include "strom.replication" .) "externalAccess" .Values.externalAccess "provisioning" .Values.provisioning "clusterDomain" .Values.clusterDomain -}}
{{- toJson $shared | sha256sum -}}
{{- end -}}

{{- define "strom.headless" -}}
{{- printf "%s-headless" (include "strom.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "strom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "strom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "strom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "strom.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: broker
{{- end -}}

{{- define "strom.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The cluster id: clusterId, or 21 hex digits of the SHA-256 of
"<namespace>/<release>" and "Q" (22 characters of URL-safe base64 whose
last character carries no stray bits): the same on every render and
upgrade of a release, different between releases.
*/}}
{{- define "strom.clusterId" -}}
{{- if .Values.clusterId -}}
{{- .Values.clusterId -}}
{{- else -}}
{{- printf "%s/%s" .Release.Namespace .Release.Name | sha256sum | trunc 21 -}}Q
{{- end -}}
{{- end -}}

{{/* Pod i's stable DNS name, through the headless Service. */}}
{{- define "strom.podHost" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "strom.fullname" $) (index . 1) (include "strom.headless" $) $.Release.Namespace $.Values.clusterDomain -}}
{{- end -}}

{{- define "strom.voterCount" -}}
{{- if .Values.controller.voters -}}
{{- min (int .Values.controller.voters) (int .Values.replicaCount) -}}
{{- else -}}
{{- min 3 (int .Values.replicaCount) -}}
{{- end -}}
{{- end -}}

{{- define "strom.quorumVoters" -}}
{{- $voters := list -}}
{{- range $i := until (int (include "strom.voterCount" .)) -}}
{{- $voters = append $voters (printf "%d@%s:9093" $i (include "strom.podHost" (list $ $i))) -}}
{{- end -}}
{{- join "," $voters -}}
{{- end -}}

{{/* Broker i's external address host:port (externalAccess). */}}
{{- define "strom.externalAddress" -}}
{{- $ := index . 0 -}}
{{- $i := index . 1 -}}
{{- $ea := $.Values.externalAccess -}}
{{- if lt $i (len $ea.hosts) -}}
{{- $host := index $ea.hosts $i -}}
{{- if eq $ea.type "NodePort" -}}
{{- printf "%s:%d" $host (int (include "strom.nodePort" (list $ $i))) -}}
{{- else -}}
{{- printf "%s:%d" $host (int $ea.port) -}}
{{- end -}}
{{- else -}}
{{- fail (printf "externalAccess.hosts must name an address for each of the %d brokers (it has %d)" (int $.Values.replicaCount) (len $ea.hosts)) -}}
{{- end -}}
{{- end -}}

{{- define "strom.nodePort" -}}
{{- $ := index . 0 -}}
{{- $i := index . 1 -}}
{{- $ea := $.Values.externalAccess -}}
{{- if lt $i (len $ea.nodePorts) -}}
{{- index $ea.nodePorts $i -}}
{{- else -}}
{{- add (int $ea.nodePortBase) $i -}}
{{- end -}}
{{- end -}}

{{/* The replication defaults a cluster of this size can meet. */}}
{{- define "strom.replication" -}}
{{- min 3 (int .Values.replicaCount) -}}
{{- end -}}
