{{/* The operator's pod template, shared by the Deployment and the sharded StatefulSet;
callers indent it. */}}
{{- define "rtp.podTemplate" -}}
metadata:
  labels:
    {{- include "rtp.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "rtp.serviceAccountName" . }}
  # The operator talks to the API server with the ServiceAccount's projected token.
  automountServiceAccountToken: true
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: operator
      image: {{ include "rtp.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- if .Values.operator.verbose }}
      args: ["--verbose"]
      {{- end }}
      env:
        # kopf's peering identity and the Lease holder (both read POD_ID) is the pod name;
        # in a StatefulSet its ordinal suffix is the shard.
        - name: POD_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- if .Values.leaderElection.enabled }}
        - name: RTP_LEADER_ELECTION
          value: "true"
        - name: RTP_LEASE_NAME
          value: {{ include "rtp.leaseName" . | quote }}
        # The Lease lives in the pod's own namespace.
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- end }}
        # The ledger key Secret, in the pod's own namespace (docs/tenancy.md, threat model).
        - name: RTP_LEDGER_KEY_SECRET
          value: {{ include "rtp.ledgerKeySecret" . | quote }}
        - name: RTP_LEDGER_KEY_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- if gt (int .Values.shards) 1 }}
        - name: RTP_SHARDS
          value: {{ .Values.shards | quote }}
        {{- end }}
        {{- with .Values.watchNamespaces }}
        - name: RTP_WATCH_NAMESPACES
          value: {{ join "," . | quote }}
        {{- end }}
        {{- if .Values.peering.enabled }}
        - name: RTP_PEERING
          value: {{ .Values.peering.name | quote }}
        {{- end }}
        - name: RTP_LIVENESS
          value: {{ if .Values.livenessProbe.enabled }}{{ printf "http://%s:%v%s" (include "rtp.urlHost" .Values.health.bindAddress) .Values.livenessProbe.port .Values.livenessProbe.path | quote }}{{ else }}""{{ end }}
        - name: RTP_METRICS_PORT
          value: {{ if .Values.metrics.enabled }}{{ .Values.metrics.port | quote }}{{ else }}"0"{{ end }}
        - name: RTP_METRICS_BIND_ADDRESS
          value: {{ .Values.metrics.bindAddress | quote }}
        - name: RTP_LOG_FORMAT
          value: {{ .Values.operator.logFormat | quote }}
        - name: RTP_TICK_SECONDS
          value: {{ .Values.operator.tickSeconds | quote }}
        - name: RTP_OBSERVE_SECONDS
          value: {{ .Values.operator.observeSeconds | quote }}
        - name: RTP_MAX_WORKERS
          value: {{ .Values.operator.maxWorkers | quote }}
        - name: RTP_AWS_CALLS_PER_SECOND
          value: {{ .Values.operator.awsCallsPerSecond | quote }}
        - name: RTP_FETCH_CONCURRENCY
          value: {{ .Values.operator.fetchConcurrency | quote }}
        - name: RTP_NAMESPACE_CALLS_PER_SECOND
          value: {{ .Values.operator.namespaceCallsPerSecond | quote }}
        - name: RTP_MAX_FETCHES_PER_POLL
          value: {{ .Values.operator.maxFetchesPerPoll | quote }}
        - name: RTP_TENANCY_MODE
          value: {{ .Values.tenancy.mode | quote }}
        - name: RTP_ALLOW_ENDPOINT_ADOPTION
          value: {{ and (eq .Values.tenancy.mode "Single") .Values.tenancy.single.adoptEndpoints | quote }}
        - name: RTP_ALLOWED_ROLE_PATTERNS
          value: {{ join "," .Values.operator.allowedRolePatterns | quote }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or .Values.livenessProbe.enabled .Values.metrics.enabled }}
      ports:
        {{- if .Values.livenessProbe.enabled }}
        - name: health
          containerPort: {{ .Values.livenessProbe.port }}
          protocol: TCP
        {{- end }}
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
      {{- end }}
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: {{ .Values.livenessProbe.path }}
          port: health
        initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
      {{- /* The operator serves one endpoint: /healthz answers 200 while the process runs its
      loop, as the leader (kopf's liveness endpoint) or as a standby waiting for the Lease (the
      operator's own, runner.py). There is no "this replica reconciles" endpoint, and readiness
      must not mean that: a standby that was never Ready would stall every rolling update
      (maxUnavailable 0) and drop out of the metrics Service. So startup and readiness probe the
      same endpoint: startup gives the first answer time (ledger key, kopf's start) before
      liveness may restart the pod; readiness says "up: leading, or ready to take over". */}}
      {{- if .Values.startupProbe.enabled }}
      startupProbe:
        httpGet:
          path: {{ .Values.livenessProbe.path }}
          port: health
        periodSeconds: {{ .Values.startupProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.startupProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.startupProbe.failureThreshold }}
      {{- end }}
      {{- if .Values.readinessProbe.enabled }}
      readinessProbe:
        httpGet:
          path: {{ .Values.livenessProbe.path }}
          port: health
        periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
      {{- end }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    # The root filesystem is read-only; /tmp is the only writable path.
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- if .Values.affinity }}
    {{- toYaml .Values.affinity | nindent 4 }}
    {{- else }}
    # Replicas (or shards) on different nodes when the scheduler can: a node loss then
    # takes one operator pod, not all of them.
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "rtp.selectorLabels" . | nindent 16 }}
    {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- include "rtp.topologySpreadConstraints" $ | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
