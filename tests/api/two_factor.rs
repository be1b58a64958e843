//! Two-factor: setup, enable, the login challenge, backup codes, disable,
//! replay and lockout, with codes computed from the secret the API returned.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use totp_rs::{Builder, Secret, Totp};

use crate::harness::{PASSWORD, TestApp, Tokens, spawn_app, spawn_with};
use portcullis::account::ProjectId;
use portcullis::clock::Clock;

const STEP: Duration = Duration::from_secs(30);

/// The authenticator app: TOTP from the base32 secret.
pub(crate) fn authenticator(secret: &str) -> Totp {
    let bytes = Secret::try_from_base32(secret).expect("base32 secret").as_bytes().to_vec();
    Builder::new().with_secret(bytes).build().expect("a valid TOTP")
}

/// The code `totp` shows at the app's time.
pub(crate) fn code_now(app: &TestApp, totp: &Totp) -> String {
    totp.generate(u64::try_from(app.clock.now().as_secs()).unwrap()).to_string()
}

/// Registers `email` and turns 2FA on; its tokens, authenticator and backup codes.
async fn enabled(app: &TestApp, email: &str) -> (Tokens, Totp, Vec<String>) {
    let tokens = app.signed_up(email).await;
    let setup = app.post_auth("/api/v1/auth/2fa/setup", &tokens.access, &json!({})).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    let totp = authenticator(setup.body["secret"].as_str().unwrap());
    let code = code_now(app, &totp);
    let enable = app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": code})).await;
    assert_eq!(enable.status, StatusCode::OK, "{}", enable.body);
    let backup =
        enable.body["backup_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    // The enable code's step is used up; later codes come from the next step.
    app.clock.advance(STEP);
    (tokens, totp, backup)
}

async fn new_challenge(app: &TestApp, email: &str) -> String {
    let login = app.login(email, PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["two_factor_required"], true, "{}", login.body);
    assert!(login.body.get("token").is_none(), "no token before the second factor");
    login.body["challenge_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, challenge: &str, code: &str) -> crate::harness::Answer {
    app.post("/api/v1/auth/2fa/verify", &json!({"challenge_token": challenge, "code": code})).await
}

#[actix_web::test]
async fn setup_then_enable_with_a_real_totp() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let status = app.get("/api/v1/auth/2fa/status", Some(&tokens.access)).await;
    assert_eq!(status.body, json!({"enabled": false, "backup_codes_remaining": 0}));
    // Enabling before setup has nothing to confirm.
    let early = app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": "123456"})).await;
    early.assert_error(400, "validation_error");

    let setup = app.post_auth("/api/v1/auth/2fa/setup", &tokens.access, &json!({})).await;
    assert_eq!(setup.status, StatusCode::OK);
    assert_eq!(setup.header("cache-control"), Some("no-store"));
    let secret = setup.body["secret"].as_str().unwrap();
    assert_eq!(Secret::try_from_base32(secret).unwrap().as_bytes().len(), 20, "160-bit secret");
    let url = setup.body["qr_code_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Portcullis:a%40example.com?secret="), "{url}");
    assert!(url.contains(&format!("secret={secret}")) && url.contains("issuer=Portcullis"), "{url}");

    let totp = authenticator(secret);
    let wrong = if code_now(&app, &totp) == "000000" { "111111" } else { "000000" };
    app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": wrong}))
        .await
        .assert_error(401, "invalid_code");
    let enable =
        app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": code_now(&app, &totp)})).await;
    assert_eq!(enable.status, StatusCode::OK, "{}", enable.body);
    assert_eq!(enable.body["message_code"], "2fa_enabled");
    let backup = enable.body["backup_codes"].as_array().unwrap();
    assert_eq!(backup.len(), 10);
    let distinct: std::collections::HashSet<&str> = backup.iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 10);

    let status = app.get("/api/v1/auth/2fa/status", Some(&tokens.access)).await;
    assert_eq!(status.body, json!({"enabled": true, "backup_codes_remaining": 10}));
    assert_eq!(app.me(&tokens.access).await.body["two_factor_enabled"], true);
    app.post_auth("/api/v1/auth/2fa/setup", &tokens.access, &json!({})).await.assert_error(409, "already_enabled");
    app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": "123456"}))
        .await
        .assert_error(409, "already_enabled");
}

#[actix_web::test]
async fn the_secret_is_sealed_at_rest_and_backup_codes_are_hashed() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let setup = app.post_auth("/api/v1/auth/2fa/setup", &tokens.access, &json!({})).await;
    let secret = Secret::try_from_base32(setup.body["secret"].as_str().unwrap()).unwrap().as_bytes().to_vec();
    let totp = authenticator(setup.body["secret"].as_str().unwrap());
    let enable =
        app.post_auth("/api/v1/auth/2fa/enable", &tokens.access, &json!({"code": code_now(&app, &totp)})).await;
    let stored =
        app.auth.store().find_user_by_email(&ProjectId::default_project(), "a@example.com").await.unwrap().unwrap();
    let record = serde_json::to_vec(&stored).unwrap();
    let state = stored.two_factor.unwrap();
    assert!(!state.sealed_secret.windows(secret.len()).any(|w| w == secret.as_slice()), "secret stored in the clear");
    let text = String::from_utf8_lossy(&record);
    for code in enable.body["backup_codes"].as_array().unwrap() {
        let code = code.as_str().unwrap();
        assert!(!text.contains(code) && !text.contains(&code.replace('-', "")), "backup code stored in the clear");
    }
    assert_eq!(state.backup_codes.len(), 10);
}

