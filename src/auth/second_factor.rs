//! Two-factor authentication: TOTP (RFC 6238 through `totp-rs`: SHA-1, 6
//! digits, 30 s steps, ±1 step), backup codes, and the challenge that
//! stands between a correct password and a session when 2FA is on.
//!
//! Secrets at rest: the TOTP secret is sealed with the vault (AEAD bound to
//! the user id); backup codes are keyed digests; a challenge token is
//! stateless (user, expiry and nonce under a keyed MAC) and single use.
//! Each accepted TOTP step, backup code and challenge is claimed once in the
//! store, so a replay fails on every node.

use std::time::Duration;

use subtle::ConstantTimeEq;
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

use crate::account::{ProjectId, TwoFactor, User, UserId};
use crate::clock::Timestamp;
use crate::hashing::Password;
use crate::shards::{Declined, EditUser, LockKey, UserEdit};
use crate::token::{b64url, b64url_decode, random_bytes};

use super::audit::kind;
use super::outcome::{LoginOutcome, TokenGrant};
use super::{AuthError, AuthService, ClientInfo, SessionCaller};

/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
const STEP_SECS: u64 = 30;
pub const BACKUP_CODE_COUNT: usize = 10;
/// Backup codes: 10 characters from an alphabet without look-alikes (~49 bits).
const BACKUP_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const BACKUP_CODE_LEN: usize = 10;
/// How long a login's 2FA challenge lasts.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
const CHALLENGE_VERSION: u8 = 1;
const CHALLENGE_BODY: usize = 1 + 16 + 8 + 16;

/// What `2fa/setup` hands out.
#[derive(Debug)]
pub struct TwoFactorSetup {
    /// Base32 (RFC 4648, no padding).
    pub secret: String,
    pub otpauth_url: String,
}

#[derive(Debug)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    pub backup_codes_remaining: usize,
}

/// Which second factor was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    BackupCode,
}

impl SecondFactor {
    fn as_str(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::BackupCode => "backup_code",
        }
    }
}

fn is_totp_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// A backup code as typed (any case, dashes and spaces ignored) in its
/// canonical form; `None` if it cannot be one.
fn normalize_backup_code(code: &str) -> Option<String> {
    let canonical: String =
        code.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_lowercase()).collect();
    let valid = canonical.len() == BACKUP_CODE_LEN && canonical.bytes().all(|b| BACKUP_ALPHABET.contains(&b));
    valid.then_some(canonical)
}

/// A fresh backup code, shown as `xxxxx-xxxxx`.
fn generate_backup_code() -> String {
    let mut code = String::with_capacity(BACKUP_CODE_LEN + 1);
    let mut produced = 0;
    while produced < BACKUP_CODE_LEN {
        for byte in random_bytes::<16>() {
            // Rejection sampling keeps every character equally likely.
            let limit = (256 / BACKUP_ALPHABET.len() * BACKUP_ALPHABET.len()) as u8;
            if byte >= limit || produced == BACKUP_CODE_LEN {
                continue;
            }
            if produced == BACKUP_CODE_LEN / 2 {
                code.push('-');
            }
            code.push(char::from(BACKUP_ALPHABET[usize::from(byte) % BACKUP_ALPHABET.len()]));
            produced += 1;
        }
    }
    code
}

impl AuthService {
    fn totp(&self, secret: &[u8], project: &ProjectId, account: &str) -> Result<Totp, AuthError> {
        // The otpauth label cannot hold ':' (an email's local part may); it
        // only names the entry in the authenticator app.
        Builder::new()
            .with_secret(secret.to_vec())
            .with_issuer(Some(self.project_name(project)))
            .with_account_name(account.replace(':', "_"))
            .build()
            .map_err(|e| AuthError::internal(format!("TOTP: {e}")))
    }

