//! Account protection against an attacker with a stolen access token or
//! many addresses: every check of a secret counts against the account's
//! lock, answers the same for every wrong part, and cannot be raced past.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Builder, Secret, Totp};

use crate::harness::{PASSWORD, TestApp, Tokens, spawn_app, spawn_faulty, spawn_with};
use portcullis::clock::Clock;
use portcullis::settings::{HashCost, RateQuota};

fn code_now(app: &TestApp, totp: &Totp) -> String {
    totp.generate(u64::try_from(app.clock.now().as_secs()).unwrap()).to_string()
}

/// A code that is not the current one.
fn wrong_code(app: &TestApp, totp: &Totp) -> String {
    if code_now(app, totp) == "000000" { "111111".into() } else { "000000".into() }
}

/// Signs `email` up and sets 2FA up; enabled too when `enable`.
async fn with_two_factor(app: &TestApp, email: &str, enable: bool) -> (Tokens, Totp) {
    let tokens = app.signed_up(email).await;
    let setup = app.post_auth("/api/v1/auth/2fa/setup", &tokens.access, &json!({})).await;
    let secret = Secret::try_from_base32(setup.body["secret"].as_str().unwrap()).unwrap().as_bytes().to_vec();
    let totp = Builder::new().with_secret(secret).build().unwrap();
    if enable {
        let code = code_now(app, &totp);
        let enabled = app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": code})).await;
        assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
        app.clock.advance(std::time::Duration::from_secs(30));
    }
    (tokens, totp)
}

/// Sends `wrong` until the route answers 429 (at most `threshold + 1` tries);
/// then the right answer is refused too, with `Retry-After`.
async fn locks_after_guesses(app: &TestApp, put: bool, path: &str, access: &str, wrong: &Value, right: &Value) {
    let send = |body: &Value| {
        let body = body.clone();
        async move { if put { app.put_auth(path, access, &body).await } else { app.post_auth(path, access, &body).await } }
    };
    let mut refused = None;
    for attempt in 1..=11 {
        let answer = send(wrong).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(attempt);
            break;
        }
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} attempt {attempt}: {}", answer.body);
    }
    assert_eq!(refused, Some(11), "{path}: 10 wrong answers, then the lock");
    let locked = send(right).await;
    locked.assert_error(429, "rate_limited");
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{path}: Retry-After {wait}");
    // The lock is the account's: its password login waits as well.
    app.login(&access_owner(app, access).await, PASSWORD).await.assert_error(429, "rate_limited");
}

async fn access_owner(app: &TestApp, access: &str) -> String {
    app.me(access).await.body["email"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn guessing_a_code_on_signed_in_routes_locks_the_account() {
    let app = spawn_app().await;
    let (tokens, totp) = with_two_factor(&app, "regen@example.com", true).await;
    let (wrong, right) = (wrong_code(&app, &totp), code_now(&app, &totp));
    locks_after_guesses(
        &app,
        false,
        "/api/v1/auth/2fa/backup-codes/regenerate",
        &tokens.access,
        &json!({"password": PASSWORD, "code": wrong}),
        &json!({"password": PASSWORD, "code": right}),
    )
    .await;

    let app = spawn_app().await;
    let (tokens, totp) = with_two_factor(&app, "disable@example.com", true).await;
    let (wrong, right) = (wrong_code(&app, &totp), code_now(&app, &totp));
    locks_after_guesses(
        &app,
        false,
        "/api/v1/auth/2fa/disable",
        &tokens.access,
        &json!({"password": PASSWORD, "code": wrong}),
        &json!({"password": PASSWORD, "code": right}),
    )
    .await;

    let app = spawn_app().await;
    let (tokens, totp) = with_two_factor(&app, "enable@example.com", false).await;
    let (wrong, right) = (wrong_code(&app, &totp), code_now(&app, &totp));
    locks_after_guesses(
        &app,
        false,
        "/api/v1/auth/2fa/enable",
        &tokens.access,
        &json!({"code": wrong}),
        &json!({"code": right}),
    )
    .await;
}

#[actix_web::test]
async fn guessing_the_password_with_a_stolen_token_locks_the_account() {
    let app = spawn_app().await;
    let tokens = app.signed_up("owner@example.com").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "a brand new password"});
    locks_after_guesses(
        &app,
        true,
        "/api/v1/auth/me/password",
        &tokens.access,
        &change("not it at all"),
        &change(PASSWORD),
    )
    .await;
}

