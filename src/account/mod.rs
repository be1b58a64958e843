//! Accounts: the identifiers, records and input rules shared by every subsystem.
//!
//! Owns the typed ids (`UserId`, `SessionId`, `ProjectId`), the persisted
//! records (`User`, `Session`, `RefreshRecord`, and in `security` the second
//! factor, email codes and audit events) and the validation of what
//! clients send (emails, usernames, names, passwords). It knows nothing about
//! HTTP or storage engines; the store persists these records as they are.

mod identity;
mod passkey;
mod security;
mod validate;

pub use identity::Identity;
pub use passkey::PasskeyRecord;
pub use security::{AuditEvent, CodePurpose, OneTimeCode, TwoFactor};
pub use validate::{
    Fields, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS, full_name, normalize_email, normalize_username, validate_name,
    validate_optional_name, validate_password,
};

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7).
            pub fn generate() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn parse(text: &str) -> Option<Self> {
                Uuid::try_parse(text).ok().map($name)
            }

            pub fn as_u128(self) -> u128 {
                self.0.as_u128()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A user's id, unique across every project.
    UserId
);
uuid_id!(
    /// A session's id: one login, one refresh-token family.
    SessionId
);

uuid_id!(
    /// An API key's id (not the key: the key is shown once and never stored).
    ApiKeyId
);
uuid_id!(
    /// A passkey's id (not its credential id, which the authenticator chose).
    PasskeyId
);

/// A project (tenant) id; `default` until the projects API lands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(pub String);

impl ProjectId {
    pub const DEFAULT: &'static str = "default";

    pub fn default_project() -> Self {
        ProjectId(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Superadmin,
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "superadmin",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "superadmin" => Some(Role::Superadmin),
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub project: ProjectId,
    /// Normalized (trimmed, lower-case).
    pub email: String,
    /// Normalized (lower-case), unique per project when present.
    pub username: Option<String>,
    pub name: String,
    /// Seed 003's parts of the name (the display name is `name`).
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub role: Role,
    /// PHC string (argon2id); `None` for passwordless accounts.
    pub password_hash: Option<String>,
    pub email_verified_at: Option<Timestamp>,
    pub two_factor_enabled: bool,
    /// TOTP state: pending setup or enabled (`two_factor_enabled` says which counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_factor: Option<TwoFactor>,
    pub disabled: bool,
    /// Set by an admin; the next password change, reset or initial password clears it.
    #[serde(default)]
    pub must_reset_password: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    /// A new account of role `user`: no username, company, second factor or
    /// verified address until the caller sets them.
    pub fn fresh(
        project: ProjectId,
        email: String,
        name: String,
        password_hash: Option<String>,
        now: Timestamp,
    ) -> Self {
        User {
            id: UserId::generate(),
            project,
            email,
            username: None,
            name,
            first_name: None,
            last_name: None,
            company: None,
            role: Role::User,
            password_hash,
            email_verified_at: None,
            two_factor_enabled: false,
            two_factor: None,
            disabled: false,
            must_reset_password: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// A new password (its PHC string), which meets any reset an admin asked for.
    pub fn set_password(&mut self, hash: String) {
        self.password_hash = Some(hash);
        self.must_reset_password = false;
    }
}

/// One signed-in device: a refresh-token family and the access tokens minted from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub project: ProjectId,
    pub user_id: UserId,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The session ends here unless refreshed (each refresh moves it).
    pub expires_at: Timestamp,
}

/// A refresh token at rest: only its BLAKE3 digest identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub digest: [u8; 32],
    pub session_id: SessionId,
    pub user_id: UserId,
    pub project: ProjectId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Set once, when the token is exchanged for its successor.
    pub rotated: Option<Rotation>,
}

impl Session {
    /// A new session of `user`, live from `now` until `expires_at`.
    pub fn begin(
        user: &User,
        user_agent: Option<String>,
        ip: Option<String>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        Session {
            id: SessionId::generate(),
            project: user.project.clone(),
            user_id: user.id,
            user_agent,
            ip,
            created_at: now,
            last_seen_at: now,
            expires_at,
        }
    }
}

impl RefreshRecord {
    /// The not yet rotated refresh token `digest` of `session`.
    pub fn live(session: &Session, digest: [u8; 32], created_at: Timestamp, expires_at: Timestamp) -> Self {
        RefreshRecord {
            digest,
            session_id: session.id,
            user_id: session.user_id,
            project: session.project.clone(),
            created_at,
            expires_at,
            rotated: None,
        }
    }
}

/// What happened when a refresh token was exchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    pub at: Timestamp,
    /// The successor token, sealed under a key derived from the token this
    /// record describes: readable only by whoever presents that token again.
    pub sealed_successor: Vec<u8>,
}

/// An API key at rest: a keyed BLAKE3 digest of the key, never the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub project: ProjectId,
    pub user_id: UserId,
    pub name: String,
    /// The key's first characters, shown in lists so owners can tell keys apart.
    pub prefix: String,
    pub digest: [u8; 32],
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    /// `None`: never expires.
    pub expires_at: Option<Timestamp>,
    /// Written in batches, so it may lag by a few seconds.
    pub last_used_at: Option<Timestamp>,
}