#[actix_web::test]
async fn login_asks_for_the_second_factor_and_a_code_completes_it_once() {
    let app = spawn_app().await;
    let (_, totp, _) = enabled(&app, "a@example.com").await;
    let challenge = new_challenge(&app, "a@example.com").await;
    let code = code_now(&app, &totp);
    let done = verify(&app, &challenge, &code).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body["token"].is_string() && done.body["refresh_token"].is_string());
    assert_eq!(done.body["user"]["two_factor_enabled"], true);
    assert_eq!(app.me(done.body["token"].as_str().unwrap()).await.status, StatusCode::OK);

    // The same code again (same step): refused, on a fresh challenge too.
    let again = new_challenge(&app, "a@example.com").await;
    verify(&app, &again, &code).await.assert_error(401, "invalid_code");
    // The used challenge cannot be used again, even with a fresh code.
    app.clock.advance(STEP);
    verify(&app, &challenge, &code_now(&app, &totp)).await.assert_error(401, "invalid_token");
    // An inline totp_code signs in at once; replayed, it is refused.
    app.clock.advance(STEP);
    let code = code_now(&app, &totp);
    let inline = app
        .post("/api/v1/auth/login", &json!({"email": "a@example.com", "password": PASSWORD, "totpCode": code}))
        .await;
    assert_eq!(inline.status, StatusCode::OK, "{}", inline.body);
    assert!(inline.body["token"].is_string());
    let replay = app
        .post("/api/v1/auth/login", &json!({"email": "a@example.com", "password": PASSWORD, "totp_code": code}))
        .await;
    replay.assert_error(401, "invalid_code");
    // A code from one step back is accepted (clock drift), two steps ahead is not.
    app.clock.advance(STEP * 2);
    let behind = totp.generate(u64::try_from(app.clock.now().as_secs()).unwrap() - 30).to_string();
    assert_eq!(verify(&app, &challenge_for(&app).await, &behind).await.status, StatusCode::OK);
    let far = totp.generate(u64::try_from(app.clock.now().as_secs()).unwrap() + 60).to_string();
    verify(&app, &challenge_for(&app).await, &far).await.assert_error(401, "invalid_code");
}

async fn challenge_for(app: &TestApp) -> String {
    new_challenge(app, "a@example.com").await
}

#[actix_web::test]
async fn a_challenge_expires_and_cannot_be_forged() {
    let app = spawn_app().await;
    let (_, totp, _) = enabled(&app, "a@example.com").await;
    let challenge = new_challenge(&app, "a@example.com").await;
    let mut forged: Vec<char> = challenge.chars().collect();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    verify(&app, &forged, &code_now(&app, &totp)).await.assert_error(401, "invalid_token");
    verify(&app, "not-a-challenge", &code_now(&app, &totp)).await.assert_error(401, "invalid_token");
    app.clock.advance(Duration::from_secs(301));
    verify(&app, &challenge, &code_now(&app, &totp)).await.assert_error(401, "token_expired");
    // Bad input is a validation error.
    let missing = app.post("/api/v1/auth/2fa/verify", &json!({"code": "123456"})).await;
    missing.assert_error(400, "validation_error");
    assert!(missing.body["fields"]["challenge_token"].is_string());
}

