//! Telemetry: structured logs, metric names, and the Prometheus exporter.
//!
//! Owns the one list of metric names (`names`) that `grafana/` is written
//! against, the log subscriber, and the process-wide recorder. Never records
//! passwords, codes, tokens, keys or raw headers.

pub mod names;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Buckets for request latencies (seconds): 10 µs to 10 s, so cached token
/// checks (tens of µs) and sign-ins (tens of ms) both resolve.
const REQUEST_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Buckets for store operations (seconds): 100 µs (an embedded read) to 5 s
/// (past the CQL statement timeout of 2 s).
const STORE_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];
/// Buckets for password hashing and its queue wait (seconds): 1 ms to 10 s.
const HASH_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The metrics facade is process-global by design (the `metrics` crate keeps
/// one recorder per process), so the exporter is installed once and every
/// app built in this process renders from the same handle.
static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(names::HTTP_REQUEST_DURATION.into()), REQUEST_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::STORE_OP_DURATION.into()), STORE_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::HASH_WAIT.into()), HASH_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::HASH_DURATION.into()), HASH_BUCKETS))
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    // Fails only if another recorder is installed; then ours renders nothing new.
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed");
                    }
                    names::describe();
                    handle
                }
                Err(e) => unreachable!("static bucket lists are never empty: {e}"),
            }
        })
        .clone()
}

/// Process CPU, memory, threads and file descriptors (`process_*`), read
/// from `/proc` when `/metrics` is rendered.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// The `/metrics` text: the process figures refreshed, then every metric.
pub fn render(handle: &PrometheusHandle) -> String {
    let process = PROCESS.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    });
    process.collect();
    handle.render()
}

/// Starts the log subscriber (text or JSON, level from settings or
/// `RUST_LOG`) on a non-blocking writer: a line is handed to a writer
/// thread, so a slow stdout never stalls a request (past 128k waiting
/// lines, new ones are dropped and counted by the appender). Keep the guard
/// until exit: dropping it flushes what is waiting.
pub fn init_logging(settings: &LogSettings) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_writer(writer);
    let result = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    match result {
        Ok(()) => Some(guard),
        Err(_) => {
            tracing::debug!("log subscriber already installed");
            None
        }
    }
}