#[actix_web::test]
async fn signed_in_secret_checks_have_a_per_ip_budget() {
    let app = spawn_with(|s| {
        s.limits.rate_limit_enabled = true;
        s.limits.auth_rate = RateQuota { per_minute: 10, burst: 5 };
    })
    .await;
    let tokens = app.signed_up("owner@example.com").await;
    let wrong = json!({"current_password": "not it at all", "new_password": "a brand new password"});
    for _ in 0..5 {
        app.put_auth("/api/v1/auth/me/password", &tokens.access, &wrong).await.assert_error(401, "invalid_credentials");
    }
    let refused = app.put_auth("/api/v1/auth/me/password", &tokens.access, &wrong).await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.header("retry-after").is_some());
}

#[actix_web::test]
async fn disable_answers_the_same_for_a_wrong_password_and_a_wrong_code() {
    let app = spawn_app().await;
    let (tokens, totp) = with_two_factor(&app, "a@example.com", true).await;
    let path = "/api/v1/auth/2fa/disable";
    let wrong_password = app
        .post_auth(path, &tokens.access, &json!({"password": "not the password", "code": code_now(&app, &totp)}))
        .await;
    app.clock.advance(std::time::Duration::from_secs(30));
    let wrong_code =
        app.post_auth(path, &tokens.access, &json!({"password": PASSWORD, "code": wrong_code(&app, &totp)})).await;
    for answer in [&wrong_password, &wrong_code] {
        answer.assert_error(401, "invalid_credentials");
    }
    assert_eq!(wrong_password.body, wrong_code.body, "the two failures must not be told apart");
}

#[actix_web::test]
async fn parallel_wrong_logins_cannot_pass_the_lock() {
    let app = spawn_app().await;
    app.signed_up("target@example.com").await;
    let body = json!({"email": "target@example.com", "password": "forty guesses at once"});
    // Waves of 40 at once (as from 40 addresses) until a wave has nothing evaluated: the lock.
    let mut evaluated = 0;
    for wave in 0..20 {
        let answers = join_all((0..40).map(|_| app.post("/api/v1/auth/login", &body))).await;
        let codes: Vec<&str> = answers.iter().map(|a| a.code()).collect();
        assert!(codes.iter().all(|c| *c == "invalid_credentials" || *c == "rate_limited"), "wave {wave}: {codes:?}");
        let checked = codes.iter().filter(|c| **c == "invalid_credentials").count();
        if checked == 0 {
            break;
        }
        evaluated += checked;
    }
    assert!(evaluated <= 10, "{evaluated} wrong passwords were checked (threshold 10)");
    // One lock, not stacked ones: the base 60 s, and the right password waits it out too.
    let locked = app.login("target@example.com", PASSWORD).await;
    locked.assert_error(429, "rate_limited");
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((2..=60).contains(&wait), "Retry-After {wait}: no lock, or stacked locks");
}

#[actix_web::test]
async fn one_signed_in_user_cannot_take_the_hashing_pool() {
    let app = spawn_with(|s| {
        s.hash.threads = 1;
        s.hash.queue = 4;
        s.hash.cost = HashCost { memory_kib: 8_192, iterations: 1, parallelism: 1 };
        // A busy test machine may be slow: only a full queue may refuse here, never the clock.
        s.hash.deadline = std::time::Duration::from_secs(20);
    })
    .await;
    let attacker = app.signed_up("attacker@example.com").await;
    app.signed_up("other@example.com").await;
    let wrong = json!({"current_password": "not it at all", "new_password": "a brand new password"});
    let flood = join_all((0..80).map(|_| app.put_auth("/api/v1/auth/me/password", &attacker.access, &wrong)));
    let (flood, other) = futures_util::join!(flood, app.login("other@example.com", PASSWORD));
    assert_eq!(other.status, StatusCode::OK, "another user's login during the flood: {}", other.body);
    let codes: Vec<&str> = flood.iter().map(|a| a.code()).collect();
    assert!(
        codes.iter().all(|c| *c == "invalid_credentials" || *c == "rate_limited"),
        "the flood filled the pool (503s): {codes:?}"
    );
    assert!(codes.iter().filter(|c| **c == "invalid_credentials").count() <= 10, "{codes:?}");
}

