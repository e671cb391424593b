/**
 * The OpenTelemetry Collector components that otel-collector.yaml may use,
 * with the settings each accepts, taken from the Collector's own config
 * structs (`mapstructure` tags) and READMEs. No Collector binary can be
 * installed here (none is packaged for Debian or npm), so the test checks
 * the file against this table instead of `otelcol validate`.
 *
 * Sources (github.com/open-telemetry/...):
 *   [otlp-receiver]   opentelemetry-collector receiver/otlpreceiver/config.go
 *                     (Protocols{grpc, http}; HTTPConfig adds traces/metrics/logs_url_path)
 *   [grpc]            opentelemetry-collector config/configgrpc/configgrpc.go
 *                     (ServerConfig, ClientConfig, KeepaliveClientConfig)
 *   [http]            opentelemetry-collector config/confighttp/server.go (ServerConfig, CORSConfig)
 *   [tls]             opentelemetry-collector config/configtls/configtls.go (ClientConfig, ServerConfig)
 *   [memory-limiter]  opentelemetry-collector internal/memorylimiter/config.go
 *   [batch]           opentelemetry-collector processor/batchprocessor/config.go
 *   [otlp-exporter]   opentelemetry-collector exporter/otlpexporter/config.go and metadata.yaml
 *                     (type "otlp_grpc" since PR #14403, `otlp` a deprecated alias; TimeoutConfig
 *                     squashed as `timeout`, sending_queue, retry_on_failure, ClientConfig squashed)
 *   [queue]           opentelemetry-collector exporter/exporterhelper/README.md, "Sending Queue"
 *                     and "Sending queue batch settings" (batch.flush_timeout/min_size/max_size/sizer)
 *   [retry]           opentelemetry-collector config/configretry/backoff.go (BackOffConfig)
 *   [debug]           opentelemetry-collector exporter/debugexporter/config.go
 *   [prometheus]      opentelemetry-collector-contrib exporter/prometheusexporter/config.go
 *                     (translation_strategy and its four values; add_metric_suffixes deprecated)
 *   [prw]             opentelemetry-collector-contrib exporter/prometheusremotewriteexporter/config.go
 *                     (type "prometheus_remote_write" since PR #48705, the old name a deprecated alias)
 *   [loadbalancing]   opentelemetry-collector-contrib exporter/loadbalancingexporter/config.go and README.md
 *                     (type "load_balancing" since PR #48533, the old name a deprecated alias;
 *                     routing_key, protocol.otlp = an OTLP exporter config without endpoint,
 *                     resolver.static|dns|k8s)
 *   [bearer]          opentelemetry-collector-contrib extension/bearertokenauthextension/config.go
 *                     and metadata.yaml (type "bearertokenauth"; header, scheme, token, tokens,
 *                     filename; Validate: one of token, tokens or filename, not token and tokens)
 *   [health-check]    opentelemetry-collector-contrib extension/healthcheckextension/config.go
 *   [service]         opentelemetry-collector service/pipelines/config.go and the "Internal
 *                     telemetry" page of opentelemetry.io/docs/collector (telemetry.logs.level,
 *                     telemetry.metrics.level, telemetry.metrics.readers[].pull.exporter.prometheus)
 */

/** A leaf setting's type; the validator knows how to check each. */
export type Leaf =
  | "string"
  | "bool"
  | "uint"
  | "number"
  | "percent"
  | "duration"
  | "hostport"
  | "url"
  | "strings"
  | "stringmap"
  | { oneOf: readonly string[] };

export interface Settings {
  readonly [key: string]: Setting;
}
export type Setting = Leaf | Settings | { list: Settings };

export type Signal = "traces" | "metrics" | "logs";

export interface Component {
  /** Where the settings were read. */
  source: string;
  /** The pipelines it may be used in (extensions: none). */
  signals: readonly Signal[];
  settings: Settings;
  /** Distribution that ships it: core components are in contrib too. */
  distribution: "core" | "contrib";
}

// configtls.Config: what client and server TLS settings share.
const tlsCommon: Settings = {
  ca_file: "string",
  ca_pem: "string",
  cert_file: "string",
  cert_pem: "string",
  key_file: "string",
  key_pem: "string",
  min_version: "string",
  max_version: "string",
  reload_interval: "duration",
};

