//! Store faults and account state that only the store can set today.

use reqwest::StatusCode;

use crate::harness::{PASSWORD, spawn_faulty};
use portcullis::account::ProjectId;
use portcullis::store::Store;

#[actix_web::test]
async fn store_outage_answers_503_store_unavailable_and_recovers() {
    let (app, store) = spawn_faulty(|_| {}).await;
    let tokens = app.signed_up("a@example.com").await;
    store.fail(true);
    let ready = app.get("/readyz", None).await;
    ready.assert_error(503, "store_unavailable");
    assert!(ready.header("retry-after").is_some());
    app.login("a@example.com", PASSWORD).await.assert_error(503, "store_unavailable");
    app.register("b@example.com").await.assert_error(503, "store_unavailable");
    app.refresh(&tokens.refresh).await.assert_error(503, "store_unavailable");
    // Liveness does not depend on the store.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    store.fail(false);
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    assert_eq!(app.login("a@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn disabled_account_is_told_only_after_its_password() {
    let (app, store) = spawn_faulty(|_| {}).await;
    let tokens = app.signed_up("a@example.com").await;
    let mut user = store.find_user_by_email(&ProjectId::default_project(), "a@example.com").await.unwrap().unwrap();
    user.disabled = true;
    store.update_user(user).await.unwrap();
    app.login("a@example.com", PASSWORD).await.assert_error(403, "account_disabled");
    app.login("a@example.com", "wrong password").await.assert_error(401, "invalid_credentials");
    app.refresh(&tokens.refresh).await.assert_error(403, "account_disabled");
    // Its tokens are no longer live at all.
    app.me(&tokens.access).await.assert_error(401, "invalid_token");
}
