//! Seed `002` (Cloudflare Auth Service), written from its document:
//! per-project auth under `/api/auth/{projectId}`, the admin API with
//! `X-Admin-Session`, `{success, data}` envelopes and camelCase fields.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Answer, TestApp, answer, spawn_app};

async fn admin_get(app: &TestApp, session: &str, path: &str) -> Answer {
    answer(app.client.get(app.url(path)).header("X-Admin-Session", session).send().await.unwrap()).await
}

async fn admin_post(app: &TestApp, session: &str, path: &str, body: &Value) -> Answer {
    answer(app.client.post(app.url(path)).header("X-Admin-Session", session).json(body).send().await.unwrap()).await
}

#[track_caller]
fn data(answer: &Answer) -> &Value {
    assert_eq!(answer.body["success"], true, "{}", answer.body);
    &answer.body["data"]
}

#[actix_web::test]
async fn a_cloudflare_auth_service_client_works_unchanged() {
    let app = spawn_app().await;
    // The operator (the first account of a fresh install is its superadmin).
    let root = app.signed_up("admin@example.com").await;

    // Admin login -> {sessionToken, admin}.
    let login = app
        .post("/api/admin/login", &json!({"email": "admin@example.com", "password": crate::harness::PASSWORD}))
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let session = data(&login)["sessionToken"].as_str().unwrap().to_owned();
    assert_eq!(data(&login)["admin"]["email"], "admin@example.com");
    assert_eq!(data(&login)["admin"]["role"], "superadmin");

    // Create a project {name, environment, description} and list them.
    let body = json!({"name": "Mobile App", "environment": "development", "description": "My new project"});
    let created = admin_post(&app, &session, "/api/admin/projects", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let project = data(&created)["id"].as_str().unwrap().to_owned();
    assert_eq!(project, "mobile_app");
    assert_eq!(data(&created)["environment"], "development");
    let listed = admin_get(&app, &session, "/api/admin/projects").await;
    let projects = data(&listed).as_array().unwrap();
    let ours = projects.iter().find(|p| p["id"] == "mobile_app").unwrap();
    for field in ["id", "name", "environment", "enabled", "createdAt"] {
        assert!(!ours[field].is_null(), "{field}: {ours}");
    }
    // Without a session: the error envelope, with the core code.
    let refused = answer(app.client.get(app.url("/api/admin/projects")).send().await.unwrap()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["success"], false);
    assert_eq!(refused.body["code"], "unauthorized");
    assert!(refused.body["error"].is_string());

    // Register {email, password, displayName} in the project.
    let base = format!("/api/auth/{project}");
    let body = json!({"email": "user@example.com", "password": "strongpassword123", "displayName": "John Doe"});
    let registered = app.post(&format!("{base}/register"), &body).await;
    assert!(registered.status.is_success(), "{}", registered.body);
    let d = data(&registered);
    assert_eq!(d["user"]["displayName"], "John Doe");
    assert_eq!(d["user"]["email"], "user@example.com");
    assert!(d["user"]["id"].is_string() && d["accessToken"].is_string() && d["refreshToken"].is_string());

    // Login, me, refresh.
    let login = app
        .post(&format!("{base}/login"), &json!({"email": "user@example.com", "password": "strongpassword123"}))
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let access = data(&login)["accessToken"].as_str().unwrap().to_owned();
    let me = answer(app.client.get(app.url(&format!("{base}/me"))).bearer_auth(&access).send().await.unwrap()).await;
    let profile = data(&me);
    for field in ["id", "email", "displayName", "emailVerified", "createdAt"] {
        assert!(profile.get(field).is_some(), "{field}: {profile}");
    }
    assert_eq!(profile["emailVerified"], false);
    let refresh_token = data(&login)["refreshToken"].as_str().unwrap().to_owned();
    let refreshed = app.post(&format!("{base}/refresh"), &json!({"refreshToken": refresh_token})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(data(&refreshed)["accessToken"].is_string() && data(&refreshed)["refreshToken"].is_string());

    // Errors: the envelope with the core code.
    let wrong = app.post(&format!("{base}/login"), &json!({"email": "user@example.com", "password": "nope"})).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (wrong.body["success"].clone(), wrong.body["code"].clone()),
        (json!(false), json!("invalid_credentials"))
    );
    let invalid = app.post(&format!("{base}/register"), &json!({"email": "nope"})).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.body["code"], "validation_error");
    assert!(invalid.body["fields"]["email"].is_string(), "{}", invalid.body);
    let unknown = app.post("/api/auth/no_such_project/login", &json!({"email": "a@b.c", "password": "x"})).await;
    assert_eq!((unknown.status, unknown.body["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));

    // The same session on the core API, and revocation across both.
    let core_me = app.get("/api/v1/projects/mobile_app/auth/me", Some(&access)).await;
    assert_eq!(core_me.body["email"], "user@example.com", "{}", core_me.body);
    let out = app.post_auth("/api/v1/projects/mobile_app/auth/logout", &access, &json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    let after = answer(app.client.get(app.url(&format!("{base}/me"))).bearer_auth(&access).send().await.unwrap()).await;
    assert_eq!((after.status, after.body["success"].clone()), (StatusCode::UNAUTHORIZED, json!(false)));

    // A user who is no admin gets no admin session (and no lingering one).
    app.signed_up("plain@example.com").await;
    let plain = app
        .post("/api/admin/login", &json!({"email": "plain@example.com", "password": crate::harness::PASSWORD}))
        .await;
    assert_eq!(
        (plain.status, plain.body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden")),
        "{}",
        plain.body
    );
    let _ = root;
}