const tlsClient: Settings = {
  ...tlsCommon,
  insecure: "bool",
  insecure_skip_verify: "bool",
  server_name_override: "string",
  include_system_ca_certs_pool: "bool",
};

const tlsServer: Settings = {
  ...tlsCommon,
  client_ca_file: "string",
  client_ca_file_reload: "bool",
};

const auth: Settings = { authenticator: "string" };

const grpcServer: Settings = {
  endpoint: "hostport",
  transport: { oneOf: ["tcp", "unix"] },
  tls: tlsServer,
  max_recv_msg_size_mib: "uint",
  max_concurrent_streams: "uint",
  read_buffer_size: "uint",
  write_buffer_size: "uint",
  keepalive: {
    server_parameters: {
      max_connection_idle: "duration",
      max_connection_age: "duration",
      max_connection_age_grace: "duration",
      time: "duration",
      timeout: "duration",
    },
    enforcement_policy: { min_time: "duration", permit_without_stream: "bool" },
  },
  auth,
  include_metadata: "bool",
};

const httpServer: Settings = {
  endpoint: "hostport",
  tls: tlsServer,
  cors: { allowed_origins: "strings", allowed_headers: "strings", max_age: "uint" },
  auth,
  max_request_body_size: "uint",
  include_metadata: "bool",
  response_headers: "stringmap",
  compression_algorithms: "strings",
  read_timeout: "duration",
  read_header_timeout: "duration",
  write_timeout: "duration",
  idle_timeout: "duration",
  keep_alives_enabled: "bool",
};

const grpcClient: Settings = {
  endpoint: "hostport",
  compression: { oneOf: ["gzip", "zstd", "snappy", "none", ""] },
  tls: tlsClient,
  keepalive: { time: "duration", timeout: "duration", permit_without_stream: "bool" },
  read_buffer_size: "uint",
  write_buffer_size: "uint",
  wait_for_ready: "bool",
  headers: "stringmap",
  balancer_name: { oneOf: ["round_robin", "pick_first"] },
  authority: "string",
  auth,
};

const retry: Settings = {
  enabled: "bool",
  initial_interval: "duration",
  randomization_factor: "number",
  multiplier: "number",
  max_interval: "duration",
  max_elapsed_time: "duration",
};

const sendingQueue: Settings = {
  enabled: "bool",
  num_consumers: "uint",
  queue_size: "uint",
  wait_for_result: "bool",
  block_on_overflow: "bool",
  sizer: { oneOf: ["requests", "items", "bytes"] },
  storage: "string",
  batch: {
    flush_timeout: "duration",
    min_size: "uint",
    max_size: "uint",
    sizer: { oneOf: ["requests", "items", "bytes"] },
  },
  concurrency_controller: "string",
};

const otlpExporter: Settings = {
  timeout: "duration",
  sending_queue: sendingQueue,
  retry_on_failure: retry,
  ...grpcClient,
};

const { endpoint: _endpoint, ...otlpExporterWithoutEndpoint } = otlpExporter;

export const RECEIVERS: Record<string, Component> = {
  otlp: {
    source: "[otlp-receiver] [grpc] [http]",
    signals: ["traces", "metrics", "logs"],
    distribution: "core",
    settings: {
      protocols: {
        grpc: grpcServer,
        http: { ...httpServer, traces_url_path: "string", metrics_url_path: "string", logs_url_path: "string" },
      },
    },
  },
};

export const PROCESSORS: Record<string, Component> = {
  memory_limiter: {
    source: "[memory-limiter]",
    signals: ["traces", "metrics", "logs"],
    distribution: "core",
    settings: {
      check_interval: "duration",
      limit_mib: "uint",
      spike_limit_mib: "uint",
      limit_percentage: "percent",
      spike_limit_percentage: "percent",
      min_gc_interval_when_soft_limited: "duration",
      min_gc_interval_when_hard_limited: "duration",
    },
  },
  batch: {
    source: "[batch]",
    signals: ["traces", "metrics", "logs"],
    distribution: "core",
    settings: {
      timeout: "duration",
      send_batch_size: "uint",
      send_batch_max_size: "uint",
      metadata_keys: "strings",
      metadata_cardinality_limit: "uint",
    },
  },
};

