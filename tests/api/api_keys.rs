//! API keys: create (shown once), list, revoke, scopes, expiry, last use.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use portcullis::clock::Clock;

use crate::harness::{answer, spawn_app, spawn_with};

#[actix_web::test]
async fn created_key_is_shown_once_and_listed_without_its_secret() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let created =
        app.create_key(&admin.access, json!({"name": "ci", "scopes": ["read", "write"], "expires_in": "30d"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let secret = created.body["api_key"].as_str().unwrap();
    assert!(secret.starts_with("pk_live_") && secret.len() == 51, "{secret}");
    assert!(secret.starts_with(created.body["prefix"].as_str().unwrap()));
    assert_eq!(created.body["scopes"], json!(["read", "write"]));
    let expires = created.body["expires_at"].as_str().unwrap();
    let expected = app.clock.now().plus(Duration::from_secs(30 * 86_400)).to_rfc3339();
    assert_eq!(expires, expected);
    for field in ["id", "name", "created_at"] {
        assert!(created.body[field].is_string(), "{field}");
    }
    let list = app.get("/api/v1/auth/api-keys", Some(&admin.access)).await;
    let keys = list.body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], created.body["id"]);
    assert_eq!(keys[0]["last_used_at"], serde_json::Value::Null);
    assert!(keys[0].get("api_key").is_none());
    assert!(!list.body.to_string().contains(secret), "secret listed");
    // A key without expiry says so.
    let forever = app.create_key(&admin.access, json!({"name": "forever"})).await;
    assert_eq!(forever.body["expires_at"], serde_json::Value::Null);
    assert_eq!(forever.body["scopes"], json!([]));
}

#[actix_web::test]
async fn bad_key_requests_are_validation_errors() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let cases = [
        (json!({"scopes": ["a"]}), "name"),
        (json!({"name": "k", "expires_in": "30m"}), "expires_in"),
        (json!({"name": "k", "expires_in": "soon"}), "expires_in"),
        (json!({"name": "k", "expires_in": "99999d"}), "expires_in"),
        (json!({"name": "k", "expires_in": "1d", "expires_at": "2099-01-01T00:00:00Z"}), "expires_in"),
        (json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"name": "k", "expires_at": "tomorrow"}), "expires_at"),
        (json!({"name": "k", "scopes": ["has space"]}), "scopes"),
        // Non-ASCII durations once panicked the worker (a byte split inside "é").
        (json!({"name": "x", "expires_in": "1é"}), "expires_in"),
        (json!({"name": "x", "expires_in": "é"}), "expires_in"),
        (json!({"name": "x", "expires_in": "３０d"}), "expires_in"),
    ];
    for (body, field) in cases {
        let answer = app.create_key(&admin.access, body.clone()).await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"][field].is_string(), "{body}: {}", answer.body);
    }
    let at = app.clock.now().plus(Duration::from_secs(3600)).to_rfc3339();
    let fine = app.create_key(&admin.access, json!({"name": "k", "expires_at": at})).await;
    assert_eq!(fine.status, StatusCode::CREATED);
    assert_eq!(fine.body["expires_at"], at.as_str());
}

#[actix_web::test]
async fn only_admins_grant_introspect() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let user = app.signed_up("user@example.com").await;
    app.create_key(&user.access, json!({"name": "k", "scopes": ["introspect"]})).await.assert_error(403, "forbidden");
    assert_eq!(
        app.create_key(&user.access, json!({"name": "k", "scopes": ["read"]})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.create_key(&admin.access, json!({"name": "k", "scopes": ["introspect"]})).await.status,
        StatusCode::CREATED
    );
}

