//! Projects (tenants): the record, the rules of its fields, its settings
//! with their defaults (`settings`), and the per-node directory every
//! request reads (`directory`), refreshed through the change feed.
//!
//! Owns what a project is and what a valid one looks like. Knows nothing
//! about HTTP or about who may change a project (that is `auth::admin`);
//! never reads the store on a request's path (the directory does, on its
//! own timer and on feed events).

pub mod directory;
pub mod settings;

pub use directory::{Directory, ProjectView};
pub use settings::{ProjectSettings, SettingsDefaults, SettingsOverrides, SettingsPatch, SettingsProblems};

use serde::{Deserialize, Serialize};

use crate::account::{ProjectId, UserId};
use crate::clock::Timestamp;

/// The longest project id (and the longest slug made from a name).
pub const MAX_ID_LEN: usize = 64;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_ENVIRONMENT_LEN: usize = 32;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// The environment of a project created without one.
pub const DEFAULT_ENVIRONMENT: &str = "production";

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub environment: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Only the settings set for this project; the rest are the node's defaults.
    pub settings: SettingsOverrides,
    /// Bumped by every change: a write names the version it read
    /// (`Store::replace_project`), so concurrent changes never lose one.
    pub version: u64,
    /// Deleted: refused everywhere, its id still taken until its data is gone.
    #[serde(default)]
    pub deleted: bool,
    /// The enabled superadmins (of the `default` project), kept with the
    /// record so that demoting, disabling or deleting one is checked and
    /// written at the version read: two admins racing cannot remove the
    /// last one. Empty until first needed (then read from the users).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superadmins: Vec<UserId>,
}

impl Project {
    /// A new, enabled project with no settings of its own.
    pub fn new(id: ProjectId, name: String, environment: String, description: Option<String>, now: Timestamp) -> Self {
        Project {
            id,
            name,
            environment,
            description,
            enabled: true,
            created_at: now,
            updated_at: now,
            settings: SettingsOverrides::default(),
            version: 1,
            deleted: false,
            superadmins: Vec::new(),
        }
    }

    /// The `default` project, as made at first start.
    pub fn default_project(now: Timestamp) -> Self {
        Project::new(ProjectId::default_project(), "Default".into(), DEFAULT_ENVIRONMENT.into(), None, now)
    }

    /// Whether its routes serve and its credentials verify.
    pub fn is_live(&self) -> bool {
        self.enabled && !self.deleted
    }
}

/// `a-z`, `0-9`, `-` and `_`, 1 to `max` bytes: URL-safe without escaping.
fn is_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A project id as given at create: URL-safe, at most `MAX_ID_LEN`.
pub fn valid_id(id: &str) -> bool {
    is_token(id, MAX_ID_LEN)
}

pub fn valid_environment(environment: &str) -> bool {
    is_token(environment, MAX_ENVIRONMENT_LEN)
}

/// The id a project named `name` gets when none is given: lower-case ASCII
/// letters and digits, every other run of characters one `_` ("Mobile App"
/// → `mobile_app`, as seed 002 shows), at most `MAX_ID_LEN`; `project`
/// when nothing is left.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.truncate(MAX_ID_LEN);
    let slug = slug.trim_end_matches('_');
    if slug.is_empty() { "project".to_owned() } else { slug.to_owned() }
}

/// The `n`th candidate for a slug already taken: `slug_2`, `slug_3`, ...,
/// cut so the whole stays within `MAX_ID_LEN`.
pub fn numbered(slug: &str, n: u32) -> String {
    let suffix = format!("_{n}");
    let keep = MAX_ID_LEN.saturating_sub(suffix.len()).min(slug.len());
    format!("{}{suffix}", &slug[..keep])
}

/// A name or description: trimmed, no control or format characters.
pub fn clean_text(text: &str, max_chars: usize) -> Option<String> {
    let text = text.trim();
    let refused = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    (text.chars().count() <= max_chars && !text.chars().any(refused)).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_bounded() {
        for good in ["default", "mobile_app", "a", "web-2", &"x".repeat(64)] {
            assert!(valid_id(good), "{good}");
        }
        for bad in ["", "Mobile", "a b", "a/b", "é", "a.b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn slugs_come_from_names() {
        assert_eq!(slug("Mobile App"), "mobile_app");
        assert_eq!(slug("New Project"), "new_project");
        assert_eq!(slug("  Über -- App!! "), "ber_app");
        assert_eq!(slug("日本"), "project");
        assert_eq!(slug(&"ab ".repeat(40)).len(), MAX_ID_LEN);
        assert_eq!(slug(&"abc ".repeat(40)).len(), MAX_ID_LEN - 1, "no trailing _");
        assert!(valid_id(&slug(&"ab ".repeat(40))));
        assert_eq!(numbered("mobile_app", 2), "mobile_app_2");
        let long = numbered(&"x".repeat(64), 12);
        assert_eq!(long.len(), MAX_ID_LEN);
        assert!(long.ends_with("_12") && valid_id(&long));
    }

    #[test]
    fn text_is_trimmed_and_refuses_hidden_characters() {
        assert_eq!(clean_text("  Mobile App ", 100).as_deref(), Some("Mobile App"));
        assert!(clean_text("a\u{202e}b", 100).is_none());
        assert!(clean_text("a\nb", 100).is_none());
        assert!(clean_text(&"x".repeat(101), 100).is_none());
    }
}
