//! Register, login, setup status, and the request-level errors around them.

use std::time::Duration;

use futures_util::future::join_all;
use portcullis::settings::{HashCost, RateQuota};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, Tokens, answer, spawn_app, spawn_with};

#[actix_web::test]
async fn setup_status_flips_with_the_first_user() {
    let app = spawn_app().await;
    let before = app.get("/api/v1/auth/setup-status", None).await;
    assert_eq!(before.body, json!({"setup_complete": false}));
    app.signed_up("first@example.com").await;
    let after = app.get("/api/v1/auth/setup-status", None).await;
    assert_eq!(after.body, json!({"setup_complete": true}));
}

#[actix_web::test]
async fn first_user_is_superadmin_and_later_ones_are_users() {
    let app = spawn_app().await;
    let first = app.register("first@example.com").await;
    assert_eq!(first.body["user"]["role"], "superadmin");
    let second = app.register("second@example.com").await;
    assert_eq!(second.body["user"]["role"], "user");
}

#[actix_web::test]
async fn register_answers_the_token_response_and_is_never_cached() {
    let app = spawn_app().await;
    let answer = app
        .post(
            "/api/v1/auth/register",
            &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "displayName": "Ada", "username": "Ada_L", "company": "Analytical"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = &answer.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["token"].as_str().unwrap().split('.').count() == 3);
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
    let user = &body["user"];
    for field in [
        "id",
        "email",
        "username",
        "name",
        "first_name",
        "last_name",
        "company",
        "role",
        "email_verified_at",
        "two_factor_enabled",
        "has_password",
        "must_reset_password",
        "created_at",
        "updated_at",
    ] {
        assert!(user.get(field).is_some(), "user lacks {field}: {user}");
    }
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["username"], "ada_l");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["company"], "Analytical");
    assert_eq!(user["email_verified_at"], serde_json::Value::Null);
    assert_eq!(user["has_password"], true);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
}

#[actix_web::test]
async fn register_refuses_bad_fields_naming_each() {
    let app = spawn_app().await;
    let cases = [
        (json!({"password": PASSWORD, "name": "A"}), "email"),
        (json!({"email": "not-an-email", "password": PASSWORD, "name": "A"}), "email"),
        (json!({"email": "a@example.com", "password": "short", "name": "A"}), "password"),
        (json!({"email": "a@example.com", "password": "x".repeat(1025), "name": "A"}), "password"),
        (json!({"email": "a@example.com", "password": PASSWORD}), "name"),
        (json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "username": "no spaces"}), "username"),
    ];
    for (body, field) in cases {
        let answer = app.post("/api/v1/auth/register", &body).await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"][field].is_string(), "{field}: {}", answer.body);
    }
    // A wrongly typed field is a validation error too, not malformed JSON.
    app.post("/api/v1/auth/register", &json!({"email": 5})).await.assert_error(400, "validation_error");
    // 1024 bytes is still allowed.
    let long = app
        .post("/api/v1/auth/register", &json!({"email": "long@example.com", "password": "x".repeat(1024), "name": "A"}))
        .await;
    assert_eq!(long.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn taken_email_and_username_are_conflicts() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/auth/register",
        &json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "username": "ada"}),
    )
    .await;
    app.register("A@EXAMPLE.com").await.assert_error(409, "email_taken");
    app.post(
        "/api/v1/auth/register",
        &json!({"email": "b@example.com", "password": PASSWORD, "name": "B", "username": "ADA"}),
    )
    .await
    .assert_error(409, "username_taken");
}

