//! Passkeys (WebAuthn): registering one on a signed-in account, signing in
//! with one (for a named account, or usernameless with a discoverable
//! credential), and listing, renaming and removing them.
//!
//! The ceremony itself is `webauthn-rs`'s; this file decides what is allowed
//! and keeps the state between a ceremony's two requests in the store
//! (`Store::put_challenge`), taken once (`Store::take_challenge`), so a
//! ceremony started on one node finishes on any other and a challenge is
//! single use everywhere.
//!
//! Never: tells from the login options whether an account or a passkey
//! exists (an unknown address gets the same answer, with fake credential
//! ids derived from the address), accepts a credential of another project
//! or another account than the one named, or lets a signature counter go
//! backwards.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::account::{PasskeyId, PasskeyRecord, ProjectId, User, UserId};
use crate::token::b64url;
use crate::token::vault::Vault;

use super::audit::kind;
use super::{AuthError, AuthService, ClientInfo, LoginOutcome, SessionCaller};

/// How long a ceremony may take between its options and its verify.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// Passkeys one account may hold.
pub const MAX_PASSKEYS_PER_USER: usize = 20;
/// The name a passkey gets when its owner gives none.
const DEFAULT_NAME: &str = "Passkey";

/// The relying party every project signs for: the gateway's public URL.
pub struct RelyingParty {
    webauthn: Webauthn,
    /// Fake credential ids for addresses with no passkey, the same for the
    /// same address on every node (keyed from the secrets key).
    fakes: WebauthnFakeCredentialGenerator<FakePasskeyDistribution>,
}

impl RelyingParty {
    /// The relying party of `public_url`: its host is the RP ID and its
    /// origin the one clients sign for.
    pub fn new(public_url: &str, vault: &Vault) -> anyhow::Result<Self> {
        let origin = Url::parse(public_url)?;
        let rp_id = origin.host_str().ok_or_else(|| anyhow::anyhow!("the public URL {public_url} has no host"))?;
        let webauthn =
            WebauthnBuilder::new(rp_id, &origin)
                .and_then(|builder| builder.timeout(CEREMONY_TTL).build())
                .map_err(|e| anyhow::anyhow!("the public URL {public_url} cannot be a WebAuthn relying party: {e}"))?;
        let key = vault.digest("passkey fake credential ids", &[]);
        let fakes = WebauthnFakeCredentialGenerator::new(&key).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(RelyingParty { webauthn, fakes })
    }
}

/// What a ceremony keeps between its two requests.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    Register { project: ProjectId, user: UserId, state: PasskeyRegistration },
    Login { project: ProjectId, expected: Expected, state: DiscoverableAuthentication },
}

/// Whose passkey a login may end with.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
enum Expected {
    /// Usernameless: any account of the project.
    Anyone,
    /// The account the address named.
    User(UserId),
    /// The address named no account with a passkey: nobody's.
    Nobody,
}

/// Options a browser takes as they are (`PublicKeyCredential.parse*OptionsFromJSON`
/// takes `public_key`), and the id to send back with the credential.
pub struct CeremonyOptions {
    pub challenge_id: String,
    pub public_key: Value,
}

/// A failed passkey sign-in is a wrong credential, whatever went wrong.
fn refused() -> AuthError {
    AuthError::InvalidCredentials
}

impl AuthService {
    /// `passkey/register/options`: creation options for the caller, who may
    /// not register an authenticator twice (`excludeCredentials`).
    pub async fn passkey_register_options(&self, caller: &SessionCaller) -> Result<CeremonyOptions, AuthError> {
        let user = self.me(caller.user_id).await?;
        let existing = self.passkeys_with_room(user.id).await?;
        let exclude = existing.into_iter().map(|p| p.credential_id).collect::<Vec<_>>();
        let (options, state) = self
            .relying_party
            .webauthn
            .start_passkey_registration(user.id.0, &user.email, &user.name, Some(exclude))
            .map_err(AuthError::internal)?;
        let mut options = serde_json::to_value(options).map_err(AuthError::internal)?;
        let public_key = &mut options["publicKey"];
        // Ask for a discoverable credential, so the passkey also signs in
        // without an address; an authenticator that cannot still registers.
        if let Some(selection) = public_key.get_mut("authenticatorSelection").and_then(Value::as_object_mut) {
            selection.insert("residentKey".into(), "preferred".into());
            selection.insert("requireResidentKey".into(), false.into());
        }
        public_key["rp"]["name"] = self.project_name(&user.project).into();
        let ceremony = Ceremony::Register { project: user.project.clone(), user: user.id, state };
        self.keep_ceremony(&ceremony, options["publicKey"].take()).await
    }

