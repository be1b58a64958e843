//! Passkeys (WebAuthn credentials) as stored, and the state of a WebAuthn
//! ceremony between its two requests.
//!
//! The store sees both as opaque bytes: what they mean (a `webauthn-rs`
//! credential, a registration or authentication state) is the flows'.

use serde::{Deserialize, Serialize};

use super::{PasskeyId, ProjectId, UserId};
use crate::clock::Timestamp;

/// One passkey of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRecord {
    pub id: PasskeyId,
    pub project: ProjectId,
    pub user_id: UserId,
    /// The authenticator's credential id: unique across every account of
    /// every project.
    pub credential_id: Vec<u8>,
    /// The name its owner gave it.
    pub name: String,
    /// The credential itself (public key, signature counter, backup flags),
    /// serialized by the flows.
    pub credential: Vec<u8>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}
