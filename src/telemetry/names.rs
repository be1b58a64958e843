//! Every metric name, in one place: the contract with `grafana/`.

pub const HTTP_REQUESTS: &str = "portcullis_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "portcullis_http_request_duration_seconds";
pub const TOKEN_CACHE_HITS: &str = "portcullis_token_cache_hits_total";
pub const TOKEN_CACHE_MISSES: &str = "portcullis_token_cache_misses_total";
pub const TOKEN_CACHE_EVICTIONS: &str = "portcullis_token_cache_evictions_total";
pub const TOKEN_CACHE_ENTRIES: &str = "portcullis_token_cache_entries";
pub const HASH_QUEUE_DEPTH: &str = "portcullis_hash_queue_depth";
pub const HASH_WAIT: &str = "portcullis_hash_wait_seconds";
pub const HASH_DURATION: &str = "portcullis_hash_duration_seconds";
pub const HASH_REJECTED: &str = "portcullis_hash_rejected_total";
pub const LOGINS: &str = "portcullis_logins_total";
pub const RATELIMIT_REJECTED: &str = "portcullis_ratelimit_rejected_total";
pub const STORE_OP_DURATION: &str = "portcullis_store_op_duration_seconds";
pub const STORE_ERRORS: &str = "portcullis_store_errors_total";
pub const ACTOR_MAILBOX_DEPTH: &str = "portcullis_actor_mailbox_depth";
pub const FEED_LAG: &str = "portcullis_feed_lag_seconds";
pub const SESSIONS_ACTIVE: &str = "portcullis_sessions_active";
/// Beyond ARCHITECTURE.md's list: outgoing mail (`outcome`: sent, failed, dropped, invalid).
pub const MAIL_MESSAGES: &str = "portcullis_mail_messages_total";
pub const MAIL_QUEUE_DEPTH: &str = "portcullis_mail_queue_depth";

/// Gives every metric its `# HELP` text (and unit), once the recorder is installed.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route pattern, method and status.");
    describe_histogram!(HTTP_REQUEST_DURATION, Unit::Seconds, "Time to answer an HTTP request, by route pattern.");
    describe_counter!(TOKEN_CACHE_HITS, "Token checks answered from the verified-token cache.");
    describe_counter!(TOKEN_CACHE_MISSES, "Token checks that had to verify a signature or read a key record.");
    describe_counter!(TOKEN_CACHE_EVICTIONS, "Verified tokens evicted from the cache to stay within capacity.");
    describe_gauge!(TOKEN_CACHE_ENTRIES, "Verified tokens held in the cache.");
    describe_gauge!(HASH_QUEUE_DEPTH, "Password hashing jobs waiting for a hashing thread.");
    describe_histogram!(HASH_WAIT, Unit::Seconds, "Time a password hashing job waited for a thread.");
    describe_histogram!(HASH_DURATION, Unit::Seconds, "Time one argon2id hash or verification took.");
    describe_counter!(HASH_REJECTED, "Password hashing jobs refused (queue full or deadline passed): 503 overloaded.");
    describe_counter!(LOGINS, "Sign-in attempts by outcome.");
    describe_counter!(RATELIMIT_REJECTED, "Requests refused by the per-IP rate limits, by route.");
    describe_histogram!(STORE_OP_DURATION, Unit::Seconds, "Time a store operation took, by operation and backend.");
    describe_counter!(STORE_ERRORS, "Store operations that failed (unavailable or corrupt), by operation and backend.");
    describe_gauge!(ACTOR_MAILBOX_DEPTH, "Commands queued or running in a user shard's mailbox, by shard.");
    describe_gauge!(FEED_LAG, Unit::Seconds, "Age of the newest change-feed event from another node when applied.");
    describe_gauge!(SESSIONS_ACTIVE, "Live sessions in the store (an estimate on CQL).");
    describe_counter!(MAIL_MESSAGES, "Outgoing mail by outcome: sent, failed, dropped (queue full), invalid.");
    describe_gauge!(MAIL_QUEUE_DEPTH, "Mail messages waiting for delivery.");
}

/// Label values known before any event happens.
pub struct KnownLabels {
    pub backend: &'static str,
    pub store_ops: &'static [&'static str],
    pub ratelimit_routes: &'static [&'static str],
    pub login_outcomes: &'static [&'static str],
    pub mail_outcomes: &'static [&'static str],
    /// `project` labels of the projects there are at start.
    pub projects: Vec<String>,
}

/// Registers every counter and gauge, at zero, for every label value known
/// in advance, so a fresh gateway exports them all and the first event is
/// a change that `rate()` and the alerts see (Prometheus's guidance). The
/// histograms come with their first observation; the HTTP counters, whose
/// labels are the requests', with the first request.
pub fn initialise(known: &KnownLabels) {
    use metrics::{counter, gauge};
    for name in [TOKEN_CACHE_HITS, TOKEN_CACHE_MISSES, TOKEN_CACHE_EVICTIONS, HASH_REJECTED] {
        let _ = counter!(name);
    }
    for name in [TOKEN_CACHE_ENTRIES, HASH_QUEUE_DEPTH, FEED_LAG, SESSIONS_ACTIVE, MAIL_QUEUE_DEPTH] {
        let _ = gauge!(name);
    }
    for &op in known.store_ops {
        let _ = counter!(STORE_ERRORS, "op" => op, "backend" => known.backend);
    }
    for &route in known.ratelimit_routes {
        let _ = counter!(RATELIMIT_REJECTED, "route" => route);
    }
    for &outcome in known.mail_outcomes {
        let _ = counter!(MAIL_MESSAGES, "outcome" => outcome);
    }
    for project in &known.projects {
        for &outcome in known.login_outcomes {
            let _ = counter!(LOGINS, "outcome" => outcome, "project" => project.clone());
        }
    }
}
