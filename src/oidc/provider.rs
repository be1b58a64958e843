//! A project's OpenID Connect providers, as its `oidc_providers` setting
//! names them: `{"<name>": {"issuer", "client_id" (one or a list),
//! "jwks_url"}}`, with Google's issuer and keys filled in for `google`.

use serde_json::Value;
use url::Url;

/// Google's issuers (its ID tokens carry either spelling) and key set.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

const MAX_CLIENT_IDS: usize = 10;
const MAX_TEXT: usize = 256;

/// One provider, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    /// `iss` must be exactly one of these.
    pub issuers: Vec<String>,
    /// `aud` must contain one of these (and `azp` be one, with several audiences).
    pub client_ids: Vec<String>,
    pub jwks_url: Url,
}

/// A provider name: 1 to 32 of `a-z 0-9 _ -`.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// HTTPS, or plain HTTP to a loopback host only (a provider on this machine).
fn secure_url(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(domain) => domain == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (url.scheme() == "https" || (url.scheme() == "http" && loopback)).then_some(url)
}

fn text(value: &Value, key: &str) -> Result<Option<String>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_TEXT => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string of 1 to {MAX_TEXT} characters")),
    }
}

impl Provider {
    /// The provider `name` configured as `value`; the problem otherwise.
    pub fn parse(name: &str, value: &Value) -> Result<Provider, String> {
        if !valid_name(name) {
            return Err("provider names are 1 to 32 of a-z 0-9 _ -".into());
        }
        let object = value.as_object().ok_or("must be an object")?;
        if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "issuer" | "client_id" | "jwks_url")) {
            return Err(format!("unknown key {unknown} (issuer, client_id, jwks_url)"));
        }
        let google = name == "google";
        let issuers = match text(value, "issuer")? {
            Some(issuer) => {
                if secure_url(&issuer).is_none() && !(google && issuer == GOOGLE_ISSUERS[1]) {
                    return Err("issuer must be an https URL".into());
                }
                if google && GOOGLE_ISSUERS.contains(&issuer.as_str()) {
                    GOOGLE_ISSUERS.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    vec![issuer]
                }
            }
            None if google => GOOGLE_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            None => return Err("issuer is required".into()),
        };
        let client_ids: Vec<String> = match value.get("client_id") {
            Some(Value::String(id)) => vec![id.clone()],
            Some(Value::Array(ids)) => ids.iter().map(|id| id.as_str().unwrap_or_default().to_owned()).collect(),
            _ => return Err("client_id is required: a string or a list of strings".into()),
        };
        if client_ids.is_empty()
            || client_ids.len() > MAX_CLIENT_IDS
            || client_ids.iter().any(|id| id.is_empty() || id.len() > MAX_TEXT)
        {
            return Err(format!("client_id must be 1 to {MAX_CLIENT_IDS} strings of 1 to {MAX_TEXT} characters"));
        }
        let jwks_url = match text(value, "jwks_url")? {
            Some(url) => secure_url(&url).ok_or("jwks_url must be an https URL (http only to a loopback host)")?,
            None if google => Url::parse(GOOGLE_JWKS_URL).map_err(|e| e.to_string())?,
            None => return Err("jwks_url is required".into()),
        };
        Ok(Provider { name: name.to_owned(), issuers, client_ids, jwks_url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn google_gets_its_issuers_and_keys() {
        let google = Provider::parse("google", &json!({"client_id": "web.apps.googleusercontent.com"})).unwrap();
        assert_eq!(google.issuers, GOOGLE_ISSUERS);
        assert_eq!(google.jwks_url.as_str(), GOOGLE_JWKS_URL);
        assert_eq!(google.client_ids, ["web.apps.googleusercontent.com"]);
        let custom =
            json!({"issuer": "https://idp.example", "client_id": ["a", "b"], "jwks_url": "https://idp.example/keys"});
        let okta = Provider::parse("okta", &custom).unwrap();
        assert_eq!(okta.issuers, ["https://idp.example"]);
        assert_eq!(okta.client_ids, ["a", "b"]);
        let local =
            json!({"issuer": "http://127.0.0.1:9000", "client_id": "a", "jwks_url": "http://127.0.0.1:9000/jwks"});
        assert!(Provider::parse("test", &local).is_ok(), "plain HTTP to loopback");
    }

    #[test]
    fn bad_providers_say_what_is_wrong() {
        let good = json!({"issuer": "https://idp.example", "client_id": "a", "jwks_url": "https://idp.example/keys"});
        assert!(Provider::parse("Bad Name", &good).unwrap_err().contains("names"));
        for (bad, problem) in [
            (json!({"client_id": "a", "jwks_url": "https://idp.example/keys"}), "issuer"),
            (json!({"issuer": "https://idp.example", "jwks_url": "https://idp.example/keys"}), "client_id"),
            (json!({"issuer": "https://idp.example", "client_id": [], "jwks_url": "https://x/k"}), "client_id"),
            (json!({"issuer": "https://idp.example", "client_id": [5], "jwks_url": "https://x/k"}), "client_id"),
            (json!({"issuer": "https://idp.example", "client_id": "a"}), "jwks_url"),
            (
                json!({"issuer": "https://idp.example", "client_id": "a", "jwks_url": "http://idp.example/k"}),
                "jwks_url",
            ),
            (json!({"issuer": "idp", "client_id": "a", "jwks_url": "https://idp.example/k"}), "issuer"),
            (
                json!({"issuer": "https://idp.example", "client_id": "a", "jwks_url": "https://x/k", "secret": 1}),
                "unknown",
            ),
            (json!("https://idp.example"), "object"),
        ] {
            let error = Provider::parse("okta", &bad).unwrap_err();
            assert!(error.contains(problem), "{bad}: {error}");
        }
    }
}
