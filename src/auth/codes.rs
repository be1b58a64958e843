//! One-time email codes: passwordless login, password reset, email
//! verification, and the initial password of a passwordless account.
//!
//! A code is 6 random digits, stored only as a keyed digest (bound to the
//! project, purpose and address), single use, dead after 10 minutes or 5
//! wrong tries. `otp/send` does the same work and gives the same answer
//! whether or not the account exists: a code is always generated and stored;
//! only the mail depends on the account, and it is queued off the request path.

use std::time::Duration;

use crate::account::{CodePurpose, OneTimeCode, ProjectId, User};
use crate::hashing::Password;
use crate::mail::{Mail, html_escape};
use crate::shards::{ConsumeCode, CreateUser, Declined, EditUser, IssueCode, Issued, LockKey, UserEdit};
use crate::token::random_bytes;

use super::audit::kind;
use super::outcome::LoginOutcome;
use super::{AuthError, AuthService, ClientInfo, SessionCaller};

pub const CODE_TTL: Duration = Duration::from_secs(600);
pub const MAX_CODE_TRIES: u32 = 5;
/// A new code for the same address and purpose is mailed at most this often.
const RESEND_AFTER: Duration = Duration::from_secs(30);

/// Six uniformly random digits.
fn generate_code() -> String {
    // The largest multiple of 10^6 below 2^32: rejection keeps digits uniform.
    const LIMIT: u32 = 4_294_000_000;
    loop {
        let n = u32::from_be_bytes(random_bytes::<4>());
        if n < LIMIT {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

fn is_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// What the user sees: subject, plain text and HTML.
fn compose(project_name: &str, purpose: CodePurpose, to: &str, code: &str) -> Mail {
    let (subject, why) = match purpose {
        CodePurpose::Login => ("sign-in code", "sign in"),
        CodePurpose::Reset => ("password reset code", "reset your password"),
        CodePurpose::Verify => ("verification code", "verify your email address"),
    };
    let minutes = CODE_TTL.as_secs() / 60;
    let text = format!(
        "Your {project_name} {subject} is {code}\n\nEnter it to {why}. It expires in {minutes} minutes and works once.\n\
         If you did not ask for it, ignore this message: nothing changes without the code.\n\n{project_name}\n"
    );
    let name = html_escape(project_name);
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Your {name} {subject} is</p>\
         <p style=\"font-size:28px;font-weight:bold;letter-spacing:4px\">{code}</p>\
         <p>Enter it to {why}. It expires in {minutes} minutes and works once.</p>\
         <p>If you did not ask for it, ignore this message: nothing changes without the code.</p>\
         <p>{name}</p></body></html>"
    );
    Mail { to: to.to_owned(), subject: format!("Your {project_name} {subject}"), text, html }
}

impl AuthService {
    fn code_digest(&self, project: &ProjectId, purpose: CodePurpose, email: &str, code: &str) -> [u8; 32] {
        let parts: [&[u8]; 4] =
            [project.as_str().as_bytes(), purpose.as_str().as_bytes(), email.as_bytes(), code.as_bytes()];
        self.vault.digest("email code", &parts)
    }

    /// `otp/send`: mails a code if the account may use one. Answers the same
    /// either way.
    pub async fn send_code(&self, project: ProjectId, email: String, purpose: CodePurpose) -> Result<(), AuthError> {
        let now = self.clock.now();
        let user = self.store.find_user_by_email(&project, &email).await?;
        let deliver = match (&user, purpose) {
            (Some(user), _) if user.disabled => false,
            (Some(_), CodePurpose::Login | CodePurpose::Reset) => true,
            (Some(user), CodePurpose::Verify) => user.email_verified_at.is_none(),
            (None, CodePurpose::Login) => self.settings(&project).passwordless_signup,
            (None, _) => false,
        };
        let code = generate_code();
        let record = OneTimeCode {
            digest: self.code_digest(&project, purpose, &email, &code),
            project: project.clone(),
            purpose,
            subject: email.clone(),
            attempts: 0,
            created_at: now,
            expires_at: now.plus(CODE_TTL),
        };
        // Through the address's shard, where its codes are checked: a check
        // under way cannot write an old code back over this one.
        let issue = IssueCode { code: record, resend_after: RESEND_AFTER };
        if self.shards.ask(&(&project, &email), issue).await? != Issued::Stored {
            return Ok(());
        }
        if deliver {
            self.mailer.send(compose(&self.project_name(&project), purpose, &email, &code));
            tracing::info!(target: "security", event = "code_sent", purpose = purpose.as_str(), "one-time code queued");
        }
        Ok(())
    }

    /// Consumes the live code of (project, purpose, email) if `code` is it.
    /// A wrong code counts a try against the code (5 kill it) and a failed
    /// login against the account's lock, so fresh codes cannot be guessed
    /// at without limit; unknown addresses are counted and locked alike.
    /// Returns the account of the address as read before the check (callers
    /// need not read it again).
    async fn consume_code(
        &self,
        project: &ProjectId,
        purpose: CodePurpose,
        email: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Option<User>, AuthError> {
        let user = self.store.find_user_by_email(project, email).await?;
        // Code failures are counted apart from the password's: a locked
        // password never refuses a right code, and guessing codes never locks
        // the password (a code has its own 5 tries; a lock holds back new ones).
        let lock = LockKey::Codes(project.clone(), email.to_owned());
        let code = code.trim();
        let check = ConsumeCode {
            project: project.clone(),
            purpose,
            subject: email.to_owned(),
            digest: self.code_digest(project, purpose, email, code),
            max_attempts: MAX_CODE_TRIES,
        };
        let accepted = is_code(code) && self.shards.ask(&(project, email), check).await?;
        if accepted {
            self.record_success(&lock).await?;
            return Ok(user);
        }
        self.record_failure(&lock, project).await?;
        self.audit(kind::CODE_FAILED, project, user.map(|u| u.id), client, Some(purpose.as_str())).await;
        tracing::info!(target: "security", event = "code_failed", purpose = purpose.as_str(), "wrong or dead one-time code");
        Err(AuthError::InvalidCode)
    }

    /// Marks the address verified (the user proved they read its mail).
    ///
    /// The first proof ends whatever was made on the account before it:
    /// whoever registered an address they do not own (to take the account
    /// over once its owner proves it) loses every session and API key, and
    /// the password, which the owner then sets (`set-initial-password` or a
    /// reset). `keep_password` is for `register/verify` in a project that
    /// requires verification: there the password could not be used before
    /// the proof, and whoever verifies is the one who registered it.
    pub(super) async fn mark_verified(
        &self,
        user: User,
        client: &ClientInfo,
        keep_password: bool,
    ) -> Result<User, AuthError> {
        if user.email_verified_at.is_some() {
            return Ok(user);
        }
        let now = self.clock.now();
        let id = user.id;
        let clear_password = !keep_password && user.password_hash.is_some();
        let edit: UserEdit = Box::new(move |u: &mut User| {
            if u.email_verified_at.is_none() && clear_password {
                u.password_hash = None;
            }
            u.email_verified_at.get_or_insert(now);
            Ok(())
        });
        let user = self.shards.ask(&id, EditUser { user: id, edit }).await?;
        let (sessions, keys) = self.end_unverified_credentials(&user, clear_password, client).await?;
        self.audit(kind::EMAIL_VERIFIED, &user.project, Some(id), client, None).await;
        tracing::info!(target: "security", event = "email_verified", user_id = %id, revoked_sessions = sessions, revoked_api_keys = keys, password_cleared = clear_password, "address proven");
        Ok(user)
    }

    /// The audit event of what the first proof of an address ended:
    /// (sessions, API keys, whether the password was cleared).
    async fn audit_ended(&self, user: &User, (sessions, keys, cleared): (usize, usize, bool), client: &ClientInfo) {
        let detail = format!("sessions={sessions} api_keys={keys} password_cleared={cleared}");
        self.audit(kind::UNVERIFIED_CREDENTIALS_ENDED, &user.project, Some(user.id), client, Some(&detail)).await;
    }

    /// Revokes the sessions and API keys made before the address was proven,
    /// and audits what went.
    async fn end_unverified_credentials(
        &self,
        user: &User,
        password_cleared: bool,
        client: &ClientInfo,
    ) -> Result<(usize, usize), AuthError> {
        let sessions = self.revoke_sessions(user.id, None).await?;
        let keys = self.revoke_api_keys(user.id).await?;
        if sessions > 0 || keys > 0 || password_cleared {
            self.audit_ended(user, (sessions, keys, password_cleared), client).await;
        }
        Ok((sessions, keys))
    }

    /// `otp/login`: passwordless sign-in with a login code; creates the
    /// account when the project allows passwordless sign-up.
    pub async fn code_login(
        &self,
        project: ProjectId,
        email: String,
        code: &str,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let user = match self.consume_code(&project, CodePurpose::Login, &email, code, &client).await? {
            Some(user) => user,
            None if self.settings(&project).passwordless_signup => {
                self.create_passwordless(project, email, &client).await?
            }
            None => return Err(AuthError::InvalidCode),
        };
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        let user = self.mark_verified(user, &client, false).await?;
        self.count_login(&user.project, "success");
        tracing::info!(target: "security", event = "login_succeeded", user_id = %user.id, method = "email_code", "login succeeded");
        self.audit(kind::LOGIN_SUCCEEDED, &user.project, Some(user.id), &client, Some("email_code")).await;
        self.sign_in(user, client).await
    }

    async fn create_passwordless(
        &self,
        project: ProjectId,
        email: String,
        client: &ClientInfo,
    ) -> Result<User, AuthError> {
        let now = self.clock.now();
        let name = email.split('@').next().unwrap_or_default().to_owned();
        let user =
            User { email_verified_at: Some(now), ..User::fresh(project.clone(), email.clone(), name, None, now) };
        let user = self.shards.ask(&(project, email), CreateUser { user }).await?;
        tracing::info!(target: "security", event = "user_registered", user_id = %user.id, method = "email_code", "user registered");
        self.audit(kind::USER_REGISTERED, &user.project, Some(user.id), client, Some("email_code")).await;
        Ok(user)
    }

    /// `reset-password`: a reset code sets a new password and revokes every
    /// session and every API key of the account (recovery assumes whoever
    /// held them may not be the owner); returns how many keys went.
    pub async fn reset_password(
        &self,
        project: ProjectId,
        email: String,
        code: &str,
        new_password: Password,
        client: ClientInfo,
    ) -> Result<usize, AuthError> {
        self.hashing.admit()?;
        let user = self.consume_code(&project, CodePurpose::Reset, &email, code, &client).await?;
        let user = user.ok_or(AuthError::InvalidCode)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        let password_hash = {
            let _slot = self.hashing.account_slot(&LockKey::Account(user.id))?;
            self.hashing.hash(new_password).await?
        };
        let (id, was_verified, now) = (user.id, user.email_verified_at.is_some(), self.clock.now());
        // One write: the new password, and the address verified by the code.
        let edit: UserEdit = Box::new(move |u: &mut User| {
            u.set_password(password_hash);
            u.email_verified_at.get_or_insert(now);
            Ok(())
        });
        let user = self.shards.ask(&id, EditUser { user: id, edit }).await?;
        let revoked = self.revoke_sessions(id, None).await?;
        let revoked_keys = self.revoke_api_keys(id).await?;
        if !was_verified {
            // The first proof of the address: what came before it is gone (the
            // old password is replaced by the owner's).
            self.audit_ended(&user, (revoked, revoked_keys, true), &client).await;
            self.audit(kind::EMAIL_VERIFIED, &user.project, Some(id), &client, None).await;
        }
        // Recovery ends a password lock: the owner has proven the address.
        self.record_success(&LockKey::Account(id)).await?;
        self.audit(kind::PASSWORD_RESET, &user.project, Some(id), &client, None).await;
        tracing::warn!(target: "security", event = "password_reset", user_id = %id, revoked_sessions = revoked, revoked_api_keys = revoked_keys, "password reset");
        Ok(revoked_keys)
    }

    /// `register/verify`: confirms the address with the emailed code and signs in.
    pub async fn verify_registration(
        &self,
        project: ProjectId,
        email: String,
        code: &str,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let user = self.consume_code(&project, CodePurpose::Verify, &email, code, &client).await?;
        let user = user.ok_or(AuthError::InvalidCode)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        let keep_password = self.settings(&project).require_email_verification;
        let user = self.mark_verified(user, &client, keep_password).await?;
        self.sign_in(user, client).await
    }

    /// `me/set-initial-password`: only for accounts without a password.
    pub async fn set_initial_password(
        &self,
        caller: SessionCaller,
        new_password: Password,
        client: ClientInfo,
    ) -> Result<User, AuthError> {
        let user = self.me(caller.user_id).await?;
        if user.password_hash.is_some() {
            return Err(AuthError::PasswordAlreadySet);
        }
        let password_hash = {
            let _slot = self.hashing.account_slot(&LockKey::Account(user.id))?;
            self.hashing.hash(new_password).await?
        };
        let id = user.id;
        let edit: UserEdit = Box::new(move |u: &mut User| {
            if u.password_hash.is_some() {
                return Err(Declined::PasswordAlreadySet);
            }
            u.set_password(password_hash);
            Ok(())
        });
        let user = self.shards.ask(&id, EditUser { user: id, edit }).await?;
        self.audit(kind::INITIAL_PASSWORD_SET, &user.project, Some(id), &client, None).await;
        Ok(user)
    }

    /// Sends the verification code of a fresh registration.
    pub(super) async fn send_verification(&self, user: &User) -> Result<(), AuthError> {
        self.send_code(user.project.clone(), user.email.clone(), CodePurpose::Verify).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| generate_code()).collect();
        assert!(codes.iter().all(|c| is_code(c)));
        assert!(codes.len() > 190, "200 codes gave only {} distinct", codes.len());
    }

    #[test]
    fn mail_carries_the_code_and_the_project_name_in_both_bodies() {
        let mail = compose("Acme <Corp>", CodePurpose::Reset, "a@x.io", "012345");
        assert_eq!(mail.to, "a@x.io");
        assert!(mail.subject.contains("Acme <Corp>") && mail.subject.contains("password reset"));
        assert!(mail.text.contains("012345") && mail.text.contains("Acme <Corp>"));
        assert!(mail.html.contains("012345") && mail.html.contains("Acme &lt;Corp&gt;"));
        assert!(!mail.html.contains("<Corp>"), "the project name must be escaped in HTML");
    }
}
