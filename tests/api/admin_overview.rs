//! The admin overview: a project's accounts and last hour's sign-ins, and
//! the gateway's live sessions, as counted (never listed); who may read it;
//! and, over CQL, every node's sign-ins summed.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestApp, spawn_app, spawn_pair};

const OVERVIEW: &str = "/api/v1/admin/overview";

async fn overview(app: &TestApp, admin: &str, project: &str) -> Value {
    let answer = app.get(&format!("{OVERVIEW}?project={project}"), Some(admin)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    answer.body
}

/// A new account of `project` (asserting 201).
async fn registered_in(app: &TestApp, project: &str, email: &str) -> Value {
    let answer = app.register_in(project, email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body
}

#[actix_web::test]
async fn the_overview_counts_accounts_sign_ins_of_the_last_hour_and_sessions() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await.access;
    let created = app.post_auth("/api/v1/admin/projects", &root, &json!({"id": "shop", "name": "Shop"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let empty = overview(&app, &root, "shop").await;
    assert_eq!(
        (&empty["project"], &empty["accounts"], &empty["logins_last_hour"], &empty["failed_logins_last_hour"]),
        (&json!("shop"), &json!(0), &json!(0), &json!(0))
    );
    assert!(empty["at"].as_str().unwrap().ends_with('Z'));

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(registered_in(&app, "shop", &format!("u{i}@example.com")).await["user"]["id"].clone());
    }
    assert_eq!(app.login_in("shop", "u0@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.login_in("shop", "u1@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.login_in("shop", "u2@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login_in("shop", "nobody@example.com", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    let before = overview(&app, &root, "shop").await;
    assert_eq!(
        (&before["accounts"], &before["logins_last_hour"], &before["failed_logins_last_hour"]),
        (&json!(3), &json!(2), &json!(2))
    );
    // Another project's sign-ins are its own.
    let default = overview(&app, &root, "default").await;
    assert_eq!((&default["accounts"], &default["logins_last_hour"]), (&json!(1), &json!(0)));
    assert_eq!(app.get(OVERVIEW, Some(&root)).await.body["project"], "default", "default by default");

    // Sessions are every project's: one more sign-in is one more, where counted.
    let sessions = before["active_sessions"].as_u64().unwrap();
    assert_eq!(app.login_in("shop", "u0@example.com", PASSWORD).await.status, StatusCode::OK);
    let after = overview(&app, &root, "shop").await;
    if after["active_sessions_estimated"] == false {
        assert!(sessions >= 6, "three registrations, two sign-ins and the admin's: {sessions}");
        assert_eq!(after["active_sessions"].as_u64().unwrap(), sessions + 1);
    }
    assert_eq!(after["logins_last_hour"], 3);

    // An account deleted by an admin is one fewer.
    let gone = app.delete_auth(&format!("/api/v1/admin/projects/shop/users/{}", ids[2].as_str().unwrap()), &root).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    assert_eq!(overview(&app, &root, "shop").await["accounts"], 2);

    // An hour later the sign-ins have left the window; the accounts stay.
    app.clock.advance(Duration::from_secs(61 * 60));
    let root = app.logged_in("root@example.com").await.access;
    let later = overview(&app, &root, "shop").await;
    assert_eq!(
        (&later["accounts"], &later["logins_last_hour"], &later["failed_logins_last_hour"]),
        (&json!(2), &json!(0), &json!(0))
    );
    assert_eq!(overview(&app, &root, "default").await["logins_last_hour"], 1, "the admin's sign-in just now");
}

#[actix_web::test]
async fn only_admins_read_the_overview_of_a_project_that_exists() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await.access;
    let plain = app.signed_up("plain@example.com").await.access;
    app.get(OVERVIEW, None).await.assert_error(401, "unauthorized");
    app.get(OVERVIEW, Some(&plain)).await.assert_error(403, "forbidden");
    let key = app.create_key(&root, json!({"name": "ops"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    app.get(OVERVIEW, Some(key.body["api_key"].as_str().unwrap())).await.assert_error(403, "forbidden");
    app.get(&format!("{OVERVIEW}?project=nope"), Some(&root)).await.assert_error(404, "not_found");
    let bad = app.get(&format!("{OVERVIEW}?project=Not%20an%20id"), Some(&root)).await;
    bad.assert_error(400, "validation_error");
    assert!(bad.body["fields"]["project"].is_string(), "{}", bad.body);
}

#[actix_web::test]
async fn every_nodes_sign_ins_are_summed() {
    let Some([(a, _), (b, _)]) = spawn_pair().await else {
        eprintln!("skipped: CQL_TEST_NODES not set");
        return;
    };
    let root = a.signed_up("root@example.com").await.access;
    let created = a.post_auth("/api/v1/admin/projects", &root, &json!({"id": "shop", "name": "Shop"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    registered_in(&a, "shop", "u@example.com").await;
    // B learns of the project through the feed.
    let started = Instant::now();
    while b.login_in("shop", "u@example.com", PASSWORD).await.status != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(30), "B never served the new project");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(a.login_in("shop", "u@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(a.login_in("shop", "u@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    // A writes its tallies on its own within 10 s; B reads both nodes'.
    let started = Instant::now();
    loop {
        let seen = overview(&b, &root, "shop").await;
        assert_eq!(seen["accounts"], 1);
        if seen["logins_last_hour"] == 2 && seen["failed_logins_last_hour"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "A's sign-ins never reached B: {seen}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