#[actix_web::test]
async fn fifty_parallel_registrations_of_one_email_make_one_account() {
    let app = spawn_app().await;
    let attempts = (0..50).map(|_| app.register("race@example.com"));
    let answers = join_all(attempts).await;
    let created = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    let conflicts = answers.iter().filter(|a| a.code() == "email_taken").count();
    assert_eq!(created, 1, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert_eq!(conflicts, 49);
    app.logged_in("race@example.com").await;
}

#[actix_web::test]
async fn login_by_email_or_username() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/auth/register",
        &json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "username": "ada"}),
    )
    .await;
    let by_email = app.login("A@example.com", PASSWORD).await;
    assert_eq!(by_email.status, StatusCode::OK);
    assert_eq!(by_email.header("cache-control"), Some("no-store"));
    assert_eq!(by_email.body["user"]["email"], "a@example.com");
    let by_name = app.post("/api/v1/auth/login", &json!({"username": "ADA", "password": PASSWORD})).await;
    assert_eq!(by_name.status, StatusCode::OK, "{}", by_name.body);
    app.post("/api/v1/auth/login", &json!({"password": PASSWORD})).await.assert_error(400, "validation_error");
    app.post("/api/v1/auth/login", &json!({"email": "a@example.com"})).await.assert_error(400, "validation_error");
}

#[actix_web::test]
async fn unknown_account_and_wrong_password_answer_alike() {
    let app = spawn_app().await;
    app.signed_up("known@example.com").await;
    let wrong = app.login("known@example.com", "not the password").await;
    let unknown = app.login("nobody@example.com", "not the password").await;
    wrong.assert_error(401, "invalid_credentials");
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    let unknown_name = app.post("/api/v1/auth/login", &json!({"username": "nobody", "password": "x"})).await;
    assert_eq!(unknown_name.body, wrong.body);
}

#[actix_web::test]
async fn repeated_failures_lock_known_and_unknown_accounts_alike() {
    let app = spawn_app().await;
    app.signed_up("known@example.com").await;
    for email in ["known@example.com", "unknown@example.com"] {
        for _ in 0..10 {
            app.login(email, "wrong password").await.assert_error(401, "invalid_credentials");
        }
        let locked = app.login(email, "wrong password").await;
        locked.assert_error(429, "rate_limited");
        let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // Even the right password waits out the lock.
    app.login("known@example.com", PASSWORD).await.assert_error(429, "rate_limited");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.login("known@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn per_ip_limit_refuses_the_burst_excess_with_retry_after() {
    let app = spawn_with(|s| {
        s.limits.rate_limit_enabled = true;
        s.limits.auth_rate = RateQuota { per_minute: 10, burst: 5 };
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.login("x@example.com", "whatever1").await);
    }
    assert!(statuses[..5].iter().all(|a| a.code() == "invalid_credentials"));
    statuses[5].assert_error(429, "rate_limited");
    assert!(statuses[5].header("retry-after").is_some());
    // Register has a budget of its own.
    assert_eq!(app.register("fresh@example.com").await.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn retry_after_names_the_second_a_request_passes_again() {
    let app = spawn_with(|s| {
        s.limits.rate_limit_enabled = true;
        s.limits.auth_rate = RateQuota { per_minute: 10, burst: 1 };
    })
    .await;
    let body = json!({"email": "a@example.com", "purpose": "login"});
    let send = || app.post("/api/v1/auth/otp/send", &body);
    assert_eq!(send().await.status, StatusCode::ACCEPTED);
    let refused = send().await;
    refused.assert_error(429, "rate_limited");
    // One request every 6 s: the wait is a little under 6 s, and must be told as 6, not 5.
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(wait, 6, "Retry-After rounds the wait up to the whole second");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = send().await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "refused after waiting Retry-After: {}", again.body);
}

#[actix_web::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let limited = |trusted: bool| {
        spawn_with(move |s| {
            s.limits.rate_limit_enabled = true;
            s.limits.auth_rate = RateQuota { per_minute: 10, burst: 1 };
            if trusted {
                s.http.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            }
        })
    };
    let send = |app: &crate::harness::TestApp, client_ip: &str| {
        let request = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("{client_ip}, 127.0.0.1"))
            .json(&json!({"email": "x@example.com", "password": "whatever1"}));
        async move { answer(request.send().await.unwrap()).await }
    };
    let behind_proxy = limited(true).await;
    assert_eq!(send(&behind_proxy, "198.51.100.1").await.code(), "invalid_credentials");
    assert_eq!(send(&behind_proxy, "198.51.100.2").await.code(), "invalid_credentials");
    assert_eq!(send(&behind_proxy, "198.51.100.1").await.code(), "rate_limited");
    // Untrusted peer: the header is ignored, so both count as the peer.
    let direct = limited(false).await;
    assert_eq!(send(&direct, "198.51.100.1").await.code(), "invalid_credentials");
    assert_eq!(send(&direct, "198.51.100.2").await.code(), "rate_limited");
}

