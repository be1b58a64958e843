//! An account's identity at an OpenID Connect provider: the provider's
//! subject (`sub`) for one project, linked to one account.

use serde::{Deserialize, Serialize};

use super::{ProjectId, UserId};
use crate::clock::Timestamp;

/// (project, provider, subject) is unique: one account per identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub project: ProjectId,
    /// The provider's name in the project's `oidc_providers` setting.
    pub provider: String,
    /// The provider's `sub` claim.
    pub subject: String,
    pub user_id: UserId,
    /// The address the provider gave when the link was made.
    pub email: Option<String>,
    pub created_at: Timestamp,
}
