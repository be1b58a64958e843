//! The real binary's log over a full run of every flow: one line per
//! request with method, route, status, latency and request id, and never a
//! password, code, secret, token or key.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Builder, Secret};

use crate::harness::{PASSWORD, code_in, mails_to};
use crate::process::{Gateway, start_with};

impl Gateway {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> crate::harness::Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        crate::harness::answer(request.send().await.unwrap()).await
    }
}

/// Waits for the `n`th mail to `to` in the outbox; its code.
async fn mailed(outbox: &std::path::Path, to: &str, n: usize) -> String {
    for _ in 0..250 {
        if let Some(mail) = mails_to(outbox, to).get(n - 1) {
            return code_in(mail);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no mail #{n} to {to}");
}

#[actix_web::test]
async fn a_full_run_logs_every_request_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = start_with(dir.path(), &[("PORTCULLIS_LOG_LEVEL", "debug")]);
    let outbox = dir.path().join("outbox");
    let post = reqwest::Method::POST;
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];

    // Register, log in (right and wrong), refresh, read the profile.
    let registered = gateway
        .post("/api/v1/auth/register", json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}))
        .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    let access = registered.body["token"].as_str().unwrap().to_owned();
    let refresh = registered.body["refresh_token"].as_str().unwrap().to_owned();
    let wrong = "a wrong password for the log";
    secrets.extend([access.clone(), refresh.clone(), wrong.to_owned()]);
    gateway.post("/api/v1/auth/login", json!({"email": "ada@example.com", "password": wrong})).await;
    let refreshed = gateway.post("/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    secrets.push(refreshed.body["refresh_token"].as_str().unwrap().to_owned());
    secrets.push(refreshed.body["token"].as_str().unwrap().to_owned());
    let traced = gateway
        .client
        .get(format!("{}/api/v1/auth/me", gateway.base))
        .bearer_auth(&access)
        .header("X-Request-Id", "client-chosen-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], "client-chosen-id-42");

    // An API key, used on the forward-auth route.
    let key = gateway.send(post.clone(), "/api/v1/auth/api-keys", Some(&access), json!({"name": "ci"})).await;
    let key = key.body["api_key"].as_str().unwrap().to_owned();
    secrets.push(key.clone());
    assert_eq!(gateway.get("/api/v1/verify", Some(&key)).await.status, StatusCode::OK);

    // Two-factor: setup, enable, a challenged login completed with a code.
    let setup = gateway.send(post.clone(), "/api/v1/auth/2fa/setup", Some(&access), json!({})).await;
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let totp =
        Builder::new().with_secret(Secret::try_from_base32(&secret).unwrap().as_bytes().to_vec()).build().unwrap();
    let code = totp.generate_current().to_string();
    let enabled = gateway.send(post.clone(), "/api/v1/auth/2fa/enable", Some(&access), json!({"code": code})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    let backup: Vec<String> =
        enabled.body["backup_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    secrets.push(secret);
    secrets.extend(backup.iter().cloned());
    let login = gateway.post("/api/v1/auth/login", json!({"email": "ada@example.com", "password": PASSWORD})).await;
    let challenge = login.body["challenge_token"].as_str().unwrap().to_owned();
    secrets.push(challenge.clone());
    let verified =
        gateway.post("/api/v1/auth/2fa/verify", json!({"challenge_token": challenge, "code": backup[0]})).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    secrets.push(verified.body["token"].as_str().unwrap().to_owned());

    // Email codes: a reset with a mailed code, a wrong code, a new password.
    gateway.post("/api/v1/auth/otp/send", json!({"email": "ada@example.com", "purpose": "reset"})).await;
    let reset_code = mailed(&outbox, "ada@example.com", 1).await;
    let new_password = "the new password for the log";
    secrets.extend([reset_code.clone(), new_password.to_owned()]);
    let wrong_code = if reset_code == "000000" { "111111" } else { "000000" };
    gateway
        .post(
            "/api/v1/auth/reset-password",
            json!({"email": "ada@example.com", "code": wrong_code, "new_password": new_password}),
        )
        .await;
    let reset = gateway
        .post(
            "/api/v1/auth/reset-password",
            json!({"email": "ada@example.com", "code": reset_code, "new_password": new_password}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    gateway.post("/api/v1/introspect", json!({"token": access})).await;

    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(), Some(0));
    let lines = gateway.log.lock().unwrap().clone();
    assert!(lines.len() > 20, "too few log lines: {}", lines.len());
    let log = lines.join("\n");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log contains a secret: {secret}");
        let bare = secret.replace('-', "");
        assert!(bare.len() < 6 || !log.contains(&bare), "the log contains a secret: {bare}");
    }

    // One line per request, with what an operator greps for.
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 14, "one line for each of the 14 requests sent");
    for line in &requests {
        for field in ["route", "status", "latency_us"] {
            assert!(!line[field].is_null(), "no {field} in {line}");
        }
        let span = &line["span"];
        assert!(span["method"].is_string() && span["request_id"].is_string(), "no method or request id in {line}");
    }
    assert!(
        requests.iter().any(|l| l["span"]["request_id"] == "client-chosen-id-42" && l["route"] == "/api/v1/auth/me"),
        "the client's request id is not in the log"
    );
}
