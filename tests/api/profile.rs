//! `/auth/me` and `/auth/me/password`, and how bearer tokens are judged.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, spawn_app};

#[actix_web::test]
async fn me_needs_a_valid_unexpired_bearer() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    app.get("/api/v1/auth/me", None).await.assert_error(401, "unauthorized");
    let basic = app.client.get(app.url("/api/v1/auth/me")).basic_auth("a", Some("b")).send().await.unwrap();
    crate::harness::answer(basic).await.assert_error(401, "unauthorized");
    app.me("garbage").await.assert_error(401, "invalid_token");
    let mut tampered = tokens.access.clone();
    tampered.pop();
    tampered.push(if tokens.access.ends_with('A') { 'B' } else { 'A' });
    app.me(&tampered).await.assert_error(401, "invalid_token");
    app.me(&"x".repeat(5000)).await.assert_error(401, "invalid_token");
    app.clock.advance(Duration::from_secs(3601));
    app.me(&tokens.access).await.assert_error(401, "token_expired");
}

#[actix_web::test]
async fn cached_token_expires_too() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    // The first check caches it; the expiry must still hold on the cached path.
    assert_eq!(app.me(&tokens.access).await.status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(3601));
    app.me(&tokens.access).await.assert_error(401, "token_expired");
}

#[actix_web::test]
async fn profile_updates_apply_and_validate() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    app.post(
        "/api/v1/auth/register",
        &json!({"email": "b@example.com", "password": PASSWORD, "name": "B", "username": "taken"}),
    )
    .await;
    let updated = app
        .put_auth("/api/v1/auth/me", &tokens.access, &json!({"name": "Ada L", "username": "Ada", "company": "Engines"}))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["name"], "Ada L");
    assert_eq!(updated.body["username"], "ada");
    assert_eq!(updated.body["company"], "Engines");
    // Absent fields stay; null clears the optional ones.
    let cleared = app.put_auth("/api/v1/auth/me", &tokens.access, &json!({"company": null})).await;
    assert_eq!(cleared.body["company"], serde_json::Value::Null);
    assert_eq!(cleared.body["username"], "ada");
    assert_eq!(app.me(&tokens.access).await.body["name"], "Ada L");
    // The new username logs in; the old email still does.
    let by_name = app.post("/api/v1/auth/login", &json!({"username": "ada", "password": PASSWORD})).await;
    assert_eq!(by_name.status, StatusCode::OK);
    app.put_auth("/api/v1/auth/me", &tokens.access, &json!({"username": "taken"}))
        .await
        .assert_error(409, "username_taken");
    let bad = app.put_auth("/api/v1/auth/me", &tokens.access, &json!({"name": "", "username": "x y"})).await;
    bad.assert_error(400, "validation_error");
    assert!(bad.body["fields"]["name"].is_string() && bad.body["fields"]["username"].is_string());
}

#[actix_web::test]
async fn password_change_checks_the_old_and_revokes_other_sessions() {
    let app = spawn_app().await;
    let here = app.signed_up("a@example.com").await;
    let elsewhere = app.logged_in("a@example.com").await;
    let wrong = app
        .put_auth(
            "/api/v1/auth/me/password",
            &here.access,
            &json!({"current_password": "nope nope", "new_password": "a new password"}),
        )
        .await;
    wrong.assert_error(401, "invalid_credentials");
    let short = app
        .put_auth(
            "/api/v1/auth/me/password",
            &here.access,
            &json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    short.assert_error(400, "validation_error");
    let changed = app
        .put_auth(
            "/api/v1/auth/me/password",
            &here.access,
            &json!({"current_password": PASSWORD, "new_password": "a new password"}),
        )
        .await;
    assert_eq!(changed.body, json!({"message_code": "password_changed", "message": "Password changed"}));
    app.me(&elsewhere.access).await.assert_error(401, "invalid_token");
    app.refresh(&elsewhere.refresh).await.assert_error(401, "invalid_token");
    assert_eq!(app.me(&here.access).await.status, StatusCode::OK);
    app.login("a@example.com", PASSWORD).await.assert_error(401, "invalid_credentials");
    assert_eq!(app.login("a@example.com", "a new password").await.status, StatusCode::OK);
}
