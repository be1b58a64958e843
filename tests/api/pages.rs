//! The console and account pages as a browser fetches them: the entry
//! pages and every file they load, with the headers that keep them safe,
//! and nothing loaded from anywhere but the gateway.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::harness::spawn_app;

const CSP_PARTS: &[&str] = &[
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
];

fn assert_guarded(headers: &HeaderMap, what: &str) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    for part in CSP_PARTS {
        assert!(csp.split(';').any(|p| p.trim() == *part), "{what}: CSP {csp:?} lacks {part:?}");
    }
    assert!(!csp.contains("unsafe-"), "{what}: CSP {csp:?} allows unsafe sources");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
}

/// The values of `attribute="..."` in `text`.
fn attribute_values<'t>(text: &'t str, attribute: &str) -> Vec<&'t str> {
    let marker = format!("{attribute}=\"");
    text.match_indices(&marker).filter_map(|(at, _)| text[at + marker.len()..].split('"').next()).collect()
}

/// The files a script imports: `from "./name.js"`.
fn imports(script: &str) -> Vec<&str> {
    script.match_indices("from \"./").filter_map(|(at, m)| script[at + m.len()..].split('"').next()).collect()
}

/// Anything that would load from past the gateway: an absolute or
/// protocol-relative URL where a page or script loads one (an attribute, a
/// style sheet's `url()` or `@import`, a module import, a fetch). A URL in
/// a comment or an XML namespace loads nothing; the browser test checks
/// what was actually loaded.
fn external_reference(text: &str) -> Option<String> {
    let loads = ["src=\"", "href=\"", "url(", "url(\"", "from \"", "from '", "import(\"", "fetch(\"", "fetch(`"];
    let remote = ["http:", "https:", "//"];
    let found =
        loads.iter().flat_map(|load| remote.iter().map(move |url| format!("{load}{url}"))).find(|n| text.contains(n));
    found.or_else(|| text.contains("@import").then(|| "@import".to_owned()))
}

#[test]
fn outside_loads_are_found_and_mere_mentions_are_not() {
    for loads in [
        "<script src=\"https://cdn.example/x.js\">",
        "url(//fonts.example/a.woff)",
        "import x from \"https://esm.sh/x\"",
    ] {
        assert!(external_reference(loads).is_some(), "{loads}");
    }
    for mentions in ["// URL: http://www.d-project.com/", "xmlns=\"http://www.w3.org/2000/svg\"", "fetch(path)"] {
        assert_eq!(external_reference(mentions), None, "{mentions}");
    }
}

#[actix_web::test]
async fn pages_and_their_files_are_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    for folder in ["/console/", "/account/"] {
        let page = app.client.get(app.url(folder)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{folder}");
        let headers = page.headers().clone();
        assert_guarded(&headers, folder);
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["cache-control"], "no-cache", "{folder}: the entry page is revalidated");
        let html = page.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{folder}");
        assert!(!html.contains("{{"), "{folder}: a file name left unreplaced");
        assert!(external_reference(&html).is_none(), "{folder} names an outside resource");
        // No inline script or style: every script has a source, no handler attributes, no style attributes.
        for script in html.match_indices("<script").map(|(at, _)| html[at..].split('>').next().unwrap()) {
            assert!(script.contains(" src=\""), "{folder}: inline script {script}");
        }
        assert!(!html.contains("<style") && !html.contains(" style=\"") && !html.contains(" onclick="), "{folder}");

        // Every file the page loads, and every file those import.
        let mut pending: Vec<String> = attribute_values(&html, "src")
            .into_iter()
            .chain(attribute_values(&html, "href"))
            .map(String::from)
            .collect();
        pending.retain(|url| url.starts_with("assets/"));
        assert!(pending.len() >= 2, "{folder} loads its script and style sheet: {pending:?}");
        let mut seen = BTreeSet::new();
        while let Some(url) = pending.pop() {
            if !seen.insert(url.clone()) {
                continue;
            }
            let name = url.strip_prefix("assets/").unwrap();
            let hash = name.split('.').nth(1).unwrap_or("");
            assert!(hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{url}: not a hashed name");
            let file = app.client.get(app.url(&format!("{folder}{url}"))).send().await.unwrap();
            assert_eq!(file.status(), StatusCode::OK, "{folder}{url}");
            let headers = file.headers().clone();
            assert_guarded(&headers, &url);
            assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable", "{url}");
            let text = file.text().await.unwrap();
            assert!(external_reference(&text).is_none(), "{url} names an outside resource");
            assert!(!text.contains("{{"), "{url}: a file name left unreplaced");
            if name.ends_with(".js") || name.ends_with(".mjs") {
                assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
                assert!(
                    !text.contains("localStorage") && !text.contains("sessionStorage"),
                    "{url} keeps tokens in storage"
                );
                pending.extend(imports(&text).into_iter().map(|import| format!("assets/{import}")));
            } else {
                assert_eq!(headers["content-type"], "text/css; charset=utf-8", "{url}");
            }
        }
        assert!(seen.len() >= 5, "{folder}: its script, the shared modules and the style sheet: {seen:?}");
    }
}

#[actix_web::test]
async fn folders_redirect_and_unknown_files_are_404() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (bare, folder) in [("/console", "/console/"), ("/account", "/account/")] {
        let answer = client.get(app.url(bare)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT, "{bare}");
        assert_eq!(answer.headers()["location"], folder);
    }
    for path in ["/console/assets/api.js", "/account/assets/api.000000000000.js", "/console/assets/..%2Fopenapi.yaml"] {
        let answer = app.get(path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.body["code"], "not_found", "{path}: the JSON error");
    }
}
