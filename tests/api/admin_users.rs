//! The admin API's users of a project: a paged list with an opaque cursor,
//! read, change (role, disabled), delete, found by address, what it holds
//! (sessions, API keys, passkeys), and who may do which.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, PASSWORD, TestApp, Tokens, spawn_app};

fn users_of(project: &str) -> String {
    format!("/api/v1/admin/projects/{project}/users")
}

async fn patch_user(app: &TestApp, admin: &str, project: &str, id: &str, body: Value) -> Answer {
    app.send_json(Method::PATCH, &format!("{}/{id}", users_of(project)), Some(admin), &body).await
}

#[actix_web::test]
async fn a_projects_users_are_paged_read_changed_and_deleted() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await.access;
    let created = app.post_auth("/api/v1/admin/projects", &root, &json!({"id": "app", "name": "App"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let mut before = Vec::new();
    for i in 0..120 {
        let registered = app.register_in("app", &format!("u{i}@example.com"), PASSWORD).await;
        assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
        before.push(registered.body["user"]["id"].as_str().unwrap().to_owned());
    }

    // Paging with limit=50 while users are being added: each exactly once.
    let (mut seen, mut cursor, mut pages, mut added) = (HashMap::new(), None::<String>, 0, 0);
    loop {
        let path = match &cursor {
            Some(c) => format!("{}?limit=50&cursor={c}", users_of("app")),
            None => format!("{}?limit=50", users_of("app")),
        };
        let page = app.get(&path, Some(&root)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let users = page.body["users"].as_array().unwrap();
        assert!(users.len() <= 50);
        for user in users {
            assert_eq!(user["project"], "app");
            assert_eq!(user["disabled"], false);
            assert!(user["email"].is_string() && user["role"].is_string());
            *seen.entry(user["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        pages += 1;
        for _ in 0..3 {
            let registered = app.register_in("app", &format!("late{added}@example.com"), PASSWORD).await;
            assert_eq!(registered.status, StatusCode::CREATED);
            added += 1;
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }
    for id in &before {
        assert_eq!(seen.get(id), Some(&1), "user {id} seen {:?} times", seen.get(id));
    }
    assert!(seen.values().all(|n| *n == 1), "a user was listed twice");
    let first = app.get(&users_of("app"), Some(&root)).await;
    assert_eq!(first.body["users"].as_array().unwrap().len(), 50, "the default page is 50");
    let all = app.get(&format!("{}?limit=200", users_of("app")), Some(&root)).await;
    assert_eq!(all.body["users"].as_array().unwrap().len(), 120 + added);
    assert_eq!(all.body["next_cursor"], Value::Null);

    // Bad pages and cursors: a forged one, or one of another project's list, is refused.
    for bad in ["limit=0", "limit=201", "limit=x", "cursor=forged", "cursor="] {
        let answer = app.get(&format!("{}?{bad}", users_of("app")), Some(&root)).await;
        if bad == "cursor=" {
            assert_eq!(answer.status, StatusCode::OK, "an empty cursor is the first page");
        } else {
            answer.assert_error(400, "validation_error");
        }
    }
    let app_cursor = first.body["next_cursor"].as_str().unwrap();
    let elsewhere = app.get(&format!("{}?cursor={app_cursor}", users_of("default")), Some(&root)).await;
    elsewhere.assert_error(400, "validation_error");
    assert!(elsewhere.body["fields"]["cursor"].is_string());
    app.get(&users_of("nope"), Some(&root)).await.assert_error(404, "not_found");

    // One user: read, disabled (its sessions end at once), deleted.
    let ada = Tokens::from(&app.register_in("app", "ada@example.com", PASSWORD).await);
    let one = format!("{}/{}", users_of("app"), ada.user_id);
    let read = app.get(&one, Some(&root)).await;
    assert_eq!((read.status, read.body["email"].as_str()), (StatusCode::OK, Some("ada@example.com")));
    app.get(&format!("{}/{}", users_of("default"), ada.user_id), Some(&root)).await.assert_error(404, "not_found");
    app.get(&format!("{}/not-an-id", users_of("app")), Some(&root)).await.assert_error(404, "not_found");
    let disabled = patch_user(&app, &root, "app", &ada.user_id, json!({"disabled": true})).await;
    assert_eq!((disabled.status, disabled.body["disabled"].as_bool()), (StatusCode::OK, Some(true)));
    app.verify(&ada.access).await.assert_error(401, "invalid_token");
    let refresh = app.post("/api/v1/projects/app/auth/refresh", &json!({"refresh_token": ada.refresh})).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED, "{}", refresh.body);
    let login = json!({"email": "ada@example.com", "password": PASSWORD});
    app.post("/api/v1/projects/app/auth/login", &login).await.assert_error(403, "account_disabled");
    patch_user(&app, &root, "app", &ada.user_id, json!({"disabled": false})).await;
    let again = Tokens::from(&app.post("/api/v1/projects/app/auth/login", &login).await);
    patch_user(&app, &root, "app", &ada.user_id, json!({"role": "superadmin"}))
        .await
        .assert_error(400, "validation_error");
    patch_user(&app, &root, "app", &ada.user_id, json!({"role": "chief"})).await.assert_error(400, "validation_error");
    let deleted = app.delete_auth(&one, &root).await;
    assert_eq!((deleted.status, deleted.body["message_code"].as_str()), (StatusCode::OK, Some("user_deleted")));
    app.get(&one, Some(&root)).await.assert_error(404, "not_found");
    app.verify(&again.access).await.assert_error(401, "invalid_token");
    app.post("/api/v1/projects/app/auth/login", &login).await.assert_error(401, "invalid_credentials");
    assert_eq!(
        app.register_in("app", "ada@example.com", PASSWORD).await.status,
        StatusCode::CREATED,
        "the address is free"
    );

    let events = app.auth.store().list_audit(&portcullis::account::ProjectId::default_project(), 500).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "user_changed_by_admin"
        && e.detail.as_deref() == Some(&format!("project=app user={} disabled=true", ada.user_id))));
    assert!(events.iter().any(|e| e.kind == "user_deleted_by_admin"));
}

#[actix_web::test]
async fn only_superadmins_make_admins_and_the_last_superadmin_stays() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    let alice = app.signed_up("alice@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let carol = app.signed_up("carol@example.com").await;
    let made = patch_user(&app, &root.access, "default", &alice.user_id, json!({"role": "admin"})).await;
    assert_eq!((made.status, made.body["role"].as_str()), (StatusCode::OK, Some("admin")));
    assert_eq!(app.verify(&alice.access).await.header("x-auth-role"), Some("admin"), "the role as stored now");

    // An admin manages plain users, not roles and not other admins.
    patch_user(&app, &alice.access, "default", &bob.user_id, json!({"role": "admin"}))
        .await
        .assert_error(403, "forbidden");
    let off = patch_user(&app, &alice.access, "default", &bob.user_id, json!({"disabled": true})).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    patch_user(&app, &alice.access, "default", &root.user_id, json!({"disabled": true}))
        .await
        .assert_error(403, "forbidden");
    app.delete_auth(&format!("{}/{}", users_of("default"), root.user_id), &alice.access)
        .await
        .assert_error(403, "forbidden");
    app.verify(&bob.access).await.assert_error(401, "invalid_token");
    patch_user(&app, &carol.access, "default", &alice.user_id, json!({"disabled": true}))
        .await
        .assert_error(403, "forbidden");

    // The last superadmin cannot be demoted, disabled or deleted.
    for body in [json!({"role": "admin"}), json!({"role": "user"}), json!({"disabled": true})] {
        patch_user(&app, &root.access, "default", &root.user_id, body).await.assert_error(409, "last_superadmin");
    }
    let own = format!("{}/{}", users_of("default"), root.user_id);
    app.delete_auth(&own, &root.access).await.assert_error(409, "last_superadmin");
    let promoted = patch_user(&app, &root.access, "default", &carol.user_id, json!({"role": "superadmin"})).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    let stepped_down = patch_user(&app, &root.access, "default", &root.user_id, json!({"role": "user"})).await;
    assert_eq!(stepped_down.status, StatusCode::OK, "{}", stepped_down.body);
    app.get("/api/v1/admin/projects", Some(&root.access)).await.assert_error(403, "forbidden");
    assert_eq!(app.verify(&root.access).await.header("x-auth-role"), Some("user"));
    patch_user(&app, &carol.access, "default", &carol.user_id, json!({"role": "admin"}))
        .await
        .assert_error(409, "last_superadmin");

    // Two superadmins demoting each other at once: one of them stays.
    let dave = app.signed_up("dave@example.com").await;
    patch_user(&app, &carol.access, "default", &dave.user_id, json!({"role": "superadmin"})).await;
    let (a, b) = futures_util::join!(
        patch_user(&app, &carol.access, "default", &dave.user_id, json!({"role": "user"})),
        patch_user(&app, &dave.access, "default", &carol.user_id, json!({"role": "user"})),
    );
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&StatusCode::OK), "{} / {}", a.body, b.body);
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{} / {}", a.body, b.body);
}

#[actix_web::test]
async fn a_user_is_found_by_address_in_its_project_only() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await.access;
    for id in ["app", "other"] {
        let created = app.post_auth("/api/v1/admin/projects", &root, &json!({"id": id, "name": id})).await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let ada = app.register_in("app", "ada@example.com", PASSWORD).await;
    app.register_in("app", "bob@example.com", PASSWORD).await;
    app.register_in("other", "cy@example.com", PASSWORD).await;

    // Compared as sign-in compares: trimmed and lowercased.
    let found = app.get(&format!("{}?email=%20Ada@Example.COM", users_of("app")), Some(&root)).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let users = found.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{}", found.body);
    assert_eq!(users[0]["id"], ada.body["user"]["id"]);
    assert_eq!(users[0]["email"], "ada@example.com");
    assert_eq!(found.body["next_cursor"], Value::Null);

    // Another project's address, or one nobody has: an empty page.
    for email in ["cy@example.com", "nobody@example.com"] {
        let none = app.get(&format!("{}?email={email}", users_of("app")), Some(&root)).await;
        assert_eq!((none.status, &none.body["users"]), (StatusCode::OK, &json!([])), "{email}");
    }
    let bad = app.get(&format!("{}?email=", users_of("app")), Some(&root)).await;
    assert_eq!((bad.status, &bad.body["fields"]["email"]), (StatusCode::BAD_REQUEST, &json!("is required")));
    let with_cursor = app.get(&format!("{}?email=ada@example.com&cursor=abc", users_of("app")), Some(&root)).await;
    assert_eq!(with_cursor.status, StatusCode::BAD_REQUEST);
    assert!(with_cursor.body["fields"]["cursor"].is_string(), "{}", with_cursor.body);

    // Only admins search.
    let user = app.register_in("default", "plain@example.com", PASSWORD).await;
    let token = user.body["token"].as_str().unwrap();
    let refused = app.get(&format!("{}?email=ada@example.com", users_of("app")), Some(token)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn an_admin_reads_a_users_sessions_keys_and_passkeys() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await.access;
    let ada = app.register_in("default", "ada@example.com", PASSWORD).await;
    let (ada_id, ada_token) = (ada.body["user"]["id"].as_str().unwrap(), ada.body["token"].as_str().unwrap());
    crate::passkeys::add_passkey(&app, ada_token, crate::authenticator::Alg::Es256).await;
    let key = app.post_auth("/api/v1/auth/api-keys", ada_token, &json!({"name": "ci", "scopes": ["read"]})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let user = format!("{}/{ada_id}", users_of("default"));

    let sessions = app.get(&format!("{user}/sessions"), Some(&root)).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let listed = sessions.body["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["current"], false, "none is the admin's own");
    assert!(listed[0]["last_seen_at"].is_string());

    let keys = app.get(&format!("{user}/api-keys"), Some(&root)).await;
    assert_eq!(keys.status, StatusCode::OK);
    assert_eq!(keys.body["api_keys"][0]["id"], key.body["id"]);
    assert_eq!(keys.body["api_keys"][0]["scopes"], json!(["read"]));
    let secret = key.body["api_key"].as_str().unwrap();
    assert!(!keys.body.to_string().contains(secret), "never the secret");

    let passkeys = app.get(&format!("{user}/passkeys"), Some(&root)).await;
    assert_eq!(passkeys.status, StatusCode::OK);
    assert_eq!(passkeys.body["passkeys"][0]["name"], "Laptop");

    // Not an admin: 403. Another project's path, or a user who is not there: 404.
    let refused = app.get(&format!("{user}/sessions"), Some(ada_token)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let created = app.post_auth("/api/v1/admin/projects", &root, &json!({"id": "app", "name": "App"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    for path in [
        format!("{}/{ada_id}/api-keys", users_of("app")),
        format!("{}/01900000-0000-7000-8000-000000000001/passkeys", users_of("default")),
        format!("{}/not-an-id/sessions", users_of("default")),
    ] {
        assert_eq!(app.get(&path, Some(&root)).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}