    /// `passkey/register/verify`: checks the authenticator's answer to the
    /// caller's ceremony and stores the passkey.
    pub async fn passkey_register_verify(
        &self,
        caller: &SessionCaller,
        challenge_id: &str,
        name: Option<String>,
        credential: &RegisterPublicKeyCredential,
        client: ClientInfo,
    ) -> Result<PasskeyRecord, AuthError> {
        let ceremony = self.take_ceremony(challenge_id).await?;
        let Some(Ceremony::Register { project, user, state }) = ceremony else {
            return Err(AuthError::Invalid("challenge_id", "is unknown, used or expired"));
        };
        if user != caller.user_id || project != caller.project {
            return Err(AuthError::Invalid("challenge_id", "is unknown, used or expired"));
        }
        let user = self.me(user).await?;
        let passkey = self.relying_party.webauthn.finish_passkey_registration(credential, &state).map_err(|e| {
            tracing::info!(target: "security", event = "passkey_registration_refused", user_id = %user.id, error = %e, "passkey registration refused");
            AuthError::Invalid("credential", "was not accepted by WebAuthn verification")
        })?;
        let record = PasskeyRecord {
            id: PasskeyId::generate(),
            project: user.project.clone(),
            user_id: user.id,
            credential_id: passkey.cred_id().to_vec(),
            name: name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            credential: serde_json::to_vec(&passkey).map_err(AuthError::internal)?,
            created_at: self.clock.now(),
            last_used_at: None,
        };
        self.passkeys_with_room(user.id).await?;
        if !self.store.create_passkey(record.clone()).await? {
            return Err(AuthError::Conflict(super::Conflict::PasskeyExists));
        }
        tracing::info!(target: "security", event = "passkey_registered", user_id = %user.id, passkey_id = %record.id, "passkey registered");
        let detail = format!("passkey={}", record.id);
        self.audit(kind::PASSKEY_REGISTERED, &user.project, Some(user.id), &client, Some(&detail)).await;
        Ok(record)
    }

    /// `user`'s passkeys, if there is room for one more.
    async fn passkeys_with_room(&self, user: UserId) -> Result<Vec<PasskeyRecord>, AuthError> {
        let existing = self.store.list_passkeys(user).await?;
        if existing.len() >= MAX_PASSKEYS_PER_USER {
            return Err(AuthError::LimitReached("at most 20 passkeys per user"));
        }
        Ok(existing)
    }

    /// `passkey/login/options`: request options for the account `email`
    /// names (its credentials listed), or for any discoverable credential
    /// of the project with no address. An address with no account or no
    /// passkey answers the same shape, with fake credential ids.
    pub async fn passkey_login_options(
        &self,
        project: &ProjectId,
        email: Option<&str>,
    ) -> Result<CeremonyOptions, AuthError> {
        let (options, state) =
            self.relying_party.webauthn.start_discoverable_authentication().map_err(AuthError::internal)?;
        let mut options = serde_json::to_value(options).map_err(AuthError::internal)?;
        let expected = match email {
            None => Expected::Anyone,
            Some(email) => {
                let (expected, ids) = self.credentials_of(project, email).await?;
                let allow = ids
                    .into_iter()
                    .map(|id| serde_json::json!({ "type": "public-key", "id": b64url(&id) }))
                    .collect::<Vec<_>>();
                options["publicKey"]["allowCredentials"] = Value::Array(allow);
                expected
            }
        };
        let ceremony = Ceremony::Login { project: project.clone(), expected, state };
        self.keep_ceremony(&ceremony, options["publicKey"].take()).await
    }

    /// Whose credentials a login for `email` lists, and their ids: the
    /// account's passkeys, or fake ones for an address that has none.
    async fn credentials_of(&self, project: &ProjectId, email: &str) -> Result<(Expected, Vec<Vec<u8>>), AuthError> {
        if let Some(user) = self.store.find_user_by_email(project, email).await? {
            let ids = self.store.list_passkeys(user.id).await?.into_iter().map(|p| p.credential_id).collect::<Vec<_>>();
            if !ids.is_empty() {
                return Ok((Expected::User(user.id), ids));
            }
        }
        let name = format!("{project}\u{0}{email}");
        let fakes = self.relying_party.fakes.generate(name.as_bytes()).map_err(AuthError::internal)?;
        Ok((Expected::Nobody, fakes.into_iter().map(|id| id.to_vec()).collect()))
    }

    /// `passkey/login/verify`: checks the assertion against the passkey it
    /// names and starts a session. Any failure of the ceremony (an unknown,
    /// used or expired challenge, an unknown credential, one of another
    /// project or account, a bad signature or origin, a counter that went
    /// backwards) is the same `InvalidCredentials`.
    pub async fn passkey_login_verify(
        &self,
        project: &ProjectId,
        challenge_id: &str,
        credential: &PublicKeyCredential,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let outcome = self.passkey_login(project, challenge_id, credential, &client).await;
        let user = match outcome {
            Ok(user) => user,
            Err(e) => {
                if matches!(e, AuthError::InvalidCredentials) {
                    self.count_login(project, "failure");
                }
                return Err(e);
            }
        };
        if user.disabled {
            self.count_login(project, "disabled");
            return Err(AuthError::AccountDisabled);
        }
        if self.settings(project).require_email_verification && user.email_verified_at.is_none() {
            self.count_login(project, "unverified");
            return Err(AuthError::EmailNotVerified);
        }
        // A passkey with user verification is two factors in one: no TOTP challenge follows.
        self.count_login(project, "success");
        tracing::info!(target: "security", event = "login_succeeded", user_id = %user.id, method = "passkey", "login succeeded");
        self.audit(kind::LOGIN_SUCCEEDED, project, Some(user.id), &client, Some("passkey")).await;
        Ok(LoginOutcome::Signed(Box::new(self.start_session(user, client).await?)))
    }