#[actix_web::test]
async fn backup_codes_work_once_and_regenerate() {
    let app = spawn_app().await;
    let (tokens, totp, backup) = enabled(&app, "a@example.com").await;
    let first = verify(&app, &new_challenge(&app, "a@example.com").await, &backup[0].to_uppercase()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let status = app.get("/api/v1/auth/2fa/status", Some(&tokens.access)).await;
    assert_eq!(status.body["backup_codes_remaining"], 9);
    verify(&app, &new_challenge(&app, "a@example.com").await, &backup[0]).await.assert_error(401, "invalid_code");

    let regenerate = json!({"password": PASSWORD, "code": code_now(&app, &totp)});
    let regenerated = app.post_auth("/api/v1/auth/2fa/backup-codes/regenerate", &tokens.access, &regenerate).await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.body);
    let fresh: Vec<&str> =
        regenerated.body["backup_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(fresh.len(), 10);
    verify(&app, &new_challenge(&app, "a@example.com").await, &backup[1]).await.assert_error(401, "invalid_code");
    assert_eq!(verify(&app, &new_challenge(&app, "a@example.com").await, fresh[0]).await.status, StatusCode::OK);
    let wrong = json!({"password": PASSWORD, "code": "999999"});
    app.post_auth("/api/v1/auth/2fa/backup-codes/regenerate", &tokens.access, &wrong)
        .await
        .assert_error(401, "invalid_credentials");
    // API.md's body is the code alone; a password sent along must be right.
    app.clock.advance(STEP);
    let wrong_password = json!({"password": "wrong password", "code": code_now(&app, &totp)});
    app.post_auth("/api/v1/auth/2fa/backup-codes/regenerate", &tokens.access, &wrong_password)
        .await
        .assert_error(401, "invalid_credentials");
    app.clock.advance(STEP);
    let code_only = json!({"code": code_now(&app, &totp)});
    let again = app.post_auth("/api/v1/auth/2fa/backup-codes/regenerate", &tokens.access, &code_only).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_ne!(again.body["backup_codes"][0], regenerated.body["backup_codes"][0]);
    app.post_auth("/api/v1/auth/2fa/backup-codes/regenerate", &tokens.access, &json!({}))
        .await
        .assert_error(400, "validation_error");
}

#[actix_web::test]
async fn an_account_without_a_password_disables_with_its_code_alone() {
    let app = spawn_with(|s| s.flows.passwordless_signup = true).await;
    let code = app.mailed_code("p@example.com", "login", 1).await;
    let login = app.post("/api/v1/auth/otp/login", &json!({"email": "p@example.com", "code": code})).await;
    assert_eq!(login.body["user"]["has_password"], false, "{}", login.body);
    let access = login.body["token"].as_str().unwrap().to_owned();
    let setup = app.post_auth("/api/v1/auth/2fa/setup", &access, &json!({})).await;
    let totp = authenticator(setup.body["secret"].as_str().unwrap());
    let enable = app.post_auth("/api/v1/auth/2fa/enable", &access, &json!({"code": code_now(&app, &totp)})).await;
    assert_eq!(enable.status, StatusCode::OK, "{}", enable.body);
    app.clock.advance(STEP);
    let done = app.post_auth("/api/v1/auth/2fa/disable", &access, &json!({"code": code_now(&app, &totp)})).await;
    assert_eq!(done.body["message_code"], "2fa_disabled", "{}", done.body);
}

#[actix_web::test]
async fn wrong_codes_count_toward_the_account_lock() {
    let app = spawn_with(|s| s.limits.lockout_threshold = 3).await;
    let (_, totp, _) = enabled(&app, "a@example.com").await;
    let challenge = new_challenge(&app, "a@example.com").await;
    let wrong = if code_now(&app, &totp) == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        verify(&app, &challenge, wrong).await.assert_error(401, "invalid_code");
    }
    let locked = verify(&app, &challenge, &code_now(&app, &totp)).await;
    locked.assert_error(429, "rate_limited");
    assert!(locked.header("retry-after").is_some());
    app.login("a@example.com", PASSWORD).await.assert_error(429, "rate_limited");
}

#[actix_web::test]
async fn disable_needs_the_password_and_a_code() {
    let app = spawn_app().await;
    let (tokens, totp, _) = enabled(&app, "a@example.com").await;
    let disable = |password: &str, code: &str| json!({"password": password, "code": code});
    app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &disable("wrong password", &code_now(&app, &totp)))
        .await
        .assert_error(401, "invalid_credentials");
    app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &disable(PASSWORD, "000001"))
        .await
        .assert_error(401, "invalid_credentials");
    app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &json!({})).await.assert_error(400, "validation_error");
    // An account with a password gives it as well as the code.
    let code_only = app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &json!({"code": "000001"})).await;
    code_only.assert_error(400, "validation_error");
    assert!(code_only.body["fields"]["password"].is_string(), "{}", code_only.body);
    app.clock.advance(STEP);
    let done =
        app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &disable(PASSWORD, &code_now(&app, &totp))).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["message_code"], "2fa_disabled");
    let login = app.login("a@example.com", PASSWORD).await;
    assert!(login.body["token"].is_string(), "no second step once disabled: {}", login.body);
    app.post_auth("/api/v1/auth/2fa/disable", &tokens.access, &disable(PASSWORD, "123456"))
        .await
        .assert_error(400, "validation_error");

    let events = app.auth.store().list_audit(&ProjectId::default_project(), 50).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["two_factor_enabled", "two_factor_disabled", "two_factor_failed"] {
        assert!(kinds.contains(&kind), "{kind} not audited: {kinds:?}");
    }
    let enabled_event = events.iter().find(|e| e.kind == "two_factor_enabled").unwrap();
    assert_eq!(enabled_event.user_id.map(|u| u.to_string()), Some(tokens.user_id.clone()));
}

#[actix_web::test]
async fn two_factor_routes_need_a_signed_in_user() {
    let app = spawn_app().await;
    for path in ["/api/v1/auth/2fa/setup", "/api/v1/auth/2fa/enable", "/api/v1/auth/2fa/disable"] {
        let answer = app.post(path, &json!({})).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}: {}", answer.body);
    }
    assert_eq!(app.get("/api/v1/auth/2fa/status", None).await.status, StatusCode::UNAUTHORIZED);
}