#[actix_web::test]
async fn malformed_bodies_get_json_errors() {
    let app = spawn_app().await;
    let raw = |content_type: &'static str, body: Vec<u8>| {
        app.client.post(app.url("/api/v1/auth/login")).header("content-type", content_type).body(body).send()
    };
    answer(raw("application/json", b"{\"email\":".to_vec()).await.unwrap()).await.assert_error(400, "invalid_json");
    answer(raw("text/plain", b"{}".to_vec()).await.unwrap()).await.assert_error(415, "unsupported_media_type");
    let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024)).into_bytes();
    answer(raw("application/json", huge).await.unwrap()).await.assert_error(413, "payload_too_large");
    app.get("/api/v1/nothing-here", None).await.assert_error(404, "not_found");
}

#[actix_web::test]
async fn saturated_hashing_pool_answers_503_with_retry_after() {
    let app = spawn_with(|s| {
        s.hash.threads = 1;
        s.hash.queue = 1;
        s.hash.cost = HashCost { memory_kib: 65_536, iterations: 3, parallelism: 1 };
    })
    .await;
    let emails: Vec<String> = (0..12).map(|i| format!("u{i}@example.com")).collect();
    let attempts = emails.iter().map(|email| app.login(email, "some password"));
    let answers = join_all(attempts).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!refused.is_empty(), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    for answer in refused {
        answer.assert_error(503, "overloaded");
        assert!(answer.header("retry-after").is_some());
    }
    assert!(answers.iter().all(|a| a.code() == "invalid_credentials" || a.code() == "overloaded"));
}

#[actix_web::test]
async fn tokens_identify_the_user() {
    let app = spawn_app().await;
    let tokens: Tokens = app.signed_up("a@example.com").await;
    let me = app.me(&tokens.access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], tokens.user_id.as_str());
}

#[actix_web::test]
async fn request_past_its_deadline_answers_503_overloaded() {
    let app = spawn_with(|s| {
        s.http.request_timeout = Duration::from_millis(100);
        s.hash.threads = 1;
        s.hash.cost = HashCost { memory_kib: 131_072, iterations: 4, parallelism: 1 };
    })
    .await;
    let answer = app.login("slow@example.com", "some password").await;
    answer.assert_error(503, "overloaded");
    assert!(answer.header("retry-after").is_some());
}

#[actix_web::test]
async fn hostile_and_look_alike_addresses_cannot_register() {
    let app = spawn_app().await;
    for email in [
        "a\u{202e}@x.io",
        "a\u{200b}@x.io",
        "\"quoted\"@x.io",
        "a,b@x.io",
        "a<b>@x.io",
        "Ada <ada@x.io>",
        "ada@[127.0.0.1]",
    ] {
        let answer = app.register(email).await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"]["email"].is_string(), "{email:?}: {}", answer.body);
    }
    // The same address spelled with a precomposed "é" and with "e" + a combining accent.
    app.signed_up("jos\u{e9}@example.com").await;
    app.register("JOSE\u{301}@example.com").await.assert_error(409, "email_taken");
    let login = app.login("jose\u{301}@Example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
}

#[actix_web::test]
async fn closed_registration_still_makes_the_first_user_of_a_fresh_install() {
    let app = spawn_with(|s| s.flows.allow_registration = false).await;
    let first = app.register("root@example.com").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["user"]["role"], "superadmin");
    app.register("second@example.com").await.assert_error(403, "forbidden");
    let status = app.get("/api/v1/auth/setup-status", None).await;
    assert_eq!(status.body["setup_complete"], true);
}
