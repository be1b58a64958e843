//! The OpenAPI document and the server agree: every documented operation is
//! routed (answers something other than 404/405 for a well-formed request).

use reqwest::{Method, StatusCode};

use crate::harness::spawn_app;

const OPENAPI: &str = include_str!("../../openapi.yaml");

/// (method, path) of every operation, read from the document's layout:
/// paths at two spaces of indent under `paths:`, methods at four.
fn operations() -> Vec<(Method, String)> {
    let mut operations = Vec::new();
    let mut in_paths = false;
    let mut path = None;
    for line in OPENAPI.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|rest| rest.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let (Some(p), Some(method)) = (&path, line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')))
            && ["get", "post", "put", "patch", "delete"].contains(&method)
            && let Ok(method) = method.to_uppercase().parse::<Method>()
        {
            operations.push((method, p.clone()));
        }
    }
    operations
}

#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let operations = operations();
    assert!(operations.len() >= 15, "parsed only {operations:?}");
    // Every /api/v1/auth operation is documented for any project too.
    for (method, path) in operations.iter().filter(|(_, p)| p.starts_with("/api/v1/auth")) {
        let twin = path.replacen("/api/v1/auth", "/api/v1/projects/{project_id}/auth", 1);
        assert!(operations.contains(&(method.clone(), twin.clone())), "{method} {twin} is not documented");
    }
    let app = spawn_app().await;
    // A page file's name carries its hash: the one the console page names first.
    let page = app.client.get(app.url("/console/")).send().await.unwrap().text().await.unwrap();
    let file = page.split("assets/").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned();
    for (method, path) in operations {
        let concrete = path
            .replace("{id}", "01900000-0000-7000-8000-000000000000")
            .replace("{project_id}", "default")
            .replace("{provider}", "google")
            .replace("{uid}", "01900000-0000-7000-8000-000000000001")
            .replace("{file}", &file);
        let mut request = app.client.request(method.clone(), app.url(&concrete));
        if method != Method::GET && method != Method::DELETE {
            request = request.json(&serde_json::json!({}));
        }
        let status = request.send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but answers {status}"
        );
    }
}
