//! Store wrappers (`metered`, `fault`): one forwarding of every [`Store`]
//! method, written once here.
//!
//! A wrapper is a struct with an `inner: Arc<dyn Store>` field and an
//! inherent `async fn around<T>(&self, op: &'static str, call: impl
//! Future<Output = StoreResult<T>> + Send) -> StoreResult<T>`; the call is
//! the wrapped store's method, not yet started, and `op` its name (the
//! `op` label of the store metrics, and what `FaultyStore::fail_op` names).
//! `forward_store!(Wrapper)` then implements `Store` by passing every
//! method through `around`. A method added to `Store` is added here once.
//!
//! [`Store`]: super::Store

/// Implements `Store` for a wrapper by sending every call through its `around`.
macro_rules! forward_store {
    ($wrapper:ty) => {
        $crate::store::layer::forward_methods! { $wrapper;
            ping() -> ();
            has_users(project: &$crate::account::ProjectId) -> bool;
            create_user(user: $crate::account::User) -> $crate::account::User;
            find_user(id: $crate::account::UserId) -> Option<$crate::account::User>;
            find_user_by_email(project: &$crate::account::ProjectId, email: &str) -> Option<$crate::account::User>;
            find_user_by_username(project: &$crate::account::ProjectId, username: &str) -> Option<$crate::account::User>;
            update_user(user: $crate::account::User) -> $crate::account::User;
            list_users(project: &$crate::account::ProjectId, after: Option<$crate::account::UserId>, limit: usize)
                -> Vec<$crate::account::User>;
            delete_user(id: $crate::account::UserId) -> bool;
            create_session(session: $crate::account::Session, refresh: $crate::account::RefreshRecord) -> ();
            find_session(id: $crate::account::SessionId) -> Option<$crate::account::Session>;
            list_sessions(user: $crate::account::UserId, now: $crate::clock::Timestamp) -> Vec<$crate::account::Session>;
            delete_session(id: $crate::account::SessionId) -> bool;
            delete_user_sessions(user: $crate::account::UserId, keep: Option<$crate::account::SessionId>)
                -> Vec<$crate::account::SessionId>;
            find_refresh_token(digest: &[u8; 32]) -> Option<$crate::account::RefreshRecord>;
            rotate_refresh_token(
                old: &[u8; 32],
                rotation: $crate::account::Rotation,
                successor: $crate::account::RefreshRecord,
                session_touch: ($crate::clock::Timestamp, $crate::clock::Timestamp)
            ) -> $crate::store::RotateOutcome;
            create_api_key(key: $crate::account::ApiKey) -> ();
            find_api_key(digest: &[u8; 32]) -> Option<$crate::account::ApiKey>;
            list_api_keys(user: $crate::account::UserId) -> Vec<$crate::account::ApiKey>;
            delete_api_key(user: $crate::account::UserId, id: $crate::account::ApiKeyId)
                -> Option<$crate::account::ApiKey>;
            touch_api_keys(used: Vec<($crate::account::ApiKeyId, $crate::clock::Timestamp)>) -> ();
            append_feed(event: $crate::store::FeedEvent) -> ();
            read_feed(after: $crate::clock::Timestamp, now: $crate::clock::Timestamp) -> Vec<$crate::store::FeedEvent>;
            claim_once(key: [u8; 32], expires_at: $crate::clock::Timestamp) -> bool;
            put_code(code: $crate::account::OneTimeCode) -> ();
            find_code(project: &$crate::account::ProjectId, purpose: $crate::account::CodePurpose, subject: &str)
                -> Option<$crate::account::OneTimeCode>;
            delete_code(project: &$crate::account::ProjectId, purpose: $crate::account::CodePurpose, subject: &str) -> ();
            append_audit(event: $crate::account::AuditEvent) -> ();
            list_audit_page(query: $crate::store::AuditQuery) -> Vec<$crate::account::AuditEvent>;
            create_passkey(passkey: $crate::account::PasskeyRecord) -> bool;
            find_passkey(credential_id: &[u8]) -> Option<$crate::account::PasskeyRecord>;
            list_passkeys(user: $crate::account::UserId) -> Vec<$crate::account::PasskeyRecord>;
            update_passkey(passkey: $crate::account::PasskeyRecord) -> ();
            delete_passkey(user: $crate::account::UserId, id: $crate::account::PasskeyId)
                -> Option<$crate::account::PasskeyRecord>;
            create_identity(identity: $crate::account::Identity) -> bool;
            find_identity(project: &$crate::account::ProjectId, provider: &str, subject: &str)
                -> Option<$crate::account::Identity>;
            list_identities(user: $crate::account::UserId) -> Vec<$crate::account::Identity>;
            delete_identity(identity: &$crate::account::Identity) -> bool;
            put_challenge(id: uuid::Uuid, state: Vec<u8>, expires_at: $crate::clock::Timestamp) -> ();
            take_challenge(id: uuid::Uuid, now: $crate::clock::Timestamp) -> Option<Vec<u8>>;
            create_project(project: $crate::projects::Project) -> bool;
            find_project(id: &$crate::account::ProjectId) -> Option<$crate::projects::Project>;
            list_projects() -> Vec<$crate::projects::Project>;
            replace_project(project: $crate::projects::Project, read_version: u64) -> ();
            count_active_sessions(now: $crate::clock::Timestamp) -> u64;
            count_users(project: &$crate::account::ProjectId) -> u64;
            put_login_tally(tally: $crate::store::LoginTally) -> ();
            sum_login_tallies(project: &$crate::account::ProjectId, from: i64, to: i64) -> $crate::store::LoginCounts;
            sweep_expired(now: $crate::clock::Timestamp) -> usize;
            flush() -> ();
        }
    };
}

/// The expansion of [`forward_store!`]: one method per line of its list.
macro_rules! forward_methods {
    ($wrapper:ty; $($name:ident($($arg:ident: $t:ty),*) -> $out:ty;)*) => {
        impl $wrapper {
            /// Every operation's name, as the wrapper labels it.
            #[allow(dead_code)]
            pub(crate) const OPS: &'static [&'static str] = &[$(stringify!($name)),*];
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $wrapper {
            fn backend(&self) -> &'static str {
                self.inner.backend()
            }
            fn counts_sessions_exactly(&self) -> bool {
                self.inner.counts_sessions_exactly()
            }
            $(
                async fn $name(&self, $($arg: $t),*) -> $crate::store::StoreResult<$out> {
                    self.around(stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

pub(crate) use {forward_methods, forward_store};
