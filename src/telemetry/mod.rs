//! Telemetry: structured logs, metric names, and the Prometheus exporter.
//!
//! Owns the one list of metric names (`names`) that `grafana/` is written
//! against, the log subscriber, and the process-wide recorder. Never records
//! passwords, codes, tokens, keys or raw headers.

pub mod names;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// Buckets for request and store latencies (seconds): 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
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
                .set_buckets_for_metric(Matcher::Full(names::HTTP_REQUEST_DURATION.into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::STORE_OP_DURATION.into()), LATENCY_BUCKETS))
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
                    handle
                }
                Err(e) => unreachable!("static bucket lists are never empty: {e}"),
            }
        })
        .clone()
}

/// Starts the log subscriber (text or JSON, level from settings or `RUST_LOG`).
pub fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let result = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if result.is_err() {
        tracing::debug!("log subscriber already installed");
    }
}