    /// The account a passkey assertion proves, its passkey's counter and
    /// flags updated.
    async fn passkey_login(
        &self,
        project: &ProjectId,
        challenge_id: &str,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        let Some(Ceremony::Login { project: started, expected, state }) = self.take_ceremony(challenge_id).await?
        else {
            return Err(refused());
        };
        let mut record = self.store.find_passkey(credential.get_credential_id()).await?.ok_or_else(refused)?;
        let owner_named = match &expected {
            Expected::Anyone => true,
            Expected::User(user) => *user == record.user_id,
            Expected::Nobody => false,
        };
        if &started != project || &record.project != project || !owner_named {
            return Err(refused());
        }
        // A user handle, when the authenticator sends one, names the same account.
        if credential.get_user_unique_id().is_some_and(|handle| handle != record.user_id.0.as_bytes()) {
            return Err(refused());
        }
        let mut passkey: Passkey = serde_json::from_slice(&record.credential).map_err(AuthError::internal)?;
        let result = match self
            .relying_party
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, &passkey)
        {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(target: "security", event = "passkey_counter_regressed", user_id = %record.user_id, passkey_id = %record.id, "passkey signature counter went backwards; login refused");
                let detail = format!("passkey={}", record.id);
                self.audit(kind::PASSKEY_COUNTER_REGRESSED, project, Some(record.user_id), client, Some(&detail)).await;
                return Err(refused());
            }
            Err(e) => {
                tracing::info!(target: "security", event = "login_failed", method = "passkey", error = %e, "passkey login failed");
                self.audit(kind::LOGIN_FAILED, project, Some(record.user_id), client, Some("passkey")).await;
                return Err(refused());
            }
        };
        passkey.update_credential(&result);
        record.credential = serde_json::to_vec(&passkey).map_err(AuthError::internal)?;
        record.last_used_at = Some(self.clock.now());
        // Removed while the ceremony ran: it no longer signs anyone in.
        self.store.update_passkey(record.clone()).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => refused(),
            e => e.into(),
        })?;
        self.store.find_user(record.user_id).await?.ok_or_else(refused)
    }

    /// The caller's passkeys, oldest first.
    pub async fn list_passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, AuthError> {
        Ok(self.store.list_passkeys(user).await?)
    }

    pub async fn rename_passkey(&self, user: UserId, id: PasskeyId, name: String) -> Result<PasskeyRecord, AuthError> {
        let mut record =
            self.store.list_passkeys(user).await?.into_iter().find(|p| p.id == id).ok_or(AuthError::NotFound)?;
        record.name = name;
        self.store.update_passkey(record.clone()).await?;
        Ok(record)
    }

    /// Removes one of the caller's passkeys; it signs nobody in from now on.
    pub async fn remove_passkey(
        &self,
        caller: &SessionCaller,
        id: PasskeyId,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let removed = self.store.delete_passkey(caller.user_id, id).await?.ok_or(AuthError::NotFound)?;
        tracing::info!(target: "security", event = "passkey_removed", user_id = %caller.user_id, passkey_id = %removed.id, "passkey removed");
        let detail = format!("passkey={}", removed.id);
        self.audit(kind::PASSKEY_REMOVED, &caller.project, Some(caller.user_id), &client, Some(&detail)).await;
        Ok(())
    }

    /// Stores `ceremony` for `CEREMONY_TTL` under a new random id.
    async fn keep_ceremony(&self, ceremony: &Ceremony, public_key: Value) -> Result<CeremonyOptions, AuthError> {
        let id = uuid::Builder::from_random_bytes(crate::token::random_bytes()).into_uuid();
        let state = serde_json::to_vec(ceremony).map_err(AuthError::internal)?;
        self.store.put_challenge(id, state, self.clock.now().plus(CEREMONY_TTL)).await?;
        Ok(CeremonyOptions { challenge_id: id.to_string(), public_key })
    }

    /// The ceremony kept under `challenge_id`, once; `None` if it is
    /// unknown, used or expired.
    async fn take_ceremony(&self, challenge_id: &str) -> Result<Option<Ceremony>, AuthError> {
        let Ok(id) = uuid::Uuid::try_parse(challenge_id) else {
            return Ok(None);
        };
        let Some(state) = self.store.take_challenge(id, self.clock.now()).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&state).map_err(AuthError::internal)?))
    }
}
