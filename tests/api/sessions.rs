//! Logout and the sessions list: revocations take effect at once.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{answer, spawn_app};

#[actix_web::test]
async fn logout_stops_the_access_token_at_once() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    assert_eq!(app.me(&tokens.access).await.status, StatusCode::OK);
    let out = app.post_auth("/api/v1/auth/logout", &tokens.access, &json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body["message_code"], "logged_out");
    assert_eq!(out.body["message"], "Successfully logged out", "API.md's sentence for logout");
    app.me(&tokens.access).await.assert_error(401, "invalid_token");
    app.post_auth("/api/v1/auth/logout", &tokens.access, &json!({})).await.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn sessions_list_marks_the_current_one() {
    let app = spawn_app().await;
    let first = app.signed_up("a@example.com").await;
    let request = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "SessionsTest/1.0")
        .json(&json!({"email": "a@example.com", "password": crate::harness::PASSWORD}));
    let second = crate::harness::Tokens::from(&answer(request.send().await.unwrap()).await);
    let list = app.get("/api/v1/auth/sessions", Some(&second.access)).await;
    assert_eq!(list.status, StatusCode::OK);
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "SessionsTest/1.0");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    for session in sessions {
        for field in ["id", "user_agent", "ip", "created_at", "last_seen_at", "current"] {
            assert!(session.get(field).is_some(), "{field} missing: {session}");
        }
    }
    drop(first);
}

#[actix_web::test]
async fn revoking_one_session_stops_only_it() {
    let app = spawn_app().await;
    let first = app.signed_up("a@example.com").await;
    let second = app.logged_in("a@example.com").await;
    let list = app.get("/api/v1/auth/sessions", Some(&second.access)).await;
    let other_id = list.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    let revoked = app.delete_auth(&format!("/api/v1/auth/sessions/{other_id}"), &second.access).await;
    assert_eq!(revoked.body["message_code"], "session_revoked");
    app.me(&first.access).await.assert_error(401, "invalid_token");
    app.refresh(&first.refresh).await.assert_error(401, "invalid_token");
    assert_eq!(app.me(&second.access).await.status, StatusCode::OK);
    // Gone now, and never found again.
    app.delete_auth(&format!("/api/v1/auth/sessions/{other_id}"), &second.access).await.assert_error(404, "not_found");
    app.delete_auth("/api/v1/auth/sessions/not-an-id", &second.access).await.assert_error(404, "not_found");
}

#[actix_web::test]
async fn another_users_session_is_not_found() {
    let app = spawn_app().await;
    let alice = app.signed_up("alice@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let bobs = app.get("/api/v1/auth/sessions", Some(&bob.access)).await;
    let bob_session = bobs.body["sessions"][0]["id"].as_str().unwrap().to_owned();
    app.delete_auth(&format!("/api/v1/auth/sessions/{bob_session}"), &alice.access)
        .await
        .assert_error(404, "not_found");
    assert_eq!(app.me(&bob.access).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn revoking_all_others_keeps_the_current_session() {
    let app = spawn_app().await;
    let a = app.signed_up("a@example.com").await;
    let b = app.logged_in("a@example.com").await;
    let c = app.logged_in("a@example.com").await;
    let answer = app.delete_auth("/api/v1/auth/sessions", &c.access).await;
    assert_eq!(
        answer.body,
        json!({"message_code": "sessions_revoked", "message": "Other sessions revoked", "revoked": 2})
    );
    app.me(&a.access).await.assert_error(401, "invalid_token");
    app.me(&b.access).await.assert_error(401, "invalid_token");
    assert_eq!(app.me(&c.access).await.status, StatusCode::OK);
    let list = app.get("/api/v1/auth/sessions", Some(&c.access)).await;
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn session_routes_need_a_bearer() {
    let app = spawn_app().await;
    app.get("/api/v1/auth/sessions", None).await.assert_error(401, "unauthorized");
    app.delete_auth("/api/v1/auth/sessions", "garbage").await.assert_error(401, "invalid_token");
}
