//! Second factors, one-time email codes and audit events: the records the
//! sign-in flows keep beside the user.
//!
//! Nothing here holds a secret in the clear: a TOTP secret is sealed (AEAD)
//! before it reaches a record, backup codes and email codes are keyed
//! digests.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ProjectId, UserId};
use crate::clock::Timestamp;

/// A user's TOTP state, kept in the user record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactor {
    /// The TOTP secret, sealed with the data directory's secrets key.
    pub sealed_secret: Vec<u8>,
    /// `None` while set up but not yet confirmed with a code.
    pub enabled_at: Option<Timestamp>,
    /// Keyed digests of the unused backup codes.
    pub backup_codes: Vec<[u8; 32]>,
}

/// Why a one-time email code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodePurpose {
    /// Passwordless sign-in (`otp/login`).
    Login,
    /// Password reset (`reset-password`).
    Reset,
    /// Email verification (`register/verify`).
    Verify,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Login => "login",
            CodePurpose::Reset => "reset",
            CodePurpose::Verify => "verify",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "login" => Some(CodePurpose::Login),
            "reset" => Some(CodePurpose::Reset),
            "verify" => Some(CodePurpose::Verify),
            _ => None,
        }
    }
}

/// A one-time email code as stored: one live code per project, purpose and
/// address (a new one replaces it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeCode {
    pub project: ProjectId,
    pub purpose: CodePurpose,
    /// The normalized email address.
    pub subject: String,
    /// Keyed digest of the code.
    pub digest: [u8; 32],
    /// Wrong tries so far.
    pub attempts: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Time-ordered (UUIDv7).
    pub id: Uuid,
    pub at: Timestamp,
    pub project: ProjectId,
    pub user_id: Option<UserId>,
    /// What happened, snake_case (`two_factor_enabled`, `password_reset`, ...).
    pub kind: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A short, secret-free detail (`totp`, `backup_code`, `login`, ...).
    pub detail: Option<String>,
    /// How many times it happened: repeated failures of one account and
    /// kind within a minute are one event, counted.
    #[serde(default = "one")]
    pub count: u32,
    /// When the store forgets it (`audit_retention_days` after `at`).
    #[serde(default)]
    pub keep_until: Timestamp,
}

fn one() -> u32 {
    1
}
