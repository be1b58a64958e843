//! Sign-in with an OpenID Connect ID token (`/auth/google`,
//! `/auth/oidc/{provider}`): which account a verified identity signs in.
//!
//! The account linked to (project, provider, `sub`) first; else, when the
//! provider vouches for the address (`email_verified: true`), the account
//! of that address, which is linked from then on; else a new account.
//!
//! Never: links an address the provider does not vouch for to an existing
//! account, or lets what was made on an unproven account survive its
//! owner proving the address this way (the same rule as a first email code).

use crate::account::{Identity, ProjectId, User, normalize_email, validate_name};
use crate::oidc::{OidcError, Provider, VerifiedIdentity};
use crate::shards::CreateUser;

use super::audit::kind;
use super::{AuthError, AuthService, ClientInfo, LoginOutcome};

impl AuthService {
    /// Signs in with `id_token` of the project's provider `provider`
    /// (`NotFound` if the project has none of that name).
    pub async fn oidc_login(
        &self,
        project: &ProjectId,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let settings = self.settings(project);
        let config = settings.oidc_providers.get(provider).ok_or(AuthError::NotFound)?;
        // Checked when the setting was written; a record from before that is refused here too.
        let provider = Provider::parse(provider, config).map_err(|_| AuthError::NotFound)?;
        let verified = match self.oidc.verify(&provider, id_token, nonce).await {
            Ok(verified) => verified,
            Err(OidcError::Refused(why)) => {
                self.count_login(project, "failure");
                tracing::info!(target: "security", event = "login_failed", method = "oidc", provider = %provider.name, reason = %why, "ID token refused");
                return Err(AuthError::InvalidIdToken);
            }
            Err(OidcError::Unavailable) => return Err(AuthError::ProviderUnavailable),
        };
        let how = format!("oidc:{}", provider.name);
        let user = self.account_of(project, &provider, verified, &client, &how).await?;
        if user.disabled {
            self.count_login(project, "disabled");
            return Err(AuthError::AccountDisabled);
        }
        if settings.require_email_verification && user.email_verified_at.is_none() {
            self.count_login(project, "unverified");
            return Err(AuthError::EmailNotVerified);
        }
        self.count_login(project, "success");
        tracing::info!(target: "security", event = "login_succeeded", user_id = %user.id, method = %how, "login succeeded");
        self.audit(kind::LOGIN_SUCCEEDED, project, Some(user.id), &client, Some(&how)).await;
        // Two-factor, when on, is asked for as after a password.
        self.sign_in(user, client).await
    }

    /// The account `verified` signs in: linked, found by a vouched-for
    /// address (and linked), or new (and linked).
    async fn account_of(
        &self,
        project: &ProjectId,
        provider: &Provider,
        verified: VerifiedIdentity,
        client: &ClientInfo,
        how: &str,
    ) -> Result<User, AuthError> {
        let name = provider.name.as_str();
        if let Some(linked) = self.store.find_identity(project, name, &verified.subject).await? {
            match self.store.find_user(linked.user_id).await? {
                Some(user) => return Ok(user),
                // The account went and its link stayed (an erase cut short): free the subject.
                None => {
                    self.store.delete_identity(&linked).await?;
                }
            }
        }
        let email = verified.email.as_deref().and_then(|e| normalize_email(e).ok());
        let Some(email) = email else {
            return Err(AuthError::Invalid(
                "id_token",
                "has no usable email claim: ask the provider for the email scope",
            ));
        };
        let existing = self.store.find_user_by_email(project, &email).await?;
        let user = match existing {
            Some(user) if verified.email_verified => {
                // Proving the address ends what an impostor may have made on it.
                self.mark_verified(user, client, false).await?
            }
            // An address the provider does not vouch for never reaches an existing account.
            Some(_) => return Err(AuthError::EmailTaken),
            None => {
                if !self.settings(project).allow_registration {
                    return Err(AuthError::Forbidden);
                }
                self.create_federated(project, &email, &verified, client, how).await?
            }
        };
        let identity = Identity {
            project: project.clone(),
            provider: name.to_owned(),
            subject: verified.subject.clone(),
            user_id: user.id,
            email: Some(email),
            created_at: self.clock.now(),
        };
        if !self.store.create_identity(identity.clone()).await? {
            // A racing sign-in of the same subject linked it first: that link decides.
            let linked =
                self.store.find_identity(project, name, &verified.subject).await?.ok_or(AuthError::InvalidIdToken)?;
            return self.store.find_user(linked.user_id).await?.ok_or(AuthError::InvalidIdToken);
        }
        tracing::info!(target: "security", event = "identity_linked", user_id = %user.id, provider = name, "identity linked");
        self.audit(kind::IDENTITY_LINKED, project, Some(user.id), client, Some(how)).await;
        Ok(user)
    }

    /// A new passwordless account for `verified`'s address.
    async fn create_federated(
        &self,
        project: &ProjectId,
        email: &str,
        verified: &VerifiedIdentity,
        client: &ClientInfo,
        how: &str,
    ) -> Result<User, AuthError> {
        let now = self.clock.now();
        let fallback = email.split('@').next().unwrap_or_default().to_owned();
        let name = verified.name.as_deref().and_then(|n| validate_name(n).ok()).unwrap_or(fallback);
        let mut user = User::fresh(project.clone(), email.to_owned(), name, None, now);
        user.email_verified_at = verified.email_verified.then_some(now);
        let user = self.shards.ask(&(project.clone(), email.to_owned()), CreateUser { user }).await?;
        tracing::info!(target: "security", event = "user_registered", user_id = %user.id, method = how, "user registered");
        self.audit(kind::USER_REGISTERED, project, Some(user.id), client, Some(how)).await;
        Ok(user)
    }
}
