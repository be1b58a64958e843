//! The web pages the gateway serves itself: the admin console under
//! `/console/` and the signed-in user's account page under `/account/`.
//!
//! Owns the pages' files, embedded in the binary at build time, and the
//! headers they are served with. The pages are clients of the JSON API
//! like any other: nothing here reads the store or checks a token.
//!
//! Every file but the two entry pages is served under a name carrying a
//! hash of its content (`api.1f2e3d4c5b6a.js`), so it may be cached for a
//! year; the entry pages are revalidated on every load and name the
//! current files. A file names another as `{{api.js}}`, replaced by that
//! file's hashed name when the table is built at start-up (a file's hash
//! covers the names it holds, so a change reaches every page that loads it).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use crate::http::{ApiError, AppState};

/// The files pages load, by the name other files use for them.
const FILES: &[(&str, &str)] = &[
    ("api.js", include_str!("assets/api.js")),
    ("ui.js", include_str!("assets/ui.js")),
    ("signin.js", include_str!("assets/signin.js")),
    ("account.js", include_str!("assets/account.js")),
    ("console.js", include_str!("assets/console.js")),
    ("style.css", include_str!("assets/style.css")),
    // From npm, pinned by `vendor/package-lock.json` (`scripts/vendor-pages --check`).
    ("qrcode.mjs", include_str!("vendor/qrcode.mjs")),
];

/// The entry pages, at `/console/` and `/account/`.
const CONSOLE: &str = include_str!("assets/console.html");
const ACCOUNT: &str = include_str!("assets/account.html");

/// Scripts and styles from the gateway only, and no inline script or
/// style; API calls to the gateway only; never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How long a hashed file may be kept: its name changes with its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The rendered pages and files, built once at start-up.
pub struct Pages {
    /// Hashed file name → (content type, content).
    files: HashMap<String, (&'static str, Bytes)>,
    console: Bytes,
    account: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    #[error("page file {0} names files that are missing or name each other in a circle")]
    Unresolved(String),
}

impl Pages {
    /// Renders every file: the files that name none first, then those
    /// naming only rendered ones, until all are.
    pub fn build() -> Result<Pages, PagesError> {
        let mut hashed: HashMap<&str, String> = HashMap::new();
        let mut files = HashMap::new();
        let mut pending: Vec<(&str, &str)> = FILES.to_vec();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|&(name, text)| match render(text, &hashed) {
                Some(body) => {
                    let hashed_name = hashed_name(name, body.as_bytes());
                    files.insert(hashed_name.clone(), (content_type(name), Bytes::from(body)));
                    hashed.insert(name, hashed_name);
                    false
                }
                None => true,
            });
            if pending.len() == before {
                return Err(PagesError::Unresolved(pending[0].0.to_owned()));
            }
        }
        let page = |name: &str, text: &str| {
            render(text, &hashed).map(Bytes::from).ok_or_else(|| PagesError::Unresolved(name.to_owned()))
        };
        Ok(Pages { console: page("console.html", CONSOLE)?, account: page("account.html", ACCOUNT)?, files })
    }
}

/// `text` with every `{{name}}` replaced by that file's hashed name
/// (pages write `assets/{{api.js}}`, files `./{{api.js}}`); `None` while
/// one of them is not rendered yet.
fn render(text: &str, hashed: &HashMap<&str, String>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}")? + start;
        out.push_str(&rest[..start]);
        out.push_str(hashed.get(&rest[start + 2..end])?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// `api.js` → `api.<first 12 hex digits of its BLAKE3>.js`.
fn hashed_name(name: &str, body: &[u8]) -> String {
    let hash = blake3::hash(body).to_hex();
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    format!("{stem}.{}.{extension}", &hash[..12])
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(to_folder))
        .route("/account", web::get().to(to_folder))
        .route("/console/", web::get().to(console))
        .route("/account/", web::get().to(account))
        .route("/console/assets/{file}", web::get().to(file))
        .route("/account/assets/{file}", web::get().to(file));
}

/// Every page answer: the policy, and no framing or sniffing.
fn page_response(cache: &'static str, content_type: &'static str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(StatusCode::OK);
    response
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static(cache)))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .insert_header((
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    response
}

/// `/console` → `/console/`, so the pages' relative file names resolve.
async fn to_folder(req: HttpRequest) -> HttpResponse {
    let folder = if req.path() == "/console" { "/console/" } else { "/account/" };
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, HeaderValue::from_static(folder))).finish()
}

async fn console(state: web::Data<AppState>) -> HttpResponse {
    page_response("no-cache", "text/html; charset=utf-8").body(state.pages.console.clone())
}

async fn account(state: web::Data<AppState>) -> HttpResponse {
    page_response("no-cache", "text/html; charset=utf-8").body(state.pages.account.clone())
}

async fn file(state: web::Data<AppState>, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (content_type, body) = state.pages.files.get(name.as_str()).ok_or(ApiError::NotFound)?;
    Ok(page_response(IMMUTABLE, content_type).body(body.clone()))
}

#[cfg(test)]
mod tests {
    use super::{Pages, render};
    use std::collections::HashMap;

    #[test]
    fn every_page_file_is_rendered_with_hashed_names() {
        let pages = Pages::build().unwrap();
        assert_eq!(pages.files.len(), super::FILES.len());
        for page in [&pages.console, &pages.account] {
            let text = std::str::from_utf8(page).unwrap();
            assert!(!text.contains("{{"), "a name left unreplaced");
            let named: Vec<&str> = text.split("assets/").skip(1).filter_map(|rest| rest.split('"').next()).collect();
            assert!(named.len() >= 2, "the page names its script and style sheet");
            for name in named {
                assert!(pages.files.contains_key(name), "{name} is not served");
            }
        }
        for (_, body) in pages.files.values() {
            assert!(!std::str::from_utf8(body).unwrap().contains("{{"));
        }
    }

    #[test]
    fn names_wait_for_their_files_and_unknown_names_never_resolve() {
        let mut hashed = HashMap::new();
        assert_eq!(render("import './{{a.js}}'", &hashed), None);
        hashed.insert("a.js", "a.0123456789ab.js".to_owned());
        assert_eq!(render("import './{{a.js}}'", &hashed).unwrap(), "import './a.0123456789ab.js'");
        assert_eq!(render("{{b.js}}", &hashed), None);
        assert_eq!(render("no names", &hashed).unwrap(), "no names");
    }
}
