//! Seed `000` (Cloudheed), written from its document: the `/v1/auth/...`
//! routes with the fields it shows, its `2fa/verify` that confirms the
//! setup, and login with `totp_code` inline.

use reqwest::StatusCode;
use serde_json::json;
use totp_rs::{Builder, Secret};

use crate::harness::spawn_app;
use portcullis::clock::Clock;

#[actix_web::test]
async fn a_cloudheed_client_works_unchanged() {
    let app = spawn_app().await;
    // Register {email, password, name, company} -> {token, user: {id, email, name}}.
    let body =
        json!({"email": "john@example.com", "password": "securepassword", "name": "John Doe", "company": "Acme Corp"});
    let registered = app.post("/v1/auth/register", &body).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    assert!(registered.body["token"].is_string());
    assert_eq!(registered.body["user"]["email"], "john@example.com");
    assert_eq!(registered.body["user"]["name"], "John Doe");
    assert!(registered.body["user"]["id"].is_string());

    // Login -> {token, refresh_token, user: {id, email, name, two_factor_enabled}}.
    let credentials = json!({"email": "john@example.com", "password": "securepassword"});
    let login = app.post("/v1/auth/login", &credentials).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["two_factor_enabled"], false);
    let token = login.body["token"].as_str().unwrap().to_owned();

    // Refresh {refresh_token} -> {token, refresh_token}.
    let refreshed = app.post("/v1/auth/refresh", &json!({"refresh_token": login.body["refresh_token"]})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(refreshed.body["token"].is_string() && refreshed.body["refresh_token"].is_string());

    // Me: the fields the document shows.
    let me = app.get("/v1/auth/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    for field in ["id", "email", "name", "company", "two_factor_enabled", "email_verified_at", "created_at"] {
        assert!(me.body.get(field).is_some(), "{field}: {}", me.body);
    }
    assert_eq!(me.body["company"], "Acme Corp");

    // API keys: create {name, scopes, expires_in}, list, revoke.
    let key = json!({"name": "Production Key", "scopes": ["databases:read", "databases:write"], "expires_in": "365d"});
    let created = app.post_auth("/v1/auth/api-keys", &token, &key).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for field in ["api_key", "id", "name", "prefix", "scopes", "expires_at"] {
        assert!(!created.body[field].is_null(), "{field}: {}", created.body);
    }
    let listed = app.get("/v1/auth/api-keys", Some(&token)).await;
    let keys = listed.body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for field in ["id", "name", "prefix", "scopes", "last_used_at", "expires_at", "created_at"] {
        assert!(keys[0].get(field).is_some(), "{field}: {}", listed.body);
    }
    let id = created.body["id"].as_str().unwrap();
    let revoked = app.delete_auth(&format!("/v1/auth/api-keys/{id}"), &token).await;
    assert_eq!(revoked.body["message_code"], "api_key_revoked", "{}", revoked.body);

    // 2FA: setup, then 2fa/verify {code} confirms it.
    let setup = app.post_auth("/v1/auth/2fa/setup", &token, &json!({})).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert!(setup.body["qr_code_url"].as_str().unwrap().starts_with("otpauth://totp/"));
    let secret = Secret::try_from_base32(setup.body["secret"].as_str().unwrap()).unwrap().as_bytes().to_vec();
    let totp = Builder::new().with_secret(secret).build().unwrap();
    let code = |step: i64| totp.generate(u64::try_from(app.clock.now().as_secs() + step * 30).unwrap()).to_string();
    let verified = app.post_auth("/v1/auth/2fa/verify", &token, &json!({"code": code(0)})).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["message_code"], "2fa_enabled");
    assert_eq!(verified.body["backup_codes"].as_array().unwrap().len(), 10);
    // The same account through the core API: 2FA is on.
    assert_eq!(app.get("/api/v1/auth/2fa/status", Some(&token)).await.body["enabled"], true);

    // Login with totp_code inline.
    let with_code = json!({"email": "john@example.com", "password": "securepassword", "totp_code": code(1)});
    let login = app.post("/v1/auth/login", &with_code).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["two_factor_enabled"], true);
    let token = login.body["token"].as_str().unwrap().to_owned();
    // A token of the dialect works on the core API and the other way round.
    assert_eq!(app.me(&token).await.status, StatusCode::OK);
    let core = app.login("john@example.com", "securepassword").await;
    assert_eq!(core.body["two_factor_required"], true, "{}", core.body);

    // Disable {password, code}.
    let disabled =
        app.post_auth("/v1/auth/2fa/disable", &token, &json!({"password": "securepassword", "code": code(-1)})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(disabled.body["message_code"], "2fa_disabled");

    // An error keeps the core code; logout through one API holds on the other.
    let bad = app.post("/v1/auth/login", &json!({"email": "john@example.com", "password": "nope"})).await;
    bad.assert_error(401, "invalid_credentials");
    assert_eq!(app.post_auth("/v1/auth/logout", &token, &json!({})).await.status, StatusCode::OK);
    app.me(&token).await.assert_error(401, "invalid_token");
}
