//! Seed `004` (a generic integration), written from its document: login by
//! username, refresh by `refreshToken`, logout's message, and the
//! `/api/v1/auth/keys` routes with their shapes and statuses.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, answer, spawn_with};

#[actix_web::test]
async fn a_client_of_the_generic_seed_works_unchanged() {
    let app = spawn_with(|s| s.token.key_usage_flush = Duration::from_millis(20)).await;
    // The account (seed 004 documents no register: made through the core API).
    let made = app
        .post(
            "/api/v1/auth/register",
            &json!({"email": "jane.doe@example.com", "username": "jane.doe", "password": PASSWORD, "name": "Jane"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);

    // Login: {username, password} -> {token, expires_in, user: {id, username, email}}.
    let login = app.post("/api/v1/auth/login", &json!({"username": "jane.doe", "password": PASSWORD})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert!(login.body["token"].is_string());
    assert_eq!(login.body["expires_in"], 3600);
    assert_eq!(login.body["user"]["username"], "jane.doe");
    assert_eq!(login.body["user"]["email"], "jane.doe@example.com");
    assert!(login.body["user"]["id"].is_string());
    let wrong = app.post("/api/v1/auth/login", &json!({"username": "jane.doe", "password": "not it"})).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body["error"].is_string(), "{}", wrong.body);

    // Refresh: {refreshToken} -> {token, expires_in}.
    let refresh_token = login.body["refresh_token"].as_str().unwrap();
    let refreshed = app.post("/api/v1/auth/refresh", &json!({"refreshToken": refresh_token})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(refreshed.body["token"].is_string() && refreshed.body["expires_in"] == 3600);
    let stale = app.post("/api/v1/auth/refresh", &json!({"refreshToken": "not-a-token"})).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert!(stale.body["error"].is_string());
    let token = refreshed.body["token"].as_str().unwrap().to_owned();

    // POST /auth/keys -> 201 {keyId, apiKey, name, createdAt}.
    let created = app.post_auth("/api/v1/auth/keys", &token, &json!({"name": "My Integration Key"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mut fields: Vec<&str> = created.body.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["apiKey", "createdAt", "keyId", "name"]);
    assert_eq!(created.body["name"], "My Integration Key");
    let key_id = created.body["keyId"].as_str().unwrap().to_owned();
    let api_key = created.body["apiKey"].as_str().unwrap().to_owned();
    // The name is optional.
    let unnamed = answer(app.client.post(app.url("/api/v1/auth/keys")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(unnamed.status, StatusCode::CREATED, "{}", unnamed.body);
    assert!(unnamed.body["name"].is_string());

    // The key works where keys work.
    assert_eq!(app.verify(&api_key).await.status, StatusCode::OK);

    // GET /auth/keys -> a bare array of {keyId, name, createdAt, lastUsed}.
    let listed = app.get("/api/v1/auth/keys", Some(&token)).await;
    assert_eq!(listed.status, StatusCode::OK);
    let keys = listed.body.as_array().expect("a bare array");
    assert_eq!(keys.len(), 2);
    let ours = keys.iter().find(|k| k["keyId"] == key_id.as_str()).unwrap();
    let mut fields: Vec<&str> = ours.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["createdAt", "keyId", "lastUsed", "name"]);
    assert!(ours["apiKey"].is_null(), "never the secret again");
    let mut used = false;
    for _ in 0..100 {
        let listed = app.get("/api/v1/auth/keys", Some(&token)).await;
        let ours = listed.body.as_array().unwrap().iter().find(|k| k["keyId"] == key_id.as_str()).unwrap().clone();
        if ours["lastUsed"].is_string() {
            used = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(used, "lastUsed follows use");
    // The same keys as the core API's.
    let core = app.get("/api/v1/auth/api-keys", Some(&token)).await;
    assert_eq!(core.body["api_keys"].as_array().unwrap().len(), 2);

    // DELETE /auth/keys/{keyId} -> 204, no body; then 404 "API key not found".
    let deleted =
        app.client.delete(app.url(&format!("/api/v1/auth/keys/{key_id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.bytes().await.unwrap().is_empty());
    assert_eq!(app.verify(&api_key).await.status, StatusCode::UNAUTHORIZED, "a deleted key stops at once");
    let again = app.delete_auth(&format!("/api/v1/auth/keys/{key_id}"), &token).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.body["error"], "API key not found");
    assert_eq!(again.body["code"], "not_found", "the core code inside the seed's shape");
    app.delete_auth("/api/v1/auth/keys/key_abc123", &token).await.assert_error(404, "not_found");
    // Keys need a signed-in user.
    let anonymous = app.get("/api/v1/auth/keys", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Logout: {"message": "Successfully logged out"}.
    let out = app.post_auth("/api/v1/auth/logout", &token, &json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body["message"], "Successfully logged out");
    let after = app.get("/api/v1/auth/keys", Some(&token)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.body["error"].is_string());
}
