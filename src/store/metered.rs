//! A store wrapper that measures every operation: its latency into
//! `portcullis_store_op_duration_seconds{op,backend}` and its failures into
//! `portcullis_store_errors_total{op,backend}`. The app wraps whatever store
//! it is given in one, so both backends (and the test wrappers) are measured
//! the same way. Outcomes a caller expects (not found, already exists, a lost
//! race) are not errors; an unavailable or corrupt store is.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::{Store, StoreError, StoreResult};
use crate::telemetry::names;

pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(MeteredStore { inner })
    }

    /// Measures one call of the wrapped store.
    async fn around<T>(&self, op: &'static str, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        let backend = self.inner.backend();
        metrics::histogram!(names::STORE_OP_DURATION, "op" => op, "backend" => backend)
            .record(started.elapsed().as_secs_f64());
        if let Err(StoreError::Unavailable(_) | StoreError::Corrupt(_)) = &result {
            metrics::counter!(names::STORE_ERRORS, "op" => op, "backend" => backend).increment(1);
        }
        result
    }
}

super::layer::forward_store!(MeteredStore);