#[actix_web::test]
async fn proving_an_address_ends_what_a_squatter_made_before() {
    let app = spawn_app().await;
    // Someone registers the victim's address first, with a password, a key and a session of their own.
    app.signed_up("first@example.com").await; // the superadmin, so the squatter is a plain user
    let squatter = app.signed_up("victim@example.com").await;
    let key = app.create_key(&squatter.access, json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(&key).await.status, StatusCode::OK);
    // The owner proves the address with an emailed code.
    let code = app.mailed_code("victim@example.com", "login", 1).await;
    let owner = app.post("/api/v1/auth/otp/login", &json!({"email": "victim@example.com", "code": code})).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    let owner = Tokens::from(&owner);
    // Everything made before the proof is gone, on every node (through the feed).
    app.me(&squatter.access).await.assert_error(401, "invalid_token");
    app.refresh(&squatter.refresh).await.assert_error(401, "invalid_token");
    app.verify(&key).await.assert_error(401, "invalid_token");
    app.login("victim@example.com", PASSWORD).await.assert_error(401, "invalid_credentials");
    // The owner's own session stands, and the owner sets the password.
    assert_eq!(app.me(&owner.access).await.status, StatusCode::OK);
    let set = app
        .post_auth("/api/v1/auth/me/set-initial-password", &owner.access, &json!({"new_password": "the owner's own"}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let events = app.auth.store().list_audit(&portcullis::account::ProjectId::default_project(), 50).await.unwrap();
    let ended = events.iter().find(|e| e.kind == "unverified_credentials_ended").expect("audited");
    assert_eq!(ended.detail.as_deref(), Some("sessions=1 api_keys=1 password_cleared=true"));
    // A second proof ends nothing more.
    app.clock.advance(std::time::Duration::from_secs(31));
    let code = app.mailed_code("victim@example.com", "login", 2).await;
    let second = app.post("/api/v1/auth/otp/login", &json!({"email": "victim@example.com", "code": code})).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(app.me(&owner.access).await.status, StatusCode::OK, "a later proof ends no session");
}

/// A right secret whose action then fails (here the store refusing a write
/// or a claim) gives its reserved attempt back at once: with one try left,
/// the owner's next login is not refused as if that attempt were still
/// under way.
#[actix_web::test]
async fn a_right_secret_whose_action_fails_gives_its_attempt_back() {
    let (app, store) = spawn_faulty(|s| s.limits.lockout_threshold = 3).await;
    let wrong_twice = || async {
        for _ in 0..2 {
            app.login("a@example.com", "wrong password").await.assert_error(401, "invalid_credentials");
        }
    };
    let (tokens, totp) = with_two_factor(&app, "a@example.com", false).await;
    wrong_twice().await;
    store.fail_op("update_user", true);
    let enable = json!({"code": code_now(&app, &totp)});
    app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &enable).await.assert_error(503, "store_unavailable");
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new password"});
    app.put_auth("/api/v1/auth/me/password", &tokens.access, &change).await.assert_error(503, "store_unavailable");
    store.fail_op("update_user", false);
    assert_eq!(app.login("a@example.com", PASSWORD).await.status, StatusCode::OK, "the failed actions hold no try");

    // The second step of a 2FA login: the right code, its claim refused.
    // (The code the failed enable used is spent: the next one enables.)
    app.clock.advance(std::time::Duration::from_secs(30));
    let enable = json!({"code": code_now(&app, &totp)});
    let enabled = app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &enable).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    app.clock.advance(std::time::Duration::from_secs(30));
    wrong_twice().await;
    let challenge = app.login("a@example.com", PASSWORD).await;
    let challenge = challenge.body["challenge_token"].as_str().expect("a 2FA challenge").to_owned();
    store.fail_op("claim_once", true);
    let verify = json!({"challenge_token": challenge, "code": code_now(&app, &totp)});
    app.post("/api/v1/auth/2fa/verify", &verify).await.assert_error(503, "store_unavailable");
    store.fail_op("claim_once", false);
    let again = app.login("a@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body["challenge_token"].is_string());
}
