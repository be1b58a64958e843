//! Refresh rotation, the reuse grace window, and reuse detection.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{spawn_app, spawn_with};

#[actix_web::test]
async fn refresh_rotates_the_pair() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let answer = app.refresh(&tokens.refresh).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3600);
    assert!(answer.body.get("user").is_none());
    let next = answer.body["refresh_token"].as_str().unwrap();
    assert_ne!(next, tokens.refresh);
    let access = answer.body["token"].as_str().unwrap();
    assert_eq!(app.me(access).await.status, StatusCode::OK);
    // The successor rotates in turn.
    assert_eq!(app.refresh(next).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn the_seeds_spelling_is_accepted() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let answer = app.post("/api/v1/auth/refresh", &json!({"refreshToken": tokens.refresh})).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[actix_web::test]
async fn unknown_or_missing_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    app.refresh("not-a-token").await.assert_error(401, "invalid_token");
    app.refresh(&"A".repeat(43)).await.assert_error(401, "invalid_token");
    app.post("/api/v1/auth/refresh", &json!({})).await.assert_error(400, "validation_error");
}

#[actix_web::test]
async fn twenty_parallel_refreshes_share_one_successor() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let answers = join_all((0..20).map(|_| app.refresh(&tokens.refresh))).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    let successors: std::collections::HashSet<_> =
        answers.iter().map(|a| a.body["refresh_token"].as_str().unwrap().to_owned()).collect();
    assert_eq!(successors.len(), 1, "{successors:?}");
    // Every answer carries a working access token for the same session.
    for answer in &answers {
        assert_eq!(app.me(answer.body["token"].as_str().unwrap()).await.status, StatusCode::OK);
    }
}

#[actix_web::test]
async fn repeat_within_grace_gets_the_same_successor() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let first = app.refresh(&tokens.refresh).await;
    app.clock.advance(Duration::from_secs(9));
    let again = app.refresh(&tokens.refresh).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(first.body["refresh_token"], again.body["refresh_token"]);
}

#[actix_web::test]
async fn reuse_after_grace_revokes_the_session() {
    let app = spawn_with(|s| s.token.refresh_reuse_grace = Duration::from_secs(2)).await;
    let tokens = app.signed_up("a@example.com").await;
    let rotated = app.refresh(&tokens.refresh).await;
    let successor = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    let access = rotated.body["token"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&access).await.status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(3));
    app.refresh(&tokens.refresh).await.assert_error(401, "refresh_token_reused");
    // The whole family is gone: the successor and every access token of the session.
    app.refresh(&successor).await.assert_error(401, "invalid_token");
    app.me(&access).await.assert_error(401, "invalid_token");
    app.me(&tokens.access).await.assert_error(401, "invalid_token");
    // Other sessions of the user are untouched.
    let other = app.logged_in("a@example.com").await;
    assert_eq!(app.me(&other.access).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn refresh_after_logout_is_refused() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    app.post_auth("/api/v1/auth/logout", &tokens.access, &json!({})).await;
    app.refresh(&tokens.refresh).await.assert_error(401, "invalid_token");
}

#[actix_web::test]
async fn expired_refresh_token_is_refused() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    app.refresh(&tokens.refresh).await.assert_error(401, "invalid_token");
}