    fn open_secret(&self, user: &User, state: &TwoFactor) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        self.vault
            .open_sealed(user.id.0.as_bytes(), &state.sealed_secret)
            .ok_or_else(|| AuthError::internal("a TOTP secret does not open with this secrets key"))
    }

    fn backup_digest(&self, user: UserId, canonical: &str) -> [u8; 32] {
        self.vault.digest("backup code", &[user.0.as_bytes(), canonical.as_bytes()])
    }

    /// Ten fresh backup codes and their digests.
    fn backup_codes(&self, user: UserId) -> (Vec<String>, Vec<[u8; 32]>) {
        let codes: Vec<String> = (0..BACKUP_CODE_COUNT).map(|_| generate_backup_code()).collect();
        let digests = codes
            .iter()
            .filter_map(|c| normalize_backup_code(c))
            .map(|canonical| self.backup_digest(user, &canonical))
            .collect();
        (codes, digests)
    }

    /// Accepts `code` if it is the TOTP of a step within ±1 of now that was
    /// never accepted before for this user.
    async fn check_totp(&self, user: &User, state: &TwoFactor, code: &str) -> Result<bool, AuthError> {
        let secret = self.open_secret(user, state)?;
        let now = self.clock.now();
        let seconds = u64::try_from(now.as_secs()).unwrap_or(0);
        let Some(step) = self.totp(&secret, &user.project, &user.email)?.check(code, seconds) else {
            return Ok(false);
        };
        let claim = self.vault.digest("totp step", &[user.id.0.as_bytes(), &step.to_be_bytes()]);
        // Remember the step until it can no longer be presented (±1 step).
        let forget_at = Timestamp(i64::try_from((step + 3) * STEP_SECS * 1000).unwrap_or(i64::MAX));
        Ok(self.store.claim_once(claim, forget_at).await?)
    }

    /// Accepts `code` if it is one of the user's unused backup codes, and uses it up.
    async fn use_backup_code(&self, user: &User, state: &TwoFactor, code: &str) -> Result<bool, AuthError> {
        let Some(canonical) = normalize_backup_code(code) else {
            return Ok(false);
        };
        let digest = self.backup_digest(user.id, &canonical);
        // Compare against every stored digest, never stopping early.
        let found = state.backup_codes.iter().fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&digest));
        if !bool::from(found) {
            return Ok(false);
        }
        let forever = self.clock.now().plus(Duration::from_secs(10 * 365 * 86_400));
        if !self.store.claim_once(digest, forever).await? {
            return Ok(false);
        }
        let id = user.id;
        let edit: UserEdit = Box::new(move |u: &mut User| {
            if let Some(state) = u.two_factor.as_mut() {
                state.backup_codes.retain(|d| *d != digest);
            }
            Ok(())
        });
        self.shards.ask(&id, EditUser { user: id, edit }).await?;
        Ok(true)
    }

    /// Checks a second-factor code of a user with 2FA on: a TOTP (6 digits)
    /// or a backup code.
    async fn check_second_factor(&self, user: &User, code: &str) -> Result<Option<SecondFactor>, AuthError> {
        let Some(state) = user.two_factor.as_ref().filter(|s| s.enabled_at.is_some()) else {
            return Ok(None);
        };
        let code = code.trim();
        if is_totp_code(code) {
            return Ok(self.check_totp(user, state, code).await?.then_some(SecondFactor::Totp));
        }
        Ok(self.use_backup_code(user, state, code).await?.then_some(SecondFactor::BackupCode))
    }

    /// The login's second step, with the account's failed-login lock: a
    /// locked account is refused before the code is looked at, and a wrong
    /// code counts as a failed login.
    pub(super) async fn pass_second_factor(
        &self,
        user: &User,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let lock = LockKey::Account(user.id);
        self.reserve_attempt(&lock, &user.project).await?;
        if let Some(factor) = self.or_release(&lock, self.check_second_factor(user, code)).await? {
            tracing::info!(target: "security", event = "two_factor_passed", user_id = %user.id, factor = factor.as_str(), "second factor accepted");
            return Ok(());
        }
        self.count_login(&user.project, "two_factor_failure");
        self.record_failure(&lock, &user.project).await?;
        self.audit(kind::TWO_FACTOR_FAILED, &user.project, Some(user.id), client, Some("login")).await;
        tracing::info!(target: "security", event = "two_factor_failed", user_id = %user.id, "wrong second factor");
        Err(AuthError::InvalidCode)
    }

    /// Signs `user` in, or asks for the second factor first.
    pub(super) async fn sign_in(&self, user: User, client: ClientInfo) -> Result<LoginOutcome, AuthError> {
        if user.two_factor_enabled {
            return Ok(self.issue_challenge(user.id));
        }
        Ok(LoginOutcome::Signed(Box::new(self.start_session(user, client).await?)))
    }

    /// A challenge for `user`: stateless, MAC'd with the vault, expiring.
    pub(super) fn issue_challenge(&self, user: UserId) -> LoginOutcome {
        let expires_at = self.clock.now().plus(CHALLENGE_TTL);
        let mut token = Vec::with_capacity(CHALLENGE_BODY + 32);
        token.push(CHALLENGE_VERSION);
        token.extend_from_slice(user.0.as_bytes());
        token.extend_from_slice(&expires_at.0.to_be_bytes());
        token.extend_from_slice(&random_bytes::<16>());
        let mac = self.vault.digest("2fa challenge", &[&token]);
        token.extend_from_slice(&mac);
        LoginOutcome::TwoFactorRequired { challenge_token: b64url(&token), expires_in: CHALLENGE_TTL }
    }

    /// The user and expiry of a genuine challenge, and its single-use claim key.
    fn read_challenge(&self, presented: &str) -> Result<(UserId, Timestamp, [u8; 32]), AuthError> {
        let bytes = b64url_decode(presented).ok_or(AuthError::InvalidChallenge)?;
        if bytes.len() != CHALLENGE_BODY + 32 || bytes.first() != Some(&CHALLENGE_VERSION) {
            return Err(AuthError::InvalidChallenge);
        }
        let (body, mac) = bytes.split_at(CHALLENGE_BODY);
        if !bool::from(self.vault.digest("2fa challenge", &[body]).ct_eq(mac)) {
            return Err(AuthError::InvalidChallenge);
        }
        let user = uuid::Uuid::from_slice(&body[1..17]).map_err(|_| AuthError::InvalidChallenge)?;
        let expires_at: [u8; 8] = body[17..25].try_into().map_err(|_| AuthError::InvalidChallenge)?;
        let claim = self.vault.digest("2fa challenge used", &[body]);
        Ok((UserId(user), Timestamp(i64::from_be_bytes(expires_at)), claim))
    }

    /// `2fa/verify`: completes a login that answered `two_factor_required`.
    pub async fn verify_two_factor(
        &self,
        project: &ProjectId,
        challenge: &str,
        code: &str,
        client: ClientInfo,
    ) -> Result<TokenGrant, AuthError> {
        let (user_id, expires_at, claim) = self.read_challenge(challenge)?;
        if expires_at <= self.clock.now() {
            return Err(AuthError::ChallengeExpired);
        }
        let user = self.store.find_user(user_id).await?.ok_or(AuthError::InvalidChallenge)?;
        // A challenge of one project is not one of another's.
        if &user.project != project {
            return Err(AuthError::InvalidChallenge);
        }
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        if !user.two_factor_enabled {
            return Err(AuthError::InvalidChallenge);
        }
        self.pass_second_factor(&user, code, &client).await?;
        // Used only once, even by two requests racing with right codes.
        let lock = LockKey::Account(user.id);
        if !self.or_release(&lock, async { Ok(self.store.claim_once(claim, expires_at).await?) }).await? {
            self.release_attempt(&lock).await?;
            return Err(AuthError::InvalidChallenge);
        }
        self.count_login(&user.project, "success");
        self.audit(kind::LOGIN_SUCCEEDED, &user.project, Some(user.id), &client, Some("two_factor")).await;
        self.start_session(user, client).await
    }

    pub async fn two_factor_status(&self, user: UserId) -> Result<TwoFactorStatus, AuthError> {
        let user = self.me(user).await?;
        let remaining =
            user.two_factor.as_ref().filter(|_| user.two_factor_enabled).map_or(0, |s| s.backup_codes.len());
        Ok(TwoFactorStatus { enabled: user.two_factor_enabled, backup_codes_remaining: remaining })
    }

    /// `2fa/setup`: a new secret, pending until `2fa/enable` confirms it.
    pub async fn two_factor_setup(&self, user: UserId) -> Result<TwoFactorSetup, AuthError> {
        let current = self.me(user).await?;
        if current.two_factor_enabled {
            return Err(AuthError::AlreadyEnabled);
        }
        let secret = Zeroizing::new(random_bytes::<SECRET_BYTES>());
        let totp = self.totp(secret.as_slice(), &current.project, &current.email)?;
        let otpauth_url = totp.to_url().map_err(|e| AuthError::internal(format!("otpauth URL: {e}")))?;
        let pending = TwoFactor {
            sealed_secret: self.vault.seal(user.0.as_bytes(), secret.as_slice()),
            enabled_at: None,
            backup_codes: Vec::new(),
        };
        let edit: UserEdit = Box::new(move |u: &mut User| {
            if u.two_factor_enabled {
                return Err(Declined::AlreadyEnabled);
            }
            u.two_factor = Some(pending);
            Ok(())
        });
        self.shards.ask(&user, EditUser { user, edit }).await?;
        Ok(TwoFactorSetup { secret: totp.secret().to_base32(), otpauth_url })
    }

    /// `2fa/enable`: confirms the pending secret with a code from it; returns
    /// the backup codes (shown once).
    pub async fn two_factor_enable(
        &self,
        user: UserId,
        code: &str,
        client: ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let current = self.me(user).await?;
        if current.two_factor_enabled {
            return Err(AuthError::AlreadyEnabled);
        }
        let pending = current.two_factor.clone().ok_or(AuthError::TwoFactorNotSetUp)?;
        let code = code.trim();
        let lock = LockKey::Account(user);
        self.reserve_attempt(&lock, &current.project).await?;
        if !is_totp_code(code) || !self.or_release(&lock, self.check_totp(&current, &pending, code)).await? {
            self.record_failure(&lock, &current.project).await?;
            self.audit(kind::TWO_FACTOR_FAILED, &current.project, Some(user), &client, Some("enable")).await;
            return Err(AuthError::InvalidCode);
        }
        let (codes, digests) = self.backup_codes(user);
        let now = self.clock.now();
        let edit: UserEdit = Box::new(move |u: &mut User| {
            if u.two_factor_enabled {
                return Err(Declined::AlreadyEnabled);
            }
            // The secret the code was checked against must still be the pending one.
            match u.two_factor.as_mut() {
                Some(state) if state.sealed_secret == pending.sealed_secret => {
                    state.enabled_at = Some(now);
                    state.backup_codes = digests;
                    u.two_factor_enabled = true;
                    Ok(())
                }
                _ => Err(Declined::NotSetUp),
            }
        });
        self.or_release(&lock, async { Ok(self.shards.ask(&user, EditUser { user, edit }).await?) }).await?;
        self.record_success(&lock).await?;
        self.audit(kind::TWO_FACTOR_ENABLED, &current.project, Some(user), &client, None).await;
        tracing::info!(target: "security", event = "two_factor_enabled", user_id = %user, "two-factor enabled");
        Ok(codes)
    }

    /// `2fa/disable`: needs a current code, and the password of an account
    /// that has one (an account without one has only its code to give).
    pub async fn two_factor_disable(
        &self,
        caller: SessionCaller,
        password: Option<Password>,
        code: &str,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.me(caller.user_id).await?;
        if !user.two_factor_enabled {
            return Err(AuthError::TwoFactorNotEnabled);
        }
        if password.is_none() && user.password_hash.is_some() {
            return Err(AuthError::Invalid("password", "is required"));
        }
        let lock = self.check_password_and_code(&user, password, code, &client, "disable").await?;
        let edit: UserEdit = Box::new(|u: &mut User| {
            if !u.two_factor_enabled {
                return Err(Declined::NotEnabled);
            }
            u.two_factor = None;
            u.two_factor_enabled = false;
            Ok(())
        });
        let id = user.id;
        self.or_release(&lock, async { Ok(self.shards.ask(&id, EditUser { user: id, edit }).await?) }).await?;
        self.record_success(&lock).await?;
        self.audit(kind::TWO_FACTOR_DISABLED, &user.project, Some(id), &client, None).await;
        tracing::warn!(target: "security", event = "two_factor_disabled", user_id = %id, "two-factor disabled");
        Ok(())
    }

    /// A signed-in route's check of a second factor and, when given, the
    /// password (disable, regenerate): one reserved attempt on the account's
    /// lock; both are checked whatever the first says, and either failing is
    /// the same answer, `InvalidCredentials`, and one failure counted.
    /// Returns the lock key, for `record_success` once the action is done.
    async fn check_password_and_code(
        &self,
        user: &User,
        password: Option<Password>,
        code: &str,
        client: &ClientInfo,
        place: &'static str,
    ) -> Result<LockKey, AuthError> {
        let lock = LockKey::Account(user.id);
        self.reserve_attempt(&lock, &user.project).await?;
        let password_ok = match password {
            Some(password) => self.verify_reserved(&lock, password, user.password_hash.clone()).await?,
            None => true,
        };
        let code_ok = self.or_release(&lock, self.check_second_factor(user, code)).await?.is_some();
        if password_ok && code_ok {
            return Ok(lock);
        }
        self.record_failure(&lock, &user.project).await?;
        self.audit(kind::TWO_FACTOR_FAILED, &user.project, Some(user.id), client, Some(place)).await;
        tracing::info!(target: "security", event = "two_factor_failed", user_id = %user.id, place, "wrong password or second factor");
        Err(AuthError::InvalidCredentials)
    }

    /// `2fa/backup-codes/regenerate`: with a current code (and the password,
    /// checked when sent), new codes replace every old one.
    pub async fn regenerate_backup_codes(
        &self,
        user: UserId,
        password: Option<Password>,
        code: &str,
        client: ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let current = self.me(user).await?;
        if !current.two_factor_enabled {
            return Err(AuthError::TwoFactorNotEnabled);
        }
        let lock = self.check_password_and_code(&current, password, code, &client, "regenerate").await?;
        let (codes, digests) = self.backup_codes(user);
        let edit: UserEdit = Box::new(move |u: &mut User| match u.two_factor.as_mut() {
            Some(state) if u.two_factor_enabled => {
                state.backup_codes = digests;
                Ok(())
            }
            _ => Err(Declined::NotEnabled),
        });
        self.or_release(&lock, async { Ok(self.shards.ask(&user, EditUser { user, edit }).await?) }).await?;
        self.record_success(&lock).await?;
        self.audit(kind::BACKUP_CODES_REGENERATED, &current.project, Some(user), &client, None).await;
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_codes_look_right_and_normalize() {
        for _ in 0..50 {
            let code = generate_backup_code();
            assert_eq!(code.len(), BACKUP_CODE_LEN + 1);
            assert_eq!(code.as_bytes()[5], b'-');
            let canonical = normalize_backup_code(&code).unwrap();
            assert_eq!(normalize_backup_code(&code.to_uppercase()).unwrap(), canonical);
            assert_eq!(normalize_backup_code(&canonical).unwrap(), canonical);
        }
        assert!(normalize_backup_code("123456").is_none());
        assert!(normalize_backup_code("abcde-fghi1").is_none(), "1 is not in the alphabet");
    }

    #[test]
    fn only_six_digits_are_a_totp_code() {
        assert!(is_totp_code("012345"));
        assert!(!is_totp_code("12345"));
        assert!(!is_totp_code("1234567"));
        assert!(!is_totp_code("12345a"));
    }
}
