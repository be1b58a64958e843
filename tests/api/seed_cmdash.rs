//! Seed `001` (the cm_ dashboard), written from its document: signup with
//! an emailed code, login, Google, refresh, OTP login and password reset,
//! sessions, two-factor and passkeys, all under `/api/v1/auth` as the core
//! API serves them (24 h access tokens, as the document says).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::authenticator::{Alg, Credential};
use crate::harness::{Answer, TestApp, nth_code, spawn_with};
use crate::oidc_provider::{SigningKey, TestProvider};
use crate::passkeys::origin;
use crate::two_factor::{authenticator, code_now};
use portcullis::clock::Clock;

const STEP: Duration = Duration::from_secs(30);

/// The document's token answer: an access and a refresh token.
#[track_caller]
fn tokens(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let access = answer.body["token"].as_str().expect("access token").to_owned();
    let refresh = answer.body["refresh_token"].as_str().expect("refresh token").to_owned();
    (access, refresh)
}

fn totp_now(app: &TestApp, secret: &str) -> String {
    code_now(app, &authenticator(secret))
}

#[actix_web::test]
async fn a_cm_dashboard_client_works_unchanged() {
    // The dashboard's deployment: signup verified by email, 24 h access tokens.
    let app = spawn_with(|s| {
        s.flows.require_email_verification = true;
        s.token.access_ttl = Duration::from_secs(86_400);
    })
    .await;
    let email = "owner@acme.example";

    // Signup sends a verification OTP; register/verify completes it.
    let signup = json!({"email": email, "password": "password-one", "name": "Olive Owner", "tenant_name": "Acme"});
    let registered = app.post("/api/v1/auth/register", &signup).await;
    assert_eq!(registered.status, StatusCode::ACCEPTED, "{}", registered.body);
    assert_eq!(registered.body["message_code"], "verification_required");
    let code = nth_code(&app.outbox, email, 1).await;
    let verified = app.post("/api/v1/auth/register/verify", &json!({"email": email, "code": code})).await;
    let (access, _) = tokens(&verified);
    assert!(app.get("/api/v1/auth/me", Some(&access)).await.body["email_verified_at"].is_string());
    assert_eq!(verified.body["expires_in"], 86_400, "access tokens last 24h");
    assert_eq!(verified.body["user"]["company"], "Acme", "tenant_name is the organization");

    // Password login, refresh (rotating), me, logout.
    let login = app.post("/api/v1/auth/login", &json!({"email": email, "password": "password-one"})).await;
    let (_, refresh) = tokens(&login);
    let refreshed = app.post("/api/v1/auth/refresh", &json!({"refresh_token": refresh})).await;
    let (access_2, refresh_2) = tokens(&refreshed);
    assert_ne!(refresh_2, refresh, "refresh tokens rotate on use");
    let me = app.get("/api/v1/auth/me", Some(&access_2)).await;
    assert_eq!(me.body["email"], email, "{}", me.body);
    let out = app.post_auth("/api/v1/auth/logout", &access_2, &json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(
        app.post("/api/v1/auth/refresh", &json!({"refresh_token": refresh_2})).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.get("/api/v1/auth/me", Some(&access_2)).await.assert_error(401, "invalid_token");

    // OTP login, then the sessions: list, revoke one, revoke all but this.
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": email, "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let code = nth_code(&app.outbox, email, 2).await;
    let (by_code, _) = tokens(&app.post("/api/v1/auth/otp/login", &json!({"email": email, "code": code})).await);
    let listed = app.get("/api/v1/auth/sessions", Some(&by_code)).await;
    let sessions = listed.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "register/verify's and the code's (the login's ended): {sessions:?}");
    for field in ["id", "user_agent", "ip", "created_at", "last_seen_at", "current"] {
        assert!(sessions[0].get(field).is_some(), "{field}: {sessions:?}");
    }
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    let revoked = app.delete_auth(&format!("/api/v1/auth/sessions/{other}"), &by_code).await;
    assert_eq!(revoked.body["message_code"], "session_revoked", "{}", revoked.body);
    assert_eq!(app.verify(&access).await.status, StatusCode::UNAUTHORIZED, "revoked on the gateway too");
    let login = app.post("/api/v1/auth/login", &json!({"email": email, "password": "password-one"})).await;
    let (access, _) = tokens(&login);
    let rest = app.delete_auth("/api/v1/auth/sessions", &by_code).await;
    assert_eq!((&rest.body["message_code"], &rest.body["revoked"]), (&json!("sessions_revoked"), &json!(1)));
    assert_eq!(app.verify(&access).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.verify(&by_code).await.status, StatusCode::OK, "the current one stays");

    // Password reset with an OTP: every session ends.
    app.post("/api/v1/auth/otp/send", &json!({"email": email, "purpose": "reset"})).await;
    let code = nth_code(&app.outbox, email, 3).await;
    let reset = json!({"email": email, "code": code, "new_password": "password-two"});
    let done = app.post("/api/v1/auth/reset-password", &reset).await;
    assert_eq!(done.body["message_code"], "password_reset", "{}", done.body);
    assert_eq!(app.verify(&by_code).await.status, StatusCode::UNAUTHORIZED);
    let (access, _) =
        tokens(&app.post("/api/v1/auth/login", &json!({"email": email, "password": "password-two"})).await);

    // Two-factor: status, setup, enable (backup codes), the login challenge, regenerate, disable.
    let status = app.get("/api/v1/auth/2fa/status", Some(&access)).await;
    assert_eq!(status.body["enabled"], false, "{}", status.body);
    let setup = app.post_auth("/api/v1/auth/2fa/setup", &access, &json!({})).await;
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    assert!(setup.body["qr_code_url"].as_str().unwrap().starts_with("otpauth://totp/"), "{}", setup.body);
    let enabled = app.post_auth("/api/v1/auth/2fa/enable", &access, &json!({"code": totp_now(&app, &secret)})).await;
    assert_eq!(enabled.body["backup_codes"].as_array().map(Vec::len), Some(10), "{}", enabled.body);
    app.clock.advance(STEP);
    let challenge = app.post("/api/v1/auth/login", &json!({"email": email, "password": "password-two"})).await;
    assert_eq!(challenge.body["two_factor_required"], true, "{}", challenge.body);
    let step_two = json!({"challenge_token": challenge.body["challenge_token"], "code": totp_now(&app, &secret)});
    let (access, _) = tokens(&app.post("/api/v1/auth/2fa/verify", &step_two).await);
    app.clock.advance(STEP);
    let regenerated = app
        .post_auth("/api/v1/auth/2fa/backup-codes/regenerate", &access, &json!({"code": totp_now(&app, &secret)}))
        .await;
    assert_eq!(regenerated.body["backup_codes"].as_array().map(Vec::len), Some(10), "{}", regenerated.body);
    app.clock.advance(STEP);
    // API.md asks an account with a password for it as well (the document shows only `code`).
    let disable = json!({"code": totp_now(&app, &secret), "password": "password-two"});
    let disabled = app.post_auth("/api/v1/auth/2fa/disable", &access, &disable).await;
    assert_eq!(disabled.body["message_code"], "2fa_disabled", "{}", disabled.body);

    // Passkeys: register, list, rename, log in with an assertion, remove.
    let options = app.post_auth("/api/v1/auth/passkey/register/options", &access, &json!({})).await;
    let (mut credential, attestation) = Credential::create(&options.body["publicKey"], &origin(&app), Alg::Es256);
    let body = json!({"challenge_id": options.body["challenge_id"], "name": "Laptop", "credential": attestation});
    let registered = app.post_auth("/api/v1/auth/passkey/register/verify", &access, &body).await;
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    let listed = app.get("/api/v1/auth/passkey/list", Some(&access)).await;
    let passkey = listed.body["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/auth/passkey/{passkey}");
    let renamed = app.send_json(Method::PATCH, &path, Some(&access), &json!({"name": "Work laptop"})).await;
    assert_eq!(renamed.body["name"], "Work laptop", "{}", renamed.body);
    let options = app.post("/api/v1/auth/passkey/login/options", &json!({"email": email})).await;
    let assertion = credential.assert(&options.body["publicKey"], &origin(&app));
    let body = json!({"challenge_id": options.body["challenge_id"], "credential": assertion});
    let (by_passkey, _) = tokens(&app.post("/api/v1/auth/passkey/login/verify", &body).await);
    assert_eq!(app.get("/api/v1/auth/me", Some(&by_passkey)).await.body["email"], email);
    let removed = app.delete_auth(&path, &access).await;
    assert_eq!(removed.body["message_code"], "passkey_removed", "{}", removed.body);
    assert_eq!(app.get("/api/v1/auth/passkey/list", Some(&access)).await.body["passkeys"], json!([]));

    // Errors: the core shape and codes.
    let wrong = app.post("/api/v1/auth/login", &json!({"email": email, "password": "not it at all"})).await;
    wrong.assert_error(401, "invalid_credentials");
}

#[actix_web::test]
async fn a_cm_dashboard_client_signs_in_with_google() {
    let key = SigningKey::rsa("g1");
    let provider = TestProvider::start(&[&key]).await;
    let app = spawn_with(|_| {}).await;
    let root = app.signed_up("root@example.com").await.access;
    let google = json!({"google": provider.config(json!("dashboard-web"))});
    let set = app
        .send_json(
            Method::PATCH,
            "/api/v1/admin/projects/default",
            Some(&root),
            &json!({"settings": {"oidc_providers": google}}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let now = app.clock.now().as_secs();
    let claims = json!({"iss": provider.issuer, "aud": "dashboard-web", "sub": "g-42", "iat": now, "exp": now + 600,
                        "email": "gina@example.com", "email_verified": true, "name": "Gina"});
    // Signup, then login: one account.
    let first = app.post("/api/v1/auth/google", &json!({"id_token": key.sign(&claims)})).await;
    let (access, refresh) = tokens(&first);
    let again = app.post("/api/v1/auth/google", &json!({"id_token": key.sign(&claims)})).await;
    assert_eq!(again.body["user"]["id"], first.body["user"]["id"], "{}", again.body);
    assert_eq!(app.get("/api/v1/auth/me", Some(&access)).await.body["email"], "gina@example.com");
    tokens(&app.post("/api/v1/auth/refresh", &json!({"refresh_token": refresh})).await);
    let forged = app.post("/api/v1/auth/google", &json!({"id_token": "e30.e30.c2ln"})).await;
    forged.assert_error(401, "invalid_token");
}
