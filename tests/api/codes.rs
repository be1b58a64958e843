//! One-time email codes: passwordless login, password reset, email
//! verification, initial passwords; codes read from the outbox.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, mails_to, nth_code, spawn_app, spawn_faulty, spawn_with};
use portcullis::account::ProjectId;
use portcullis::clock::Clock;

#[actix_web::test]
async fn sending_a_code_answers_the_same_whether_or_not_the_account_exists() {
    let app = spawn_app().await;
    app.signed_up("known@example.com").await;
    let mut answers = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        for purpose in ["login", "reset", "verify"] {
            let sent = app.post("/api/v1/auth/otp/send", &json!({"email": email, "purpose": purpose})).await;
            assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
            answers.push(sent.body);
        }
    }
    assert!(
        answers.iter().all(|a| *a
            == json!({"message_code": "code_sent", "message": "If the address can receive one, a code has been sent"})),
        "{answers:?}"
    );
    // Only the known account gets mail: login, reset, and verify (its address is not verified yet).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mails_to(&app.outbox, "known@example.com").len(), 3);
    assert!(mails_to(&app.outbox, "unknown@example.com").is_empty());
}

#[actix_web::test]
async fn a_login_code_signs_in_once() {
    let app = spawn_app().await;
    let registered = app.signed_up("a@example.com").await;
    let code = app.mailed_code("a@example.com", "login", 1).await;
    let mail = &mails_to(&app.outbox, "a@example.com")[0];
    assert!(mail.contains("Subject: Your Portcullis sign-in code"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "{mail}");

    let login = app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": code})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["id"], registered.user_id.as_str());
    assert!(login.body["user"]["email_verified_at"].is_string(), "reading the code proves the address");
    app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": code}))
        .await
        .assert_error(401, "invalid_code");

    // The aliases do the same.
    app.clock.advance(Duration::from_secs(31));
    let sent = app.post("/api/v1/auth/send-code", &json!({"email": "a@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let code = crate::harness::nth_code(&app.outbox, "a@example.com", 2).await;
    let login = app.post("/api/v1/auth/verify-code", &json!({"email": "a@example.com", "code": code})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
}

#[actix_web::test]
async fn codes_expire_after_ten_minutes() {
    let app = spawn_app().await;
    app.signed_up("a@example.com").await;
    let code = app.mailed_code("a@example.com", "login", 1).await;
    app.clock.advance(Duration::from_secs(601));
    app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": code}))
        .await
        .assert_error(401, "invalid_code");
}

#[actix_web::test]
async fn five_wrong_tries_kill_a_code() {
    let app = spawn_app().await;
    app.signed_up("a@example.com").await;
    let code = app.mailed_code("a@example.com", "login", 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": wrong}))
            .await
            .assert_error(401, "invalid_code");
    }
    app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": code}))
        .await
        .assert_error(401, "invalid_code");
    let events = app.auth.store().list_audit(&ProjectId::default_project(), 20).await.unwrap();
    let failures: u32 = events.iter().filter(|e| e.kind == "code_failed").map(|e| e.count).sum();
    assert!(failures >= 5, "code failures are audited (counted per minute): {failures}");
}

#[actix_web::test]
async fn a_code_for_one_purpose_does_not_serve_another() {
    let app = spawn_app().await;
    app.signed_up("a@example.com").await;
    let code = app.mailed_code("a@example.com", "login", 1).await;
    let reset = json!({"email": "a@example.com", "code": code, "new_password": "another good password"});
    app.post("/api/v1/auth/reset-password", &reset).await.assert_error(401, "invalid_code");
}

#[actix_web::test]
async fn reset_password_sets_it_and_revokes_every_session() {
    let app = spawn_app().await;
    let first = app.signed_up("a@example.com").await;
    let second = app.logged_in("a@example.com").await;
    let mut keys = Vec::new();
    for name in ["ci", "laptop"] {
        let created = app.create_key(&first.access, json!({"name": name})).await;
        keys.push(created.body["api_key"].as_str().unwrap().to_owned());
    }
    for key in &keys {
        assert_eq!(app.verify(key).await.status, StatusCode::OK, "cached before the reset");
    }
    let code = app.mailed_code("a@example.com", "reset", 1).await;
    let reset = json!({"email": "a@example.com", "code": code, "new_password": "a brand new password"});
    let answer = app.post("/api/v1/auth/reset-password", &reset).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["message_code"], "password_reset");
    assert_eq!(answer.body["revoked_api_keys"], 2, "{}", answer.body);
    for key in &keys {
        app.verify(key).await.assert_error(401, "invalid_token");
    }
    for tokens in [&first, &second] {
        app.me(&tokens.access).await.assert_error(401, "invalid_token");
        app.refresh(&tokens.refresh).await.assert_error(401, "invalid_token");
    }
    app.login("a@example.com", PASSWORD).await.assert_error(401, "invalid_credentials");
    assert_eq!(app.login("a@example.com", "a brand new password").await.status, StatusCode::OK);
    app.post("/api/v1/auth/reset-password", &reset).await.assert_error(401, "invalid_code");
    let events = app.auth.store().list_audit(&ProjectId::default_project(), 20).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "password_reset"), "reset audited");
    // Too short a password is a validation error, before the code is spent.
    let short = json!({"email": "a@example.com", "code": "123456", "new_password": "short"});
    app.post("/api/v1/auth/reset-password", &short).await.assert_error(400, "validation_error");
}

#[actix_web::test]
async fn an_unknown_address_gets_no_account_without_passwordless_signup() {
    let app = spawn_app().await;
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": "new@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    for code in ["000000", "123456"] {
        app.post("/api/v1/auth/otp/login", &json!({"email": "new@example.com", "code": code}))
            .await
            .assert_error(401, "invalid_code");
    }
    assert!(mails_to(&app.outbox, "new@example.com").is_empty());
    let reset = json!({"email": "new@example.com", "code": "123456", "new_password": "a brand new password"});
    app.post("/api/v1/auth/reset-password", &reset).await.assert_error(401, "invalid_code");
}

#[actix_web::test]
async fn passwordless_signup_creates_the_account_and_an_initial_password_can_be_set_once() {
    let app = spawn_with(|s| s.flows.passwordless_signup = true).await;
    let code = app.mailed_code("new@example.com", "login", 1).await;
    let login = app.post("/api/v1/auth/otp/login", &json!({"email": "new@example.com", "code": code})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["has_password"], false);
    let access = login.body["token"].as_str().unwrap().to_owned();
    // No password: password login fails like any wrong password.
    app.login("new@example.com", PASSWORD).await.assert_error(401, "invalid_credentials");

    let body = json!({"new_password": PASSWORD});
    let set = app.post_auth("/api/v1/auth/me/set-initial-password", &access, &body).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["message_code"], "password_set");
    assert_eq!(app.me(&access).await.body["has_password"], true);
    app.post_auth("/api/v1/auth/me/set-initial-password", &access, &body)
        .await
        .assert_error(409, "password_already_set");
    assert_eq!(app.login("new@example.com", PASSWORD).await.status, StatusCode::OK);

    // An account registered with a password cannot use it either.
    let other = app.signed_up("other@example.com").await;
    app.post_auth("/api/v1/auth/me/set-initial-password", &other.access, &body)
        .await
        .assert_error(409, "password_already_set");
}

#[actix_web::test]
async fn required_verification_holds_login_until_the_code_is_confirmed() {
    let app = spawn_with(|s| s.flows.require_email_verification = true).await;
    let register = app.register("a@example.com").await;
    assert_eq!(register.status, StatusCode::ACCEPTED, "{}", register.body);
    assert_eq!(register.body["message_code"], "verification_required");
    assert_eq!(register.body["message"], "Check your email for a verification code");
    let code = crate::harness::nth_code(&app.outbox, "a@example.com", 1).await;
    app.login("a@example.com", PASSWORD).await.assert_error(403, "email_not_verified");
    // The wrong password is told as always, never that the address is unverified.
    app.login("a@example.com", "wrong password").await.assert_error(401, "invalid_credentials");
    app.post("/api/v1/auth/register/verify", &json!({"email": "a@example.com", "code": "000000x"}))
        .await
        .assert_error(401, "invalid_code");

    let verified = app.post("/api/v1/auth/register/verify", &json!({"email": "a@example.com", "code": code})).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(verified.body["token"].is_string());
    assert!(verified.body["user"]["email_verified_at"].is_string());
    assert_eq!(app.login("a@example.com", PASSWORD).await.status, StatusCode::OK);
    app.post("/api/v1/auth/register/verify", &json!({"email": "a@example.com", "code": code}))
        .await
        .assert_error(401, "invalid_code");
}

#[actix_web::test]
async fn a_lost_verification_code_can_be_sent_again() {
    let app = spawn_with(|s| s.flows.require_email_verification = true).await;
    assert_eq!(app.register("a@example.com").await.status, StatusCode::ACCEPTED);
    crate::harness::nth_code(&app.outbox, "a@example.com", 1).await;
    app.clock.advance(Duration::from_secs(31));
    let code = app.mailed_code("a@example.com", "verify", 2).await;
    let verified = app.post("/api/v1/auth/register/verify", &json!({"email": "a@example.com", "code": code})).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
}

#[actix_web::test]
async fn bad_code_requests_are_validation_errors() {
    let app = spawn_app().await;
    let bad_purpose = app.post("/api/v1/auth/otp/send", &json!({"email": "a@example.com", "purpose": "party"})).await;
    bad_purpose.assert_error(400, "validation_error");
    assert!(bad_purpose.body["fields"]["purpose"].is_string());
    let bad_email = app.post("/api/v1/auth/otp/send", &json!({"email": "nope", "purpose": "login"})).await;
    bad_email.assert_error(400, "validation_error");
    let missing = app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com"})).await;
    missing.assert_error(400, "validation_error");
    assert!(missing.body["fields"]["code"].is_string());
    // A code no flow could accept is refused for its shape, on every code route alike.
    for (path, body) in [
        ("/api/v1/auth/otp/login", json!({"email": "a@example.com", "code": "12345!"})),
        ("/api/v1/auth/register/verify", json!({"email": "a@example.com", "code": "1".repeat(33)})),
        ("/api/v1/auth/reset-password", json!({"email": "a@example.com", "code": "12;456", "new_password": PASSWORD})),
        ("/api/v1/auth/2fa/verify", json!({"challenge_token": "x", "totp_code": "12345!"})),
    ] {
        let answer = app.post(path, &body).await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"]["code"].is_string(), "{path}: {:?}", answer.body);
    }
}

#[actix_web::test]
async fn code_routes_are_rate_limited_per_ip() {
    let app = spawn_with(|s| s.limits.rate_limit_enabled = true).await;
    let body = json!({"email": "a@example.com", "purpose": "login"});
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(app.post("/api/v1/auth/otp/send", &body).await.status.as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 5, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429));
}

