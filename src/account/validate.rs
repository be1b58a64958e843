//! Input rules for account fields. Every rule returns the problem as text for
//! the `fields` map of a `validation_error`, never an HTTP type.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;

/// Field name → problem, in a stable order.
pub type Fields = BTreeMap<String, String>;

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 1024;
const EMAIL_MAX_BYTES: usize = 254;
const NAME_MAX_CHARS: usize = 200;
const USERNAME_MIN_CHARS: usize = 3;
const USERNAME_MAX_CHARS: usize = 32;

/// An address as one mailbox would be written: trimmed, in Unicode NFC and
/// lower-cased (so look-alike spellings of one address are one account), a
/// plain `local@domain` that `email_address` accepts, without display text,
/// quoting or a domain literal, and without a character that hides or
/// reorders text (control, format such as zero-width and bidi overrides,
/// private-use, unassigned, or any space).
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("is required");
    }
    if trimmed.len() > EMAIL_MAX_BYTES {
        return Err("must be at most 254 bytes");
    }
    if trimmed.chars().any(hides_text) {
        return Err("holds a character that is not allowed in an address");
    }
    let email: String = trimmed.nfc().collect::<String>().to_lowercase().nfc().collect();
    if email.len() > EMAIL_MAX_BYTES {
        return Err("must be at most 254 bytes");
    }
    let options = email_address::Options::default().without_display_text().without_domain_literal();
    let plain = email.split_once('@').is_some_and(|(local, domain)| {
        !local.contains('"') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.')
    });
    if !plain || email_address::EmailAddress::parse_with_options(&email, options).is_err() {
        return Err("is not an email address");
    }
    Ok(email)
}

/// A character that can make an address look like another or hide part of it.
fn hides_text(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.is_whitespace()
        || matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
                | GeneralCategory::Surrogate
        )
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

/// A name that may be left out (company, first or last name): `None` for
/// an empty one, which clears it.
pub fn validate_optional_name(raw: &str) -> Result<Option<String>, &'static str> {
    let name = raw.trim();
    if name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err("must be at most 200 printable characters");
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// "first last" of the parts there are, or `None` without either (seed
/// 003's clients send only the parts; the display name follows them).
pub fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(" "))
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
        for bad in ["", "ada", "@x.io", "ada@", "ada@.io", "a b@x.io", "ada@x..io", "ada@x.io.", "a@b@x.io"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn hostile_addresses_are_refused() {
        for bad in [
            "a\u{202e}@x.io",
            "a\u{2066}b@x.io",
            "a\u{200b}@x.io",
            "a\u{200d}b@x.io",
            "a\u{feff}@x.io",
            "a\u{0007}@x.io",
            "\"quoted\"@x.io",
            "\"a b\"@x.io",
            "a,b@x.io",
            "a<b>@x.io",
            "Ada <ada@x.io>",
            "ada@[127.0.0.1]",
            "a\u{e000}@x.io",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn look_alike_spellings_are_one_address() {
        // "é" precomposed, and "e" with a combining acute accent.
        let composed = normalize_email("Jos\u{e9}@Example.com").unwrap();
        assert_eq!(normalize_email("jose\u{301}@example.COM").unwrap(), composed);
        assert_eq!(composed, "jos\u{e9}@example.com");
        assert_eq!(normalize_email("a+tag@x.io").unwrap(), "a+tag@x.io");
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