#[actix_web::test]
async fn a_key_authenticates_key_ok_routes_only() {
    let app = spawn_app().await;
    let owner = app.signed_up("owner@example.com").await;
    let key = app.create_key(&owner.access, json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    let me = app.me(&key).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "owner@example.com");
    let by_header = app.client.get(app.url("/api/v1/auth/me")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    // Keys cannot manage keys, sessions or the profile.
    app.create_key(&key, json!({"name": "k2"})).await.assert_error(403, "forbidden");
    app.get("/api/v1/auth/api-keys", Some(&key)).await.assert_error(403, "forbidden");
    app.get("/api/v1/auth/sessions", Some(&key)).await.assert_error(403, "forbidden");
    app.put_auth("/api/v1/auth/me", &key, &json!({"name": "x"})).await.assert_error(403, "forbidden");
    app.me("pk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn revoked_key_stops_at_once_and_leaves_the_list() {
    let app = spawn_app().await;
    let owner = app.signed_up("owner@example.com").await;
    let other = app.signed_up("other@example.com").await;
    let created = app.create_key(&owner.access, json!({"name": "k"})).await;
    let (key, id) = (created.body["api_key"].as_str().unwrap(), created.body["id"].as_str().unwrap());
    assert_eq!(app.verify(key).await.status, StatusCode::OK);
    app.delete_auth(&format!("/api/v1/auth/api-keys/{id}"), &other.access).await.assert_error(404, "not_found");
    let revoked = app.delete_auth(&format!("/api/v1/auth/api-keys/{id}"), &owner.access).await;
    assert_eq!(revoked.body, json!({"message_code": "api_key_revoked", "message": "API key revoked"}));
    app.verify(key).await.assert_error(401, "invalid_token");
    app.me(key).await.assert_error(401, "invalid_token");
    let list = app.get("/api/v1/auth/api-keys", Some(&owner.access)).await;
    assert_eq!(list.body["api_keys"], json!([]));
    app.delete_auth(&format!("/api/v1/auth/api-keys/{id}"), &owner.access).await.assert_error(404, "not_found");
    app.delete_auth("/api/v1/auth/api-keys/nope", &owner.access).await.assert_error(404, "not_found");
}

#[actix_web::test]
async fn expired_key_fails_even_when_cached() {
    let app = spawn_app().await;
    let owner = app.signed_up("owner@example.com").await;
    let key = app.create_key(&owner.access, json!({"name": "k", "expires_in": "1h"})).await.body["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.verify(&key).await.status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(3601));
    app.verify(&key).await.assert_error(401, "token_expired");
}

#[actix_web::test]
async fn last_use_is_written_in_batches() {
    let app = spawn_with(|s| s.token.key_usage_flush = Duration::from_millis(50)).await;
    let owner = app.signed_up("owner@example.com").await;
    let key = app.create_key(&owner.access, json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&key).await.status, StatusCode::OK);
    let used_at = app.clock.now().to_rfc3339();
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        let list = app.get("/api/v1/auth/api-keys", Some(&owner.access)).await;
        seen = list.body["api_keys"][0]["last_used_at"].clone();
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, used_at.as_str());
}

#[actix_web::test]
async fn key_of_a_disabled_account_stops_at_once() {
    let app = spawn_app().await;
    let owner = app.signed_up("owner@example.com").await;
    let key = app.create_key(&owner.access, json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&key).await.status, StatusCode::OK);
    assert_eq!(app.verify(&owner.access).await.status, StatusCode::OK);
    let user_id = portcullis::account::UserId::parse(&owner.user_id).unwrap();
    app.auth.set_disabled(user_id, true).await.unwrap();
    app.verify(&key).await.assert_error(401, "invalid_token");
    app.verify(&owner.access).await.assert_error(401, "invalid_token");
    let raw = app.client.get(app.url("/api/v1/verify")).header("x-api-key", &key).send().await.unwrap();
    answer(raw).await.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn an_account_enabled_again_signs_in_at_once_and_its_keys_work_again() {
    let app = spawn_app().await;
    let owner = app.signed_up("owner@example.com").await;
    let key = app.create_key(&owner.access, json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&key).await.status, StatusCode::OK);
    let user_id = portcullis::account::UserId::parse(&owner.user_id).unwrap();
    app.auth.set_disabled(user_id, true).await.unwrap();
    app.verify(&key).await.assert_error(401, "invalid_token");
    app.auth.set_disabled(user_id, false).await.unwrap();
    // The revocation mark of the disabled account must not refuse what comes after it.
    let fresh = app.logged_in("owner@example.com").await;
    assert_eq!(app.me(&fresh.access).await.status, StatusCode::OK);
    assert_eq!(app.verify(&fresh.access).await.status, StatusCode::OK);
    assert_eq!(app.verify(&key).await.status, StatusCode::OK, "disabling suspends keys; enabling restores them");
    // The sessions ended by the disabling stay ended.
    app.verify(&owner.access).await.assert_error(401, "invalid_token");
}
