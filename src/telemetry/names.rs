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
