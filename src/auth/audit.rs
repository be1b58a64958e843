//! Audit events: what happened to an account, kept in the store for the
//! audit log API.

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
        let event = AuditEvent {
            id: Uuid::now_v7(),
            at: self.clock.now(),
            project: project.clone(),
            user_id: user,
            kind: kind.to_owned(),
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
            detail: detail.map(str::to_owned),
        };
        // (The store wrapper counts the failure.)
        if let Err(e) = self.store.append_audit(event).await {
            tracing::error!(target: "security", event = "audit_write_failed", kind, error = %e, "audit event not stored");
        }
    }
}
