//! Mail through a real SMTP server: Python's aiosmtpd on loopback, storing
//! what it receives in a maildir. Runs when `SMTP_TEST_PYTHON` names a
//! Python with aiosmtpd (the README test command installs it into its venv
//! and sets `SMTP_TEST_REQUIRED=1`, which makes a missing one a failure).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{mails_to, nth_code, spawn_with};

struct SmtpServer {
    child: Child,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Where delivered messages land.
    fn inbox(&self) -> PathBuf {
        self.maildir.path().join("maildir/new")
    }
}

fn python() -> Option<String> {
    match std::env::var("SMTP_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var("SMTP_TEST_REQUIRED").is_ok() => {
            panic!("SMTP_TEST_REQUIRED is set but SMTP_TEST_PYTHON is not")
        }
        Err(_) => None,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts aiosmtpd on `port` and waits (up to 10 s) until it accepts connections.
async fn smtp_server(python: &str, port: u16) -> SmtpServer {
    let maildir = tempfile::tempdir().unwrap();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        // A path that does not exist yet: the Mailbox handler makes the maildir.
        .arg(maildir.path().join("maildir"))
        .spawn()
        .expect("aiosmtpd starts");
    let server = SmtpServer { child, maildir };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("aiosmtpd did not listen on 127.0.0.1:{port}");
}

async fn wait_for_mail(inbox: &Path, to: &str, within: Duration) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Some(mail) = mails_to(inbox, to).pop() {
            return mail;
        }
        assert!(started.elapsed() < within, "no mail to {to} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_reset_code_arrives_by_smtp_and_works() {
    let Some(python) = python() else {
        eprintln!("skipped: SMTP_TEST_PYTHON not set");
        return;
    };
    let port = free_port();
    let server = smtp_server(&python, port).await;
    let app = spawn_with(|s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        s.mail_from = "Acme Accounts <accounts@acme.test>".into();
        s.project_name = "Acme".into();
    })
    .await;
    let tokens = app.signed_up("ada@example.com").await;
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": "ada@example.com", "purpose": "reset"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);

    let mail = wait_for_mail(&server.inbox(), "ada@example.com", Duration::from_secs(10)).await;
    for part in [
        "From: \"Acme Accounts\" <accounts@acme.test>",
        "Subject: Your Acme password reset code",
        "text/plain",
        "text/html",
    ] {
        assert!(mail.contains(part), "{part} missing from\n{mail}");
    }
    let code = crate::harness::code_in(&mail);
    let reset = json!({"email": "ada@example.com", "code": code, "new_password": "a brand new password"});
    let answer = app.post("/api/v1/auth/reset-password", &reset).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    app.me(&tokens.access).await.assert_error(401, "invalid_token");
    assert!(mails_to(&app.outbox, "ada@example.com").is_empty(), "with SMTP set, nothing goes to the outbox");
}

#[actix_web::test]
async fn mail_is_retried_until_the_server_answers() {
    let Some(python) = python() else {
        eprintln!("skipped: SMTP_TEST_PYTHON not set");
        return;
    };
    let port = free_port();
    let app = spawn_with(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    app.signed_up("ada@example.com").await;
    // The relay is down: the request is answered at once all the same.
    let started = std::time::Instant::now();
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": "ada@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    assert!(started.elapsed() < Duration::from_secs(1), "sending waited for SMTP: {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = smtp_server(&python, port).await;
    let code = nth_code(&server.inbox(), "ada@example.com", 1).await;
    let login = app.post("/api/v1/auth/otp/login", &json!({"email": "ada@example.com", "code": code})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
}
