//! The audit log API: every kind of event API.md lists is in the store,
//! filtered by project, user and kind, newest first, paged by a cursor that
//! is stable while events keep coming.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Builder, Secret};

use crate::harness::{Answer, PASSWORD, TestApp, Tokens, spawn_app};
use portcullis::clock::Clock;

const LOG: &str = "/api/v1/admin/audit-log";

async fn log(app: &TestApp, admin: &str, query: &str) -> Answer {
    let answer = app.get(&format!("{LOG}?{query}"), Some(admin)).await;
    assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
    answer
}

fn kinds(answer: &Answer) -> Vec<String> {
    answer.body["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

/// Two-factor on, then off, for `tokens`'s account.
async fn two_factor_on_and_off(app: &TestApp, tokens: &Tokens) {
    let setup = app.post_auth("/api/v1/auth/2fa/setup", &tokens.access, &json!({})).await;
    let secret = Secret::try_from_base32(setup.body["secret"].as_str().unwrap()).unwrap().as_bytes().to_vec();
    let totp = Builder::new().with_secret(secret).build().unwrap();
    let code = |app: &TestApp| totp.generate(u64::try_from(app.clock.now().as_secs()).unwrap()).to_string();
    let enabled = app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": code(app)})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    app.clock.advance(Duration::from_secs(30));
    let body = json!({"password": PASSWORD, "code": code(app)});
    let disabled = app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &body).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
}

#[actix_web::test]
async fn every_kind_of_event_is_logged_and_read_by_filter_and_page() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    app.logged_in("ada@example.com").await;
    app.login("ada@example.com", "wrong password").await.assert_error(401, "invalid_credentials");
    app.login("nobody@example.com", "wrong password").await.assert_error(401, "invalid_credentials");
    two_factor_on_and_off(&app, &ada).await;
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new password"});
    assert_eq!(app.put_auth("/api/v1/auth/me/password", &ada.access, &change).await.status, StatusCode::OK);
    let key = app.create_key(&ada.access, json!({"name": "k"})).await;
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let revoked = app.delete_auth(&format!("/api/v1/auth/api-keys/{key_id}"), &ada.access).await;
    assert_eq!(revoked.status, StatusCode::OK);
    // A refresh token used again after the grace window.
    let bob = app.signed_up("bob@example.com").await;
    assert_eq!(app.refresh(&bob.refresh).await.status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(11));
    app.refresh(&bob.refresh).await.assert_error(401, "refresh_token_reused");
    let carol = app.signed_up("carol@example.com").await;
    assert_eq!(app.post_auth("/api/v1/auth/logout", &carol.access, &json!({})).await.status, StatusCode::OK);
    let code = app.mailed_code("carol@example.com", "reset", 1).await;
    let reset = json!({"email": "carol@example.com", "code": code, "new_password": "another good password"});
    assert_eq!(app.post("/api/v1/auth/reset-password", &reset).await.status, StatusCode::OK);
    let project = json!({"id": "mobile", "name": "Mobile"});
    assert_eq!(app.post_auth("/api/v1/admin/projects", &root.access, &project).await.status, StatusCode::CREATED);
    let patch = json!({"disabled": true});
    let path = format!("/api/v1/admin/projects/default/users/{}", bob.user_id);
    assert_eq!(app.send_json(reqwest::Method::PATCH, &path, Some(&root.access), &patch).await.status, StatusCode::OK);
    let in_mobile = json!({"email": "m@example.com", "password": PASSWORD, "name": "M"});
    assert_eq!(app.post("/api/v1/projects/mobile/auth/register", &in_mobile).await.status, StatusCode::CREATED);

    let everything = log(&app, &root.access, "limit=200").await;
    let seen: HashSet<String> = kinds(&everything).into_iter().collect();
    for kind in [
        "user_registered",
        "login_succeeded",
        "login_failed",
        "two_factor_enabled",
        "two_factor_disabled",
        "password_changed",
        "password_reset",
        "session_revoked",
        "api_key_created",
        "api_key_revoked",
        "refresh_token_reused",
        "project_created",
        "user_changed_by_admin",
    ] {
        assert!(seen.contains(kind), "no {kind} in {seen:?}");
    }
    let events = everything.body["events"].as_array().unwrap();
    let times: Vec<&str> = events.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let event = &events[0];
    for field in ["id", "at", "project", "user_id", "kind", "ip", "user_agent", "detail"] {
        assert!(event.get(field).is_some(), "{field} missing in {event}");
    }
    assert!(events.iter().all(|e| e["project"] == "default"), "the default project's log unless named");
    let unknown_failure = events.iter().find(|e| e["kind"] == "login_failed" && e["user_id"].is_null());
    assert!(unknown_failure.is_some(), "a failure for an unknown account is logged without a user");

    // Filters: kind, user, project.
    let failures = log(&app, &root.access, "kind=login_failed").await;
    assert!(!kinds(&failures).is_empty() && kinds(&failures).iter().all(|k| k == "login_failed"));
    let adas = log(&app, &root.access, &format!("user={}&limit=200", ada.user_id)).await;
    let adas_events = adas.body["events"].as_array().unwrap();
    assert!(adas_events.iter().all(|e| e["user_id"] == ada.user_id.as_str()), "{}", adas.body);
    let adas_kinds: HashSet<String> = kinds(&adas).into_iter().collect();
    for kind in ["user_registered", "login_succeeded", "login_failed", "password_changed", "api_key_revoked"] {
        assert!(adas_kinds.contains(kind), "no {kind} for ada in {adas_kinds:?}");
    }
    let mobile = log(&app, &root.access, "project=mobile").await;
    assert_eq!(kinds(&mobile), ["user_registered"]);
    assert!(mobile.body["events"][0]["project"] == "mobile");

    // Pages of 3, newest first, each event once, while new events arrive.
    let total = events.len();
    let (mut listed, mut cursor) = (Vec::<Value>::new(), None::<String>);
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=3&cursor={c}"),
            None => "limit=3".to_owned(),
        };
        let page = log(&app, &root.access, &query).await;
        listed.extend(page.body["events"].as_array().unwrap().iter().cloned());
        app.login("ada@example.com", "wrong again").await; // a new event meanwhile
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(listed.len() <= total + 3, "paging does not end");
    }
    let ids: Vec<&str> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was listed twice");
    assert_eq!(ids, events.iter().map(|e| e["id"].as_str().unwrap()).collect::<Vec<_>>());

    // Cursors belong to their filter; bad filters are named; plain users are refused.
    let first = log(&app, &root.access, "limit=2").await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let other = app.get(&format!("{LOG}?kind=login_failed&cursor={cursor}"), Some(&root.access)).await;
    other.assert_error(400, "validation_error");
    let bad = app.get(&format!("{LOG}?user=nope&kind=Bad-Kind&limit=0"), Some(&root.access)).await;
    bad.assert_error(400, "validation_error");
    for field in ["user", "kind", "limit"] {
        assert!(bad.body["fields"][field].is_string(), "{field}: {}", bad.body);
    }
    app.get(&format!("{LOG}?project=nope"), Some(&root.access)).await.assert_error(404, "not_found");
    app.get(LOG, Some(&carol.access)).await.assert_error(401, "invalid_token");
    let dave = app.signed_up("dave@example.com").await;
    app.get(LOG, Some(&dave.access)).await.assert_error(403, "forbidden");
}
