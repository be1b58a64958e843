//! Input rules for account fields. Every rule returns the problem as text for
//! the `fields` map of a `validation_error`, never an HTTP type.

use std::collections::BTreeMap;

/// Field name → problem, in a stable order.
pub type Fields = BTreeMap<String, String>;

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 1024;
const EMAIL_MAX_BYTES: usize = 254;
const NAME_MAX_CHARS: usize = 200;
const USERNAME_MIN_CHARS: usize = 3;
const USERNAME_MAX_CHARS: usize = 32;

/// Trimmed and lower-cased, or the problem with it.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("is required");
    }
    if email.len() > EMAIL_MAX_BYTES {
        return Err("must be at most 254 bytes");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("is not an email address");
    };
    let domain_ok = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not an email address");
    }
    Ok(email)
}

/// Lower-cased; 3 to 32 of `a-z 0-9 . _ -`, starting with a letter or digit,
/// and never shaped like an email (so login can tell the two apart).
pub fn normalize_username(raw: &str) -> Result<String, &'static str> {
    let username = raw.trim().to_lowercase();
    let count = username.chars().count();
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&count) {
        return Err("must be 3 to 32 characters");
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if !username.chars().all(allowed) || !username.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("may hold only a-z, 0-9, '.', '_' and '-', starting with a letter or digit");
    }
    Ok(username)
}

pub fn validate_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("is required");
    }
    if name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err("must be at most 200 printable characters");
    }
    Ok(name.to_owned())
}

/// `None` for an empty company, which clears it.
pub fn validate_company(raw: &str) -> Result<Option<String>, &'static str> {
    let company = raw.trim();
    if company.chars().count() > NAME_MAX_CHARS || company.chars().any(char::is_control) {
        return Err("must be at most 200 printable characters");
    }
    Ok((!company.is_empty()).then(|| company.to_owned()))
}

/// At least `min_chars` characters and at most 1024 bytes.
pub fn validate_password(password: &str, min_chars: usize) -> Result<(), &'static str> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Err("must be at most 1024 bytes");
    }
    if password.chars().count() < min_chars {
        return Err("is too short");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in ["", "ada", "@x.io", "ada@", "ada@.io", "a b@x.io", "ada@x..io"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn username_rules() {
        assert_eq!(normalize_username("Ada_L").unwrap(), "ada_l");
        for bad in ["ab", "_ada", "ada@x", "a".repeat(33).as_str()] {
            assert!(normalize_username(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn password_bounds_are_chars_then_bytes() {
        assert!(validate_password("1234567", 8).is_err());
        assert!(validate_password("12345678", 8).is_ok());
        assert!(validate_password("ééééééé", 8).is_err());
        assert!(validate_password(&"x".repeat(1024), 8).is_ok());
        assert!(validate_password(&"x".repeat(1025), 8).is_err());
    }
}