/** Exporter types renamed to lower_snake_case: the old names still load, as deprecated aliases. */
export const DEPRECATED_TYPES: Record<string, string> = {
  otlp: "otlp_grpc",
  otlphttp: "otlp_http",
  loadbalancing: "load_balancing",
  prometheusremotewrite: "prometheus_remote_write",
};

export const EXPORTERS: Record<string, Component> = {
  otlp_grpc: {
    source: "[otlp-exporter] [grpc] [tls] [retry] [queue]",
    signals: ["traces", "metrics", "logs"],
    distribution: "core",
    settings: otlpExporter,
  },
  debug: {
    source: "[debug]",
    signals: ["traces", "metrics", "logs"],
    distribution: "core",
    settings: {
      verbosity: { oneOf: ["basic", "normal", "detailed"] },
      sampling_initial: "uint",
      sampling_thereafter: "uint",
      use_internal_logger: "bool",
      sending_queue: sendingQueue,
    },
  },
  prometheus: {
    source: "[prometheus] [http]",
    signals: ["metrics"],
    distribution: "contrib",
    settings: {
      ...httpServer,
      namespace: "string",
      const_labels: "stringmap",
      send_timestamps: "bool",
      metric_expiration: "duration",
      resource_to_telemetry_conversion: { enabled: "bool" },
      enable_open_metrics: "bool",
      add_metric_suffixes: "bool",
      translation_strategy: {
        oneOf: [
          "UnderscoreEscapingWithSuffixes",
          "UnderscoreEscapingWithoutSuffixes",
          "NoUTF8EscapingWithSuffixes",
          "NoTranslation",
        ],
      },
      sending_queue: sendingQueue,
    },
  },
  prometheus_remote_write: {
    source: "[prw] [retry]",
    signals: ["metrics"],
    distribution: "contrib",
    settings: {
      endpoint: "url",
      timeout: "duration",
      retry_on_failure: retry,
      namespace: "string",
      remote_write_queue: { enabled: "bool", queue_size: "uint", num_consumers: "uint" },
      external_labels: "stringmap",
      headers: "stringmap",
      tls: tlsClient,
      compression: "string",
      resource_to_telemetry_conversion: { enabled: "bool" },
      target_info: { enabled: "bool" },
      export_created_metric: { enabled: "bool" },
      add_metric_suffixes: "bool",
    },
  },
  load_balancing: {
    source: "[loadbalancing] [otlp-exporter]",
    signals: ["traces", "logs"],
    distribution: "contrib",
    settings: {
      routing_key: { oneOf: ["traceID", "service", "resource", "metric", "streamID", "attributes"] },
      protocol: { otlp: otlpExporterWithoutEndpoint },
      resolver: {
        static: { hostnames: "strings" },
        dns: { hostname: "string", port: "string", interval: "duration", timeout: "duration" },
        k8s: { service: "string", ports: "strings", timeout: "duration", return_hostnames: "bool" },
      },
    },
  },
};

export const EXTENSIONS: Record<string, Component> = {
  bearertokenauth: {
    source: "[bearer]",
    signals: [],
    distribution: "contrib",
    settings: { header: "string", scheme: "string", token: "string", tokens: "strings", filename: "string" },
  },
  health_check: {
    source: "[health-check] [http]",
    signals: [],
    distribution: "contrib",
    settings: {
      ...httpServer,
      path: "string",
      response_body: { healthy: "string", unhealthy: "string" },
      check_collector_pipeline: { enabled: "bool", interval: "duration", exporter_failure_threshold: "uint" },
    },
  },
};

/** `service:` [service]. Pipelines are checked separately (their names are `signal[/name]`). */
export const SERVICE_TELEMETRY: Settings = {
  logs: {
    level: { oneOf: ["debug", "info", "warn", "error"] },
    encoding: { oneOf: ["console", "json"] },
    development: "bool",
    disable_caller: "bool",
    disable_stacktrace: "bool",
    output_paths: "strings",
    error_output_paths: "strings",
  },
  metrics: {
    level: { oneOf: ["none", "basic", "normal", "detailed"] },
    readers: {
      list: {
        pull: { exporter: { prometheus: { host: "string", port: "uint", without_units: "bool" } } },
      },
    },
  },
};
