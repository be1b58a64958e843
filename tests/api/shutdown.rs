//! Shutdown drains: what a client was told is under way (a queued mail)
//! still happens when the gateway is stopped as SIGTERM stops it.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{mails_to, spawn_with};
use crate::smtp::{free_port, python, smtp_server};

#[actix_web::test]
async fn every_queued_mail_is_in_the_outbox_when_shutdown_ends() {
    let mut app = spawn_with(|s| s.flows.passwordless_signup = true).await;
    let addresses: Vec<String> = (0..100).map(|i| format!("user{i}@example.com")).collect();
    let bodies: Vec<_> = addresses.iter().map(|email| json!({"email": email, "purpose": "login"})).collect();
    let sends = bodies.iter().map(|body| app.post("/api/v1/auth/otp/send", body));
    for sent in join_all(sends).await {
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    }
    app.shut_down().await.expect("a clean shutdown");
    // Looked at once, the moment shutdown is over: nothing may still be on its way.
    let missing: Vec<&String> = addresses.iter().filter(|a| mails_to(&app.outbox, a).is_empty()).collect();
    assert!(missing.is_empty(), "{} of 100 acknowledged mails were lost: {missing:?}", missing.len());
}

#[actix_web::test]
async fn a_mail_waiting_for_its_relay_is_delivered_before_shutdown_ends() {
    let Some(python) = python() else {
        eprintln!("skipped: SMTP_TEST_PYTHON not set");
        return;
    };
    let port = free_port();
    let mut app = spawn_with(|s| s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    app.signed_up("ada@example.com").await;
    // The relay is down: the first delivery fails and the message waits for its retry.
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": "ada@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = actix_web::rt::spawn(async move {
        let stopped = app.shut_down().await;
        (app, stopped)
    });
    // Shutdown has begun; the relay comes up while it waits for the mail.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!stopping.is_finished(), "shutdown ended with a mail still queued");
    let server = smtp_server(&python, port).await;
    let (_app, stopped) = tokio::time::timeout(Duration::from_secs(25), stopping).await.unwrap().unwrap();
    stopped.expect("a clean shutdown");
    assert_eq!(mails_to(&server.inbox(), "ada@example.com").len(), 1, "the queued code was not delivered");
}
