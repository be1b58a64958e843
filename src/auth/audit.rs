//! Audit events: what happened to an account, kept in the store for the
//! audit log API for `audit_retention_days` (CQL TTL, embedded sweep).
//!
//! Repeated failures (a wrong code, a wrong second factor) of one account
//! and kind within one minute are one event whose `count` grows, written
//! again under the same id (an upsert on both stores), so an attacker
//! hammering an account adds one row a minute, not one per guess. The
//! table of repeats is per node and bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::account::{AuditEvent, ProjectId, UserId};

use super::{AuthService, ClientInfo};

/// Kinds of audit events (snake_case, as stored).
pub mod kind {
    pub const TWO_FACTOR_ENABLED: &str = "two_factor_enabled";
    pub const TWO_FACTOR_DISABLED: &str = "two_factor_disabled";
    pub const BACKUP_CODES_REGENERATED: &str = "backup_codes_regenerated";
    /// A wrong TOTP or backup code (`detail`: where).
    pub const TWO_FACTOR_FAILED: &str = "two_factor_failed";
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const INITIAL_PASSWORD_SET: &str = "initial_password_set";
    pub const EMAIL_VERIFIED: &str = "email_verified";
    /// The first proof of an address ended what was made on the account
    /// before it (`detail`: what went).
    pub const UNVERIFIED_CREDENTIALS_ENDED: &str = "unverified_credentials_ended";
    /// A wrong or dead email code (`detail`: its purpose).
    pub const CODE_FAILED: &str = "code_failed";
    pub const USER_REGISTERED: &str = "user_registered";
    /// A sign-in (`detail`: how: `password`, `email_code`, `two_factor`, `passkey`, `oidc:<provider>`).
    pub const LOGIN_SUCCEEDED: &str = "login_succeeded";
    /// A wrong password (`user_id` empty for an unknown account).
    pub const LOGIN_FAILED: &str = "login_failed";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// A session ended by its user (`detail`: `logout`, `revoked`, `others`).
    pub const SESSION_REVOKED: &str = "session_revoked";
    /// `detail`: `passkey=<id>`.
    pub const PASSKEY_REGISTERED: &str = "passkey_registered";
    pub const PASSKEY_REMOVED: &str = "passkey_removed";
    /// A passkey's signature counter went backwards (a cloned
    /// authenticator?): the login was refused.
    pub const PASSKEY_COUNTER_REGRESSED: &str = "passkey_counter_regressed";
    /// An OIDC identity was linked to the account (`detail`: `oidc:<provider>`).
    pub const IDENTITY_LINKED: &str = "identity_linked";
    pub const API_KEY_CREATED: &str = "api_key_created";
    pub const API_KEY_REVOKED: &str = "api_key_revoked";
    /// A rotated refresh token came back after the grace window: its session ended.
    pub const REFRESH_TOKEN_REUSED: &str = "refresh_token_reused";
    /// Admin actions (`user_id`: the admin; `detail`: the project and what changed).
    pub const PROJECT_CREATED: &str = "project_created";
    pub const PROJECT_CHANGED: &str = "project_changed";
    pub const PROJECT_DELETED: &str = "project_deleted";
    pub const USER_CHANGED_BY_ADMIN: &str = "user_changed_by_admin";
    pub const USER_DELETED_BY_ADMIN: &str = "user_deleted_by_admin";

    /// Kinds that repeat under attack, and are counted per minute.
    pub fn repeats(kind: &str) -> bool {
        matches!(kind, TWO_FACTOR_FAILED | CODE_FAILED | LOGIN_FAILED)
    }

    /// Whether an event is a sign-in (`Some(true)`), a failed one
    /// (`Some(false)`: a wrong password or passkey, an unknown account, or a
    /// wrong second factor or emailed code at sign-in), or neither: what the
    /// login tallies count.
    pub fn login_outcome(kind: &str, detail: Option<&str>) -> Option<bool> {
        match kind {
            LOGIN_SUCCEEDED => Some(true),
            LOGIN_FAILED => Some(false),
            TWO_FACTOR_FAILED if detail == Some("login") => Some(false),
            CODE_FAILED if detail == Some(crate::account::CodePurpose::Login.as_str()) => Some(false),
            _ => None,
        }
    }
}

/// The repeats table holds at most this many (project, account, kind) keys.
const MAX_REPEATS: usize = 10_000;
const MINUTE_MS: i64 = 60_000;

type RepeatKey = (ProjectId, Option<UserId>, &'static str, Option<String>);

/// The event of the current minute of each repeating (project, account,
/// kind, detail).
#[derive(Default)]
pub(super) struct Repeats(Mutex<HashMap<RepeatKey, AuditEvent>>);

impl Repeats {
    /// `event` itself, or the event of the same key and minute counted once more.
    fn count(&self, event: AuditEvent, kind: &'static str) -> AuditEvent {
        let mut table = match self.0.lock() {
            Ok(table) => table,
            Err(poisoned) => poisoned.into_inner(),
        };
        let minute = event.at.0.div_euclid(MINUTE_MS);
        let key = (event.project.clone(), event.user_id, kind, event.detail.clone());
        if let Some(seen) = table.get_mut(&key)
            && seen.at.0.div_euclid(MINUTE_MS) == minute
        {
            seen.count += 1;
            return seen.clone();
        }
        if table.len() >= MAX_REPEATS {
            table.retain(|_, seen| seen.at.0.div_euclid(MINUTE_MS) == minute);
            if table.len() >= MAX_REPEATS {
                table.clear();
            }
        }
        table.insert(key, event.clone());
        event
    }
}

impl AuthService {
    /// Appends an audit event. A failed write is logged and counted, never
    /// returned: the action it records has already happened.
    pub(super) async fn audit(
        &self,
        kind: &'static str,
        project: &ProjectId,
        user: Option<UserId>,
        client: &ClientInfo,
        detail: Option<&str>,
    ) {
        let at = self.clock.now();
        if let Some(succeeded) = kind::login_outcome(kind, detail) {
            self.tallies.note(project, at, succeeded);
        }
        let event = AuditEvent {
            id: Uuid::now_v7(),
            at,
            project: project.clone(),
            user_id: user,
            kind: kind.to_owned(),
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            detail: detail.map(str::to_owned),
            count: 1,
            keep_until: at.plus(self.policy.audit_retention),
        };
        let event = if kind::repeats(kind) { self.repeats.count(event, kind) } else { event };
        // (The store wrapper counts the failure.)
        if let Err(e) = self.store.append_audit(event).await {
            tracing::error!(target: "security", event = "audit_write_failed", kind, error = %e, "audit event not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_events_are_told_apart() {
        assert_eq!(kind::login_outcome(kind::LOGIN_SUCCEEDED, Some("passkey")), Some(true));
        assert_eq!(kind::login_outcome(kind::LOGIN_FAILED, Some("password")), Some(false));
        assert_eq!(kind::login_outcome(kind::TWO_FACTOR_FAILED, Some("login")), Some(false));
        assert_eq!(kind::login_outcome(kind::TWO_FACTOR_FAILED, Some("enable")), None);
        assert_eq!(kind::login_outcome(kind::CODE_FAILED, Some("login")), Some(false));
        assert_eq!(kind::login_outcome(kind::CODE_FAILED, Some("reset")), None);
        assert_eq!(kind::login_outcome(kind::PASSWORD_CHANGED, None), None);
    }
}
