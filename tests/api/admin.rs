//! The admin API: projects (list, create, read, change, delete), for admins
//! and superadmins of the `default` project only.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, TestApp, spawn_app, spawn_pair};
use portcullis::account::ProjectId;

const PROJECTS: &str = "/api/v1/admin/projects";

async fn patch(app: &TestApp, admin: &str, id: &str, body: Value) -> Answer {
    app.send_json(Method::PATCH, &format!("{PROJECTS}/{id}"), Some(admin), &body).await
}

async fn create(app: &TestApp, admin: &str, body: Value) -> Answer {
    app.post_auth(PROJECTS, admin, &body).await
}

fn ids(list: &Answer) -> Vec<String> {
    list.body["projects"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
}

#[actix_web::test]
async fn projects_are_created_read_changed_and_deleted() {
    let app = spawn_app().await;
    let admin = app.signed_up("root@example.com").await.access; // the first account: superadmin
    let list = app.get(PROJECTS, Some(&admin)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(ids(&list), ["default"]);

    // Without an id, one is made from the name (as seed 002 shows), and made unique.
    let body = json!({"name": "Mobile App", "environment": "development", "description": "My new project"});
    let created = create(&app, &admin, body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let project = &created.body;
    assert_eq!(project["id"], "mobile_app");
    assert_eq!((project["name"].as_str(), project["environment"].as_str()), (Some("Mobile App"), Some("development")));
    assert_eq!(project["description"], "My new project");
    assert_eq!(project["enabled"], true);
    assert!(project["created_at"].as_str().unwrap().ends_with('Z'));
    let settings = &project["settings"];
    assert_eq!((settings["access_ttl"].as_u64(), settings["refresh_ttl"].as_u64()), (Some(3600), Some(604_800)));
    assert_eq!(
        (settings["refresh_reuse_grace"].as_u64(), settings["password_min_length"].as_u64()),
        (Some(10), Some(8))
    );
    assert_eq!(settings["allow_registration"], true);
    assert_eq!(settings["require_email_verification"], false);
    assert_eq!(settings["passwordless_signup"], false);
    assert_eq!(settings["oidc_providers"], json!({}));
    let again = create(&app, &admin, body).await;
    assert_eq!(again.body["id"], "mobile_app_2", "{}", again.body);
    let bare = create(&app, &admin, json!({"name": "Web", "settings": {"access_ttl": 900}})).await;
    assert_eq!(
        (bare.body["environment"].as_str(), bare.body["description"].clone()),
        (Some("production"), Value::Null)
    );
    assert_eq!(bare.body["settings"]["access_ttl"], 900);

    // An id given must be free and URL-safe.
    create(&app, &admin, json!({"id": "mobile_app", "name": "X"})).await.assert_error(409, "project_exists");
    create(&app, &admin, json!({"id": "default", "name": "X"})).await.assert_error(409, "project_exists");
    let bad = create(&app, &admin, json!({"id": "Not OK", "name": "", "environment": "Prod!"})).await;
    bad.assert_error(400, "validation_error");
    for field in ["id", "name", "environment"] {
        assert!(bad.body["fields"][field].is_string(), "{field}: {}", bad.body);
    }
    let long = create(&app, &admin, json!({"id": "x".repeat(65), "name": "X"})).await;
    assert!(long.body["fields"]["id"].is_string(), "{}", long.body);
    let unnamed = create(&app, &admin, json!({})).await;
    assert_eq!(unnamed.body["fields"]["name"], "is required");

    let got = app.get(&format!("{PROJECTS}/mobile_app"), Some(&admin)).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, created.body);
    app.get(&format!("{PROJECTS}/nope"), Some(&admin)).await.assert_error(404, "not_found");
    app.get(&format!("{PROJECTS}/N%20O"), Some(&admin)).await.assert_error(404, "not_found");

    // PATCH merges into the current settings; null sets one back to the default.
    let changed = patch(&app, &admin, "mobile_app", json!({"settings": {"access_ttl": 600}})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let changed = patch(&app, &admin, "mobile_app", json!({"settings": {"allow_registration": false}})).await;
    assert_eq!(changed.body["settings"]["access_ttl"], 600);
    assert_eq!(changed.body["settings"]["allow_registration"], false);
    let changed = patch(&app, &admin, "mobile_app", json!({"name": "Mobile", "settings": {"access_ttl": null}})).await;
    assert_eq!(
        (changed.body["name"].as_str(), changed.body["settings"]["access_ttl"].as_u64()),
        (Some("Mobile"), Some(3600))
    );
    assert_eq!(changed.body["settings"]["allow_registration"], false);
    let cleared = patch(&app, &admin, "mobile_app", json!({"description": null})).await;
    assert_eq!(cleared.body["description"], Value::Null);

    // Every bad value is named.
    let bad = json!({"settings": {"access_ttl": -5, "refresh_ttl": "a week", "allow_registration": "no", "colour": 1}});
    let refused = patch(&app, &admin, "mobile_app", bad).await;
    refused.assert_error(400, "validation_error");
    let fields = refused.body["fields"].as_object().unwrap();
    let mut named: Vec<&str> = fields.keys().map(String::as_str).collect();
    named.sort_unstable();
    assert_eq!(
        named,
        ["settings.access_ttl", "settings.allow_registration", "settings.colour", "settings.refresh_ttl"]
    );
    assert_eq!(fields["settings.colour"], "unknown setting");
    let refused = patch(&app, &admin, "mobile_app", json!({"settings": [1]})).await;
    assert!(refused.body["fields"]["settings"].is_string(), "{}", refused.body);
    let unchanged = app.get(&format!("{PROJECTS}/mobile_app"), Some(&admin)).await;
    assert_eq!(unchanged.body["settings"]["access_ttl"], 3600, "a refused PATCH changes nothing");
    patch(&app, &admin, "nope", json!({"name": "X"})).await.assert_error(404, "not_found");

    // The default project stays.
    app.delete_auth(&format!("{PROJECTS}/default"), &admin).await.assert_error(409, "default_project");
    patch(&app, &admin, "default", json!({"enabled": false})).await.assert_error(409, "default_project");

    // Deleted: gone from the API at once, its id still taken.
    let deleted = app.delete_auth(&format!("{PROJECTS}/mobile_app_2"), &admin).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["message_code"], "project_deleted");
    app.get(&format!("{PROJECTS}/mobile_app_2"), Some(&admin)).await.assert_error(404, "not_found");
    app.delete_auth(&format!("{PROJECTS}/mobile_app_2"), &admin).await.assert_error(404, "not_found");
    assert_eq!(ids(&app.get(PROJECTS, Some(&admin)).await), ["default", "mobile_app", "web"]);
    create(&app, &admin, json!({"id": "mobile_app_2", "name": "X"})).await.assert_error(409, "project_exists");

    // Each admin action is in the default project's audit log, naming the admin.
    let events = app.auth.store().list_audit(&ProjectId::default_project(), 100).await.unwrap();
    let admin_id = app.me(&admin).await.body["id"].as_str().unwrap().to_owned();
    for (kind, detail) in [
        ("project_created", "project=mobile_app"),
        ("project_changed", "project=mobile_app settings=access_ttl"),
        ("project_changed", "project=mobile_app name settings=access_ttl"),
        ("project_deleted", "project=mobile_app_2"),
    ] {
        let event = events.iter().find(|e| e.kind == kind && e.detail.as_deref() == Some(detail));
        let event = event.unwrap_or_else(|| panic!("{kind} {detail} in {events:?}"));
        assert_eq!(event.user_id.map(|id| id.to_string()), Some(admin_id.clone()));
    }
}

#[actix_web::test]
async fn only_admins_of_the_default_project_use_the_admin_api() {
    let app = spawn_app().await;
    let admin = app.signed_up("root@example.com").await.access;
    let user = app.signed_up("plain@example.com").await.access;
    app.get(PROJECTS, None).await.assert_error(401, "unauthorized");
    app.get(PROJECTS, Some("not-a-token")).await.assert_error(401, "invalid_token");
    app.get(PROJECTS, Some(&user)).await.assert_error(403, "forbidden");
    // Forbidden before the body is looked at: a plain user learns nothing from it.
    create(&app, &user, json!({"id": "Not OK"})).await.assert_error(403, "forbidden");
    patch(&app, &user, "default", json!({"name": "Mine"})).await.assert_error(403, "forbidden");
    app.delete_auth(&format!("{PROJECTS}/default"), &user).await.assert_error(403, "forbidden");
    // An admin's API key does not act as the admin.
    let key = app.create_key(&admin, json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    let by_key = app.client.get(app.url(PROJECTS)).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(by_key.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(PROJECTS, Some(&admin)).await.status, StatusCode::OK);
}

/// 20 concurrent PATCHes of one project, 16 fields and settings among them:
/// each is read, merged and written at the version read, so none is lost.
#[actix_web::test]
async fn concurrent_patches_of_different_settings_all_survive() {
    let app = spawn_app().await;
    let admin = app.signed_up("root@example.com").await.access;
    assert_eq!(create(&app, &admin, json!({"id": "busy", "name": "Busy"})).await.status, StatusCode::CREATED);
    let changes = [
        json!({"settings": {"access_ttl": 601}}),
        json!({"settings": {"refresh_ttl": 7201}}),
        json!({"settings": {"refresh_reuse_grace": 3}}),
        json!({"settings": {"allow_registration": false}}),
        json!({"settings": {"require_email_verification": true}}),
        json!({"settings": {"passwordless_signup": true}}),
        json!({"settings": {"password_min_length": 12}}),
        json!({"settings": {"oidc_providers": {"google": {"client_id": "abc"}}}}),
        json!({"name": "Busy Project"}),
        json!({"environment": "staging"}),
        json!({"description": "many hands"}),
        json!({"settings": {"rate_limit_per_minute": 30}}),
        json!({"settings": {"rate_limit_burst": 7}}),
        json!({"settings": {"lockout_threshold": 4}}),
        json!({"settings": {"lockout_seconds": 90}}),
        json!({"enabled": true}),
        // Four more at once, each again one of the fields above with its value.
        json!({"settings": {"access_ttl": 601}}),
        json!({"name": "Busy Project"}),
        json!({"settings": {"lockout_threshold": 4}}),
        json!({"settings": {"passwordless_signup": true}}),
    ];
    assert_eq!(changes.len(), 20);
    let answers = join_all(changes.iter().map(|change| patch(&app, &admin, "busy", change.clone()))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let project = app.get(&format!("{PROJECTS}/busy"), Some(&admin)).await.body;
    let settings = &project["settings"];
    assert_eq!(
        (settings["access_ttl"].as_u64(), settings["refresh_ttl"].as_u64(), settings["refresh_reuse_grace"].as_u64()),
        (Some(601), Some(7201), Some(3))
    );
    assert_eq!(settings["allow_registration"], false);
    assert_eq!(settings["require_email_verification"], true);
    assert_eq!(settings["passwordless_signup"], true);
    assert_eq!(settings["password_min_length"], 12);
    assert_eq!(settings["oidc_providers"]["google"]["client_id"], "abc");
    assert_eq!((project["name"].as_str(), project["environment"].as_str()), (Some("Busy Project"), Some("staging")));
    assert_eq!(project["description"], "many hands");
    assert_eq!(
        (settings["rate_limit_per_minute"].as_u64(), settings["rate_limit_burst"].as_u64()),
        (Some(30), Some(7))
    );
    assert_eq!((settings["lockout_threshold"].as_u64(), settings["lockout_seconds"].as_u64()), (Some(4), Some(90)));
    assert_eq!(project["enabled"], true);
}

/// A project changed on node A is in force on node B within a second (the
/// change feed makes B reload its directory).
#[actix_web::test]
async fn a_project_change_on_one_node_reaches_the_other_within_a_second() {
    let Some([(a, _), (b, _)]) = spawn_pair().await else {
        eprintln!("skipped: CQL_TEST_NODES not set");
        return;
    };
    let admin = a.signed_up("root@example.com").await.access;
    assert_eq!(create(&a, &admin, json!({"id": "shared", "name": "Shared"})).await.status, StatusCode::CREATED);
    let changed = patch(&a, &admin, "shared", json!({"settings": {"access_ttl": 777}})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let started = Instant::now();
    loop {
        let seen = b.get("/api/v1/admin/projects/shared", Some(&admin)).await;
        if seen.body["settings"]["access_ttl"] == 777 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "B still shows {} after 3 s", seen.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delay = started.elapsed();
    eprintln!("cross-node project change delay: {} ms", delay.as_millis());
    assert!(delay < Duration::from_secs(1), "the change took {delay:?} to reach B");

    // Disabled on A: its tokens stop on B within a second.
    let body = json!({"email": "x@example.com", "password": crate::harness::PASSWORD, "name": "X"});
    let registered = a.post("/api/v1/projects/shared/auth/register", &body).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    let token = registered.body["token"].as_str().unwrap().to_owned();
    assert_eq!(b.verify(&token).await.status, StatusCode::OK, "cached on B");
    patch(&a, &admin, "shared", json!({"enabled": false})).await;
    let started = Instant::now();
    while b.verify(&token).await.status != StatusCode::UNAUTHORIZED {
        assert!(started.elapsed() < Duration::from_secs(3), "B still accepts the token after 3 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delay = started.elapsed();
    eprintln!("cross-node project disable delay: {} ms", delay.as_millis());
    assert!(delay < Duration::from_secs(1), "the disable took {delay:?} to reach B");
    b.post("/api/v1/projects/shared/auth/login", &body).await.assert_error(404, "not_found");
}
