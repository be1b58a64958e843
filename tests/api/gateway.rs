//! `/introspect` (RFC 7662) and `/verify` (forward auth).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, answer, spawn_app};

#[actix_web::test]
async fn introspect_answers_an_active_access_token() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let key = app.introspect_key(&admin.access).await;
    app.post(
        "/api/v1/auth/register",
        &json!({"email": "u@example.com", "password": PASSWORD, "name": "U", "username": "ursula"}),
    )
    .await;
    let user = app.logged_in("u@example.com").await;
    let introspected = app.introspect(&key, &user.access).await;
    assert_eq!(introspected.status, StatusCode::OK);
    assert_eq!(introspected.header("cache-control"), Some("no-store"));
    let body = &introspected.body;
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], user.user_id.as_str());
    assert_eq!(body["aud"], "default");
    assert_eq!(body["token_type"], "access_token");
    assert_eq!(body["role"], "user");
    assert_eq!(body["username"], "ursula");
    assert_eq!(body["scope"], "openid profile email");
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    assert!(body["sid"].is_string());
    // JSON bodies work as well as forms.
    let json_body =
        app.client.post(app.url("/api/v1/introspect")).bearer_auth(&key).json(&json!({"token": user.access}));
    let json_answer = answer(json_body.send().await.unwrap()).await;
    assert_eq!(json_answer.body, *body);
}

#[actix_web::test]
async fn introspect_answers_an_api_key() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let key = app.introspect_key(&admin.access).await;
    let service = app.create_key(&admin.access, json!({"name": "svc", "scopes": ["orders:read"]})).await;
    let service_key = service.body["api_key"].as_str().unwrap();
    let body = app.introspect(&key, service_key).await.body;
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "api_key");
    assert_eq!(body["scope"], "orders:read");
    assert_eq!(body["sub"], admin.user_id.as_str());
    assert!(body.get("exp").is_none(), "a key without expiry has no exp: {body}");
}

#[actix_web::test]
async fn anything_else_is_inactive_with_200() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let key = app.introspect_key(&admin.access).await;
    let user = app.signed_up("u@example.com").await;
    for token in ["garbage", "a.b.c", "pk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &user.refresh] {
        let answer = app.introspect(&key, token).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, json!({"active": false}), "{token}");
    }
    app.post_auth("/api/v1/auth/logout", &user.access, &json!({})).await;
    assert_eq!(app.introspect(&key, &user.access).await.body, json!({"active": false}));
    let fresh = app.logged_in("u@example.com").await;
    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(app.introspect(&key, &fresh.access).await.body, json!({"active": false}));
}

#[actix_web::test]
async fn introspect_callers_need_a_key_with_the_introspect_scope() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let user = app.signed_up("u@example.com").await;
    let form = |auth: Option<&str>| {
        let mut request = app.client.post(app.url("/api/v1/introspect")).form(&[("token", user.access.as_str())]);
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        async move { answer(request.send().await.unwrap()).await }
    };
    form(None).await.assert_error(401, "unauthorized");
    form(Some("pk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await.assert_error(401, "invalid_token");
    // A signed-in user's own token is not a service credential.
    form(Some(&admin.access)).await.assert_error(403, "forbidden");
    let plain = app.create_key(&admin.access, json!({"name": "plain", "scopes": ["read"]})).await;
    form(Some(plain.body["api_key"].as_str().unwrap())).await.assert_error(403, "forbidden");
    let key = app.introspect_key(&admin.access).await;
    let missing = app.client.post(app.url("/api/v1/introspect")).bearer_auth(&key).form(&[("token_type_hint", "x")]);
    answer(missing.send().await.unwrap()).await.assert_error(400, "validation_error");
    let text = app.client.post(app.url("/api/v1/introspect")).bearer_auth(&key).body("token=x");
    answer(text.header("content-type", "text/plain").send().await.unwrap())
        .await
        .assert_error(415, "unsupported_media_type");
}

#[actix_web::test]
async fn verify_passes_identity_headers_for_tokens_and_keys() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/auth/register",
        &json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "username": "ada"}),
    )
    .await;
    let tokens = app.logged_in("a@example.com").await;
    let ok = app.verify(&tokens.access).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-auth-user-id"), Some(tokens.user_id.as_str()));
    assert_eq!(ok.header("x-auth-project"), Some("default"));
    assert_eq!(ok.header("x-auth-role"), Some("superadmin"));
    assert_eq!(ok.header("x-auth-scopes"), Some("openid profile email"));
    assert_eq!(ok.header("x-auth-username"), Some("ada"));
    assert!(ok.header("x-auth-session").is_some());
    let key = app.create_key(&tokens.access, json!({"name": "k", "scopes": ["a", "b"]})).await;
    let by_key = app.client.get(app.url("/api/v1/verify")).header("x-api-key", key.body["api_key"].as_str().unwrap());
    let by_key = answer(by_key.send().await.unwrap()).await;
    assert_eq!(by_key.status, StatusCode::OK);
    assert_eq!(by_key.header("x-auth-scopes"), Some("a b"));
    assert_eq!(by_key.header("x-auth-key-id"), key.body["id"].as_str());
    assert!(by_key.header("x-auth-session").is_none());
}

