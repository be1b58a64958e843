//! Per-project routes: every `/api/v1/auth/...` route also under
//! `/api/v1/projects/{project_id}/auth/...`, users per project, credentials
//! bound to their project (`aud`), and the project's settings driving its
//! flows.

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, PASSWORD, TestApp, Tokens, nth_code, spawn_app};

/// The path of `route` (`/login`, `/me` ...) in project `project`.
fn at(project: &str, route: &str) -> String {
    format!("/api/v1/projects/{project}/auth{route}")
}

async fn new_project(app: &TestApp, admin: &str, id: &str, settings: Value) -> Answer {
    let created =
        app.post_auth("/api/v1/admin/projects", admin, &json!({"id": id, "name": id, "settings": settings})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created
}

async fn set(app: &TestApp, admin: &str, id: &str, body: Value) {
    let changed = app.send_json(Method::PATCH, &format!("/api/v1/admin/projects/{id}"), Some(admin), &body).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
}

async fn refresh_at(app: &TestApp, project: &str, token: &str) -> Answer {
    let path = if project == "default" { "/api/v1/auth/refresh".to_owned() } else { at(project, "/refresh") };
    app.post(&path, &json!({"refresh_token": token})).await
}

async fn send_login_code(app: &TestApp, project: &str) -> Answer {
    app.post(&at(project, "/otp/send"), &json!({"email": "p@example.com", "purpose": "login"})).await
}

/// The claims of a JWT, unverified (the test only reads them).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[actix_web::test]
async fn each_project_has_its_own_accounts_and_its_credentials_work_only_there() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    new_project(&app, &root.access, "mobile", json!({})).await;

    // The same address is two accounts in two projects; the first in a project is a plain user.
    let in_default = app.signed_up("ada@example.com").await;
    let registered = app.register_in("mobile", "ada@example.com", PASSWORD).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    assert_eq!(registered.body["user"]["role"], "user");
    let in_mobile = Tokens::from(&registered);
    assert_ne!(in_mobile.user_id, in_default.user_id);
    assert_eq!(claims(&in_mobile.access)["aud"], "mobile");
    assert_eq!(claims(&in_default.access)["aud"], "default");
    app.register_in("mobile", "ada@example.com", PASSWORD).await.assert_error(409, "email_taken");
    let setup = app.get(&at("mobile", "/setup-status"), None).await;
    assert_eq!(setup.body["setup_complete"], true);
    let login = app.login_in("mobile", "ada@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["id"], in_mobile.user_id.as_str());

    // Access tokens: each on its own project's routes only.
    let me = app.get(&at("mobile", "/me"), Some(&in_mobile.access)).await;
    assert_eq!((me.status, me.body["id"].as_str()), (StatusCode::OK, Some(in_mobile.user_id.as_str())));
    app.me(&in_mobile.access).await.assert_error(401, "invalid_token");
    app.get(&at("mobile", "/me"), Some(&in_default.access)).await.assert_error(401, "invalid_token");

    // Refresh tokens likewise; a refused one stays good on its own project.
    refresh_at(&app, "default", &in_mobile.refresh).await.assert_error(401, "invalid_token");
    refresh_at(&app, "mobile", &in_default.refresh).await.assert_error(401, "invalid_token");
    let rotated = refresh_at(&app, "mobile", &in_mobile.refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(claims(rotated.body["token"].as_str().unwrap())["aud"], "mobile");

    // API keys too.
    let key = app.post_auth(&at("mobile", "/api-keys"), &in_mobile.access, &json!({"name": "k"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let key = key.body["api_key"].as_str().unwrap().to_owned();
    let with_key = |path: String| app.client.get(app.url(&path)).header("X-API-Key", key.clone()).send();
    assert_eq!(with_key(at("mobile", "/me")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(with_key("/api/v1/auth/me".into()).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // The gateway routes tell the project.
    let verified = app.verify(&in_mobile.access).await;
    assert_eq!(verified.status, StatusCode::OK);
    assert_eq!(verified.header("x-auth-project"), Some("mobile"));
    assert_eq!(app.verify(&key).await.header("x-auth-project"), Some("mobile"));
    // A proxy in front of one project names it: other projects' credentials are refused.
    let for_mobile = app.get("/api/v1/verify?project=mobile", Some(&in_mobile.access)).await;
    assert_eq!(for_mobile.status, StatusCode::OK);
    app.get("/api/v1/verify?project=mobile", Some(&in_default.access)).await.assert_error(401, "invalid_token");
    app.get("/api/v1/verify?project=default", Some(&key)).await.assert_error(401, "invalid_token");
    let gateway_key = app.introspect_key(&root.access).await;
    let introspected = app.introspect(&gateway_key, &in_mobile.access).await;
    assert_eq!(
        (introspected.body["active"].as_bool(), introspected.body["aud"].as_str()),
        (Some(true), Some("mobile"))
    );
    // A project's own introspect key (made by an admin of that project) answers for that project only.
    let promote = format!("/api/v1/admin/projects/mobile/users/{}", in_mobile.user_id);
    let promoted = app.send_json(Method::PATCH, &promote, Some(&root.access), &json!({"role": "admin"})).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    let body = json!({"name": "mobile gateway", "scopes": ["introspect"]});
    let mobile_key = app.post_auth(&at("mobile", "/api-keys"), &in_mobile.access, &body).await;
    assert_eq!(mobile_key.status, StatusCode::CREATED, "{}", mobile_key.body);
    let mobile_key = mobile_key.body["api_key"].as_str().unwrap().to_owned();
    let own = app.introspect(&mobile_key, &in_mobile.access).await;
    assert_eq!((own.body["active"].as_bool(), own.body["aud"].as_str()), (Some(true), Some("mobile")));
    assert_eq!(app.introspect(&mobile_key, &in_default.access).await.body, json!({"active": false}));

    // Unknown projects, and ids that cannot be one, are 404.
    app.login_in("nope", "ada@example.com", PASSWORD).await.assert_error(404, "not_found");
    app.get(&at("nope", "/me"), Some(&in_mobile.access)).await.assert_error(404, "not_found");
    app.login_in("Bad%20Id", "ada@example.com", PASSWORD).await.assert_error(404, "not_found");

    // Disabled: its routes are 404 and its credentials verify nowhere; enabled again, they do.
    set(&app, &root.access, "mobile", json!({"enabled": false})).await;
    app.login_in("mobile", "ada@example.com", PASSWORD).await.assert_error(404, "not_found");
    app.verify(&in_mobile.access).await.assert_error(401, "invalid_token");
    app.verify(&key).await.assert_error(401, "invalid_token");
    assert_eq!(app.verify(&in_default.access).await.status, StatusCode::OK, "other projects go on");
    set(&app, &root.access, "mobile", json!({"enabled": true})).await;
    assert_eq!(app.verify(&key).await.status, StatusCode::OK);

    // Deleted: the same, for good.
    let deleted = app.delete_auth("/api/v1/admin/projects/mobile", &root.access).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    // Its accounts are erased, with their keys; other projects' are not.
    let mobile = portcullis::account::ProjectId("mobile".into());
    let store = app.auth.store();
    assert!(store.list_users(&mobile, None, 10).await.unwrap().is_empty());
    assert!(store.find_user_by_email(&mobile, "ada@example.com").await.unwrap().is_none());
    let mobile_user = portcullis::account::UserId::parse(&in_mobile.user_id).unwrap();
    assert!(store.list_api_keys(mobile_user).await.unwrap().is_empty());
    assert_eq!(app.me(&in_default.access).await.status, StatusCode::OK);
    app.verify(&key).await.assert_error(401, "invalid_token");
    app.verify(&in_mobile.access).await.assert_error(401, "invalid_token");
    app.login_in("mobile", "ada@example.com", PASSWORD).await.assert_error(404, "not_found");
}

#[actix_web::test]
async fn a_projects_settings_drive_its_flows() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await.access;

    // access_ttl and refresh_ttl: tokens live as the project says.
    new_project(&app, &root, "short", json!({"access_ttl": 60, "refresh_ttl": 300})).await;
    let short = app.register_in("short", "s@example.com", PASSWORD).await;
    assert_eq!(short.body["expires_in"], 60, "{}", short.body);
    let token = short.body["token"].as_str().unwrap().to_owned();
    let claimed = claims(&token);
    assert_eq!(claimed["exp"].as_i64().unwrap() - claimed["iat"].as_i64().unwrap(), 60);
    let default_token = app.logged_in("root@example.com").await;
    app.clock.advance(Duration::from_secs(61));
    app.get(&at("short", "/me"), Some(&token)).await.assert_error(401, "token_expired");
    assert_eq!(app.me(&default_token.access).await.status, StatusCode::OK, "the default project's token lives on");
    let refresh = short.body["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(240));
    app.post(&at("short", "/refresh"), &json!({"refresh_token": refresh})).await.assert_error(401, "invalid_token");

    // refresh_reuse_grace 0: a rotated token presented again is reuse at once.
    new_project(&app, &root, "strict", json!({"refresh_reuse_grace": 0})).await;
    let strict = Tokens::from(&app.register_in("strict", "r@example.com", PASSWORD).await);
    let rotated = app.post(&at("strict", "/refresh"), &json!({"refresh_token": strict.refresh})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let again = app.post(&at("strict", "/refresh"), &json!({"refresh_token": strict.refresh})).await;
    again.assert_error(401, "refresh_token_reused");

    // allow_registration: false refuses register; password_min_length is the project's.
    new_project(&app, &root, "closed", json!({"allow_registration": false})).await;
    app.register_in("closed", "c@example.com", PASSWORD).await.assert_error(403, "forbidden");
    new_project(&app, &root, "long", json!({"password_min_length": 20})).await;
    let refused = app.register_in("long", "l@example.com", "only-fifteen-ch").await;
    refused.assert_error(400, "validation_error");
    assert!(refused.body["fields"]["password"].is_string(), "{}", refused.body);
    let accepted = app.register_in("long", "l@example.com", "twenty characters ok").await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    assert_eq!(app.register_in("short", "l@example.com", "only-fifteen-ch").await.status, StatusCode::CREATED);

    // require_email_verification: register waits for the code; login is refused until then.
    new_project(&app, &root, "verified", json!({"require_email_verification": true})).await;
    let waiting = app.register_in("verified", "v@example.com", PASSWORD).await;
    assert_eq!(waiting.status, StatusCode::ACCEPTED, "{}", waiting.body);
    assert_eq!(waiting.body["message_code"], "verification_required");
    app.login_in("verified", "v@example.com", PASSWORD).await.assert_error(403, "email_not_verified");
    let code = nth_code(&app.outbox, "v@example.com", 1).await;
    let proven = app.post(&at("verified", "/register/verify"), &json!({"email": "v@example.com", "code": code})).await;
    assert_eq!(proven.status, StatusCode::OK, "{}", proven.body);
    assert_eq!(claims(proven.body["token"].as_str().unwrap())["aud"], "verified");
    assert_eq!(app.login_in("verified", "v@example.com", PASSWORD).await.status, StatusCode::OK);
    // The default project does not require it.
    assert_eq!(app.register("v@example.com").await.status, StatusCode::CREATED);

    // passwordless_signup: an emailed code makes an account in that project only.
    new_project(&app, &root, "open", json!({"passwordless_signup": true})).await;
    assert_eq!(send_login_code(&app, "open").await.status, StatusCode::ACCEPTED);
    let code = nth_code(&app.outbox, "p@example.com", 1).await;
    let signed = app.post(&at("open", "/otp/login"), &json!({"email": "p@example.com", "code": code})).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert_eq!(claims(signed.body["token"].as_str().unwrap())["aud"], "open");
    assert_eq!(send_login_code(&app, "short").await.status, StatusCode::ACCEPTED, "answers the same ...");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(crate::harness::mails_to(&app.outbox, "p@example.com").len(), 1, "... but mails no one");
}

/// Logins are counted per project, with a bounded label: the oldest
/// `metrics_project_labels` projects by name, the rest as `other`.
#[actix_web::test]
async fn logins_are_counted_per_project_with_a_bounded_label() {
    let app = crate::harness::spawn_with(|s| s.http.metrics_project_labels = 1).await;
    let root = app.signed_up("root@example.com").await.access;
    new_project(&app, &root, "label_first", json!({})).await;
    app.clock.advance(Duration::from_secs(1));
    new_project(&app, &root, "label_second", json!({})).await;
    for project in ["label_first", "label_second"] {
        assert_eq!(app.register_in(project, "m@example.com", PASSWORD).await.status, StatusCode::CREATED);
        assert_eq!(app.login_in(project, "m@example.com", PASSWORD).await.status, StatusCode::OK);
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let logins: Vec<&str> = metrics.lines().filter(|l| l.starts_with("portcullis_logins_total{")).collect();
    assert!(logins.iter().any(|l| l.contains("project=\"label_first\"")), "{logins:?}");
    assert!(logins.iter().any(|l| l.contains("project=\"other\"")), "{logins:?}");
    assert!(!metrics.contains("label_second"), "a project past the cap has no label of its own");
}

/// A project's own per-IP quota and account lock: its sign-in routes spend
/// a budget of their own, and its accounts lock after its own threshold.
#[actix_web::test]
async fn a_projects_rate_limit_and_lockout_are_its_own() {
    let app = crate::harness::spawn_with(|s| s.limits.rate_limit_enabled = true).await;
    let root = app.signed_up("root@example.com").await.access;
    new_project(&app, &root, "tight", json!({"rate_limit_per_minute": 60, "rate_limit_burst": 2})).await;
    for i in 0..2 {
        let answer = app.register_in("tight", &format!("t{i}@example.com"), PASSWORD).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let refused = app.register_in("tight", "t2@example.com", PASSWORD).await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // The node's budget (the default project's) is its own.
    assert_eq!(app.register("d@example.com").await.status, StatusCode::CREATED);

    new_project(&app, &root, "strict", json!({"lockout_threshold": 2, "lockout_seconds": 30})).await;
    assert_eq!(app.register_in("strict", "s@example.com", PASSWORD).await.status, StatusCode::CREATED);
    let wrong = json!({"email": "s@example.com", "password": "not the password"});
    for _ in 0..2 {
        app.post(&at("strict", "/login"), &wrong).await.assert_error(401, "invalid_credentials");
    }
    let locked = app.login_in("strict", "s@example.com", PASSWORD).await;
    locked.assert_error(429, "rate_limited");
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    // The same address in the default project is another account, with the node's threshold (10).
    assert_eq!(app.register("s@example.com").await.status, StatusCode::CREATED);
    app.login("s@example.com", "not the password").await.assert_error(401, "invalid_credentials");
    app.login("s@example.com", "not the password").await.assert_error(401, "invalid_credentials");
    assert_eq!(app.login("s@example.com", PASSWORD).await.status, StatusCode::OK);

    let refused = app
        .send_json(
            Method::PATCH,
            "/api/v1/admin/projects/strict",
            Some(&root),
            &json!({"settings": {"lockout_threshold": 0, "rate_limit_burst": "x"}}),
        )
        .await;
    refused.assert_error(400, "validation_error");
    assert!(refused.body["fields"]["settings.lockout_threshold"].is_string(), "{}", refused.body);
    assert!(refused.body["fields"]["settings.rate_limit_burst"].is_string(), "{}", refused.body);
}