#[actix_web::test]
async fn wrong_codes_hold_back_new_codes_but_never_refuse_a_right_one() {
    let app = spawn_with(|s| s.limits.lockout_threshold = 3).await;
    app.signed_up("a@example.com").await;
    let code = app.mailed_code("a@example.com", "login", 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for email in ["a@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            app.post("/api/v1/auth/otp/login", &json!({"email": email, "code": wrong}))
                .await
                .assert_error(401, "invalid_code");
        }
    }
    // Counted apart from the password: the password login is not locked.
    assert_eq!(app.login("a@example.com", PASSWORD).await.status, StatusCode::OK);
    // The address's codes are locked: a new code is answered as usual but not issued...
    app.clock.advance(Duration::from_secs(31));
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": "a@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    assert_eq!(mails_to(&app.outbox, "a@example.com").len(), 1, "a code was issued during the code lock");
    // ...while the live code (2 of its 5 tries left) still works when it is right.
    let right = app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": code})).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    // A right code ends the code lock: the next code is issued.
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(app.mailed_code("a@example.com", "login", 2).await.len(), 6);
    assert_eq!(mails_to(&app.outbox, "a@example.com").len(), 2, "the held-back code was never mailed");
}

#[actix_web::test]
async fn a_check_under_way_never_writes_an_old_code_over_a_fresh_one() {
    let (app, store) = spawn_faulty(|_| {}).await;
    app.signed_up("a@example.com").await;
    let old = app.mailed_code("a@example.com", "login", 1).await;
    let wrong = if old == "000000" { "111111" } else { "000000" };
    app.clock.advance(Duration::from_secs(31));
    // A wrong try reads the old code and is held just before it writes its try count back...
    store.hold_next("put_code");
    let wrong_body = json!({"email": "a@example.com", "code": wrong});
    let wrong_try = app.post("/api/v1/auth/otp/login", &wrong_body);
    // ...while a fresh code is asked for; then the held write goes on.
    let fresh_send = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        app.post("/api/v1/auth/otp/send", &json!({"email": "a@example.com", "purpose": "login"})).await
    };
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.release_held();
    };
    let (tried, sent, ()) = futures_util::join!(wrong_try, fresh_send, release);
    tried.assert_error(401, "invalid_code");
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let fresh = crate::harness::nth_code(&app.outbox, "a@example.com", 2).await;
    let login = app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": fresh})).await;
    assert_eq!(login.status, StatusCode::OK, "the fresh code was overwritten by the old one: {}", login.body);
}

