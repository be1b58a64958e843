//! Body checks shared by every route: [`Check`] collects field problems and
//! turns them into one `validation_error` naming every bad field; the rules
//! for emails, passwords and codes are here once.
//!
//! Validation is pure: it never rate limits, reads state or calls a flow.
//! Handlers apply their rate limit first, then validate, then call the flow.

use serde::{Deserialize, Deserializer};

use super::ApiError;
use crate::account::{Fields, normalize_email, validate_password};
use crate::hashing::Password;

/// The longest code (TOTP, backup or email code) considered.
const MAX_CODE_BYTES: usize = 32;

/// A JSON body that may be left out: `None` for an empty (or blank) body,
/// the same errors as a required JSON body otherwise. (For routes whose
/// clients post nothing at all, such as a usernameless passkey sign-in.)
pub fn optional_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::from(&actix_web::error::JsonPayloadError::Deserialize(e)))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Collects field problems; `finish` turns any into one `validation_error`.
#[derive(Default)]
pub struct Check(Fields);

impl Check {
    /// Records a problem with `field`.
    pub fn problem(&mut self, field: &str, problem: &str) {
        self.0.insert(field.to_owned(), problem.to_owned());
    }

    /// The value of a field that must be present and non-empty.
    pub fn required<'a>(&mut self, field: &str, value: &'a Option<String>) -> Option<&'a str> {
        match value.as_deref() {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                self.problem(field, "is required");
                None
            }
        }
    }

    /// The value `result` holds, or its problem recorded against `field`.
    pub fn rule<T>(&mut self, field: &str, result: Result<T, &'static str>) -> Option<T> {
        result.map_err(|problem| self.problem(field, problem)).ok()
    }

    /// A required email address, normalized (trimmed, lower-cased).
    pub fn email(&mut self, field: &str, value: &Option<String>) -> Option<String> {
        let email = self.required(field, value)?;
        self.rule(field, normalize_email(email))
    }

    /// A required password within the length rules.
    pub fn password(&mut self, field: &str, value: &Option<String>, min_chars: usize) -> Option<Password> {
        let password = self.required(field, value)?;
        self.rule(field, validate_password(password, min_chars)).map(|()| Password::new(password.to_owned()))
    }

    /// A required code: a TOTP, backup or email code as typed.
    pub fn code(&mut self, field: &str, value: &Option<String>) -> Option<String> {
        let code = self.required(field, value)?;
        self.rule(field, code_shape(code))
    }

    /// The validated values, or one `validation_error` naming every bad field.
    pub fn finish<T>(self, values: Option<T>) -> Result<T, ApiError> {
        if !self.0.is_empty() {
            return Err(ApiError::fields(self.0));
        }
        values.ok_or_else(|| ApiError::internal("a checked field has no value"))
    }
}

/// A code as typed (TOTP, backup or email code): short text of letters,
/// digits, dashes and spaces, trimmed. Whether it is right is the flow's
/// business.
pub fn code_shape(code: &str) -> Result<String, &'static str> {
    let code = code.trim();
    let typed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == ' ';
    if code.is_empty() || code.len() > MAX_CODE_BYTES || !code.chars().all(typed) {
        return Err("must be a 6-digit code or a backup code");
    }
    Ok(code.to_owned())
}

/// The body of every route that takes a code: the 2FA routes (`code`, or
/// `totp_code` / `totpCode`) and the email-code routes (with `email`).
#[derive(Deserialize)]
pub struct CodeBody {
    pub email: Option<String>,
    #[serde(alias = "totpCode", alias = "totp_code")]
    pub code: Option<String>,
}

impl CodeBody {
    /// The code alone (the 2FA routes).
    pub fn code(&self) -> Result<String, ApiError> {
        let mut check = Check::default();
        let code = check.code("code", &self.code);
        check.finish(code)
    }

    /// The normalized email and the code (the email-code routes).
    pub fn email_and_code(&self) -> Result<(String, String), ApiError> {
        let mut check = Check::default();
        let email = check.email("email", &self.email);
        let code = check.code("code", &self.code);
        check.finish(email.zip(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_short_typed_text() {
        assert_eq!(code_shape(" 123456 "), Ok("123456".to_owned()));
        assert_eq!(code_shape("abcde-fghij"), Ok("abcde-fghij".to_owned()));
        for bad in ["", "   ", "12345!", "123456\u{0663}", &"1".repeat(33)] {
            assert!(code_shape(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let body = CodeBody { email: Some("not an email".into()), code: None };
        let Err(ApiError::Validation { fields, .. }) = body.email_and_code() else { panic!("not a validation error") };
        assert!(fields.contains_key("email") && fields.contains_key("code"), "{fields:?}");
    }
}