#[actix_web::test]
async fn verify_refuses_what_is_not_live() {
    let app = spawn_app().await;
    let first = app.signed_up("a@example.com").await;
    let second = app.logged_in("a@example.com").await;
    app.get("/api/v1/verify", None).await.assert_error(401, "unauthorized");
    app.verify("garbage").await.assert_error(401, "invalid_token");
    // Cached, then revoked by a password change in another session.
    assert_eq!(app.verify(&first.access).await.status, StatusCode::OK);
    let change = json!({"current_password": PASSWORD, "new_password": "another password"});
    assert_eq!(app.put_auth("/api/v1/auth/me/password", &second.access, &change).await.status, StatusCode::OK);
    app.verify(&first.access).await.assert_error(401, "invalid_token");
    assert_eq!(app.verify(&second.access).await.status, StatusCode::OK);
    // Cached, then revoked by logout.
    app.post_auth("/api/v1/auth/logout", &second.access, &json!({})).await;
    app.verify(&second.access).await.assert_error(401, "invalid_token");
}

/// A cached token's signature under another header or payload: the cache
/// finds the genuine token's entry by the signature's end, and the rest of
/// the token must still match it.
#[actix_web::test]
async fn a_cached_tokens_signature_does_not_pass_other_claims() {
    let app = spawn_app().await;
    let admin = app.signed_up("admin@example.com").await;
    let key = app.introspect_key(&admin.access).await;
    let user = app.signed_up("u@example.com").await;
    assert_eq!(app.verify(&user.access).await.status, StatusCode::OK);
    assert_eq!(app.introspect(&key, &user.access).await.body["active"], true);

    let parts: Vec<&str> = user.access.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = admin.user_id.clone().into();
    claims["role"] = "superadmin".into();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = [
        format!("{}.{payload}.{}", parts[0], parts[2]),
        format!("{}x.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}", parts[1], parts[2]),
        parts[2].to_owned(),
    ];
    for token in &tampered {
        app.verify(token).await.assert_error(401, "invalid_token");
        assert_eq!(app.introspect(&key, token).await.body, json!({"active": false}), "{token}");
    }
    let genuine = app.verify(&user.access).await;
    assert_eq!(genuine.status, StatusCode::OK);
    assert_eq!(genuine.header("x-auth-user-id"), Some(user.user_id.as_str()));
}

#[actix_web::test]
async fn gateway_routes_are_not_rate_limited() {
    let app = crate::harness::spawn_with(|s| {
        s.limits.rate_limit_enabled = true;
        s.limits.auth_rate = portcullis::settings::RateQuota { per_minute: 1, burst: 1 };
    })
    .await;
    let tokens = app.signed_up("a@example.com").await;
    for _ in 0..50 {
        assert_eq!(app.verify(&tokens.access).await.status, StatusCode::OK);
    }
}