#[actix_web::test]
async fn a_locked_password_never_refuses_the_owners_reset_and_the_reset_ends_the_lock() {
    let app = spawn_app().await;
    app.signed_up("a@example.com").await;
    // Ten wrong passwords from one address lock the account's password...
    for _ in 0..10 {
        app.login("a@example.com", "somebody guessing").await.assert_error(401, "invalid_credentials");
    }
    app.login("a@example.com", PASSWORD).await.assert_error(429, "rate_limited");
    // ...but the owner's reset code works,
    let code = app.mailed_code("a@example.com", "reset", 1).await;
    let reset = json!({"email": "a@example.com", "code": code, "new_password": "a brand new password"});
    let answer = app.post("/api/v1/auth/reset-password", &reset).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // and the reset ends the password lock at once.
    assert_eq!(app.login("a@example.com", "a brand new password").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn repeated_failures_are_one_counted_audit_row_and_rows_expire() {
    let app = spawn_app().await;
    app.signed_up("a@example.com").await;
    let code = app.mailed_code("a@example.com", "login", 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..30 {
        app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": wrong}))
            .await
            .assert_error(401, "invalid_code");
    }
    let project = ProjectId::default_project();
    let events = app.auth.store().list_audit(&project, 100).await.unwrap();
    let failures: Vec<_> = events.iter().filter(|e| e.kind == "code_failed").collect();
    assert_eq!(failures.len(), 1, "30 wrong codes within a minute are one row: {failures:?}");
    assert_eq!(failures[0].count, 30);
    // The next minute starts a new row.
    app.clock.advance(Duration::from_secs(60));
    app.post("/api/v1/auth/otp/login", &json!({"email": "a@example.com", "code": wrong})).await;
    let events = app.auth.store().list_audit(&project, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "code_failed").count(), 2);
    // Rows are kept audit_retention_days (90 by default), then swept.
    assert!(events.iter().all(|e| e.keep_until == e.at.plus(Duration::from_secs(90 * 86_400))));
    if std::env::var("CQL_TEST_NODES").is_err() {
        app.auth.store().sweep_expired(app.clock.now().plus(Duration::from_secs(91 * 86_400))).await.unwrap();
        assert!(app.auth.store().list_audit(&project, 100).await.unwrap().is_empty(), "nothing outlives retention");
    }
}

#[actix_web::test]
async fn send_code_without_a_purpose_sends_a_login_code() {
    let app = spawn_app().await;
    app.signed_up("ada@example.com").await;
    let sent = app.post("/api/v1/auth/send-code", &json!({"email": "ada@example.com", "method": "email"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let code = nth_code(&app.outbox, "ada@example.com", 1).await;
    let signed = app.post("/api/v1/auth/verify-code", &json!({"email": "ada@example.com", "code": code})).await;
    assert_eq!(signed.status, StatusCode::OK, "a login code: {}", signed.body);
    // otp/send still needs its purpose; an unknown method is refused.
    app.post("/api/v1/auth/otp/send", &json!({"email": "ada@example.com"})).await.assert_error(400, "validation_error");
    let sms = app.post("/api/v1/auth/send-code", &json!({"email": "ada@example.com", "method": "sms"})).await;
    sms.assert_error(400, "validation_error");
    assert!(sms.body["fields"]["method"].is_string(), "{}", sms.body);
}
