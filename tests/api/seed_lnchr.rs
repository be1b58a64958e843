//! Seed `003` (lnchr), the parts landed so far, written from its document:
//! service keys at `/api/v1/settings/service-keys`, sent in the
//! `x-lnchr-key` header once `PORTCULLIS_API_KEY_HEADERS` names it.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{answer, spawn_app, spawn_with};

const KEYS: &str = "/api/v1/settings/service-keys";

#[actix_web::test]
async fn service_keys_are_api_keys_and_come_in_the_configured_headers() {
    let app = spawn_with(|s| s.http.api_key_headers = vec!["x-api-key".into(), "x-lnchr-key".into()]).await;
    let admin = app.signed_up("jane@example.com").await;

    // Create {name, expires_at?}: the key is shown once.
    let created = app
        .post_auth(KEYS, &admin.access, &json!({"name": "ci-cd-pipeline", "expires_at": "2030-12-31T00:00:00Z"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(created.body["expires_at"], "2030-12-31T00:00:00Z");
    let forever = app.post_auth(KEYS, &admin.access, &json!({"name": "terraform"})).await;
    assert_eq!(forever.status, StatusCode::CREATED, "{}", forever.body);
    assert!(forever.body["expires_at"].is_null(), "without expires_at a key never expires");

    // Listed here and on the core API alike.
    let listed = app.get(KEYS, Some(&admin.access)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["api_keys"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/api/v1/auth/api-keys", Some(&admin.access)).await.body["api_keys"], listed.body["api_keys"]);

    // Sent as x-lnchr-key: honoured by a key-ok route, /verify and /introspect.
    let with = |path: &str| app.client.get(app.url(path)).header("x-lnchr-key", &key);
    let me = answer(with("/api/v1/auth/me").send().await.unwrap()).await;
    assert_eq!(me.body["email"], "jane@example.com", "{}", me.body);
    assert_eq!(with("/api/v1/verify").send().await.unwrap().status(), StatusCode::OK);
    let introspect_key = app.introspect_key(&admin.access).await;
    let request = app
        .client
        .post(app.url("/api/v1/introspect"))
        .header("x-lnchr-key", &introspect_key)
        .form(&[("token", &admin.access)]);
    let introspected = answer(request.send().await.unwrap()).await;
    assert_eq!(introspected.body["active"], true, "{}", introspected.body);
    // X-API-Key still works.
    let classic = app.client.get(app.url("/api/v1/verify")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(classic.status(), StatusCode::OK);

    // Delete: it stops at once.
    let id = created.body["id"].as_str().unwrap();
    let deleted = app.delete_auth(&format!("{KEYS}/{id}"), &admin.access).await;
    assert_eq!(deleted.body["message_code"], "api_key_revoked", "{}", deleted.body);
    assert_eq!(with("/api/v1/verify").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.delete_auth(&format!("{KEYS}/{id}"), &admin.access).await.assert_error(404, "not_found");
    app.get(KEYS, None).await.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn a_header_that_is_not_configured_carries_no_key() {
    let app = spawn_app().await;
    let admin = app.signed_up("jane@example.com").await;
    let key =
        app.post_auth(KEYS, &admin.access, &json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    let refused = app.client.get(app.url("/api/v1/verify")).header("x-lnchr-key", &key).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}
