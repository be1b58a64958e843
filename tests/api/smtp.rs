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

pub(crate) struct SmtpServer {
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
    pub(crate) fn inbox(&self) -> PathBuf {
        self.maildir.path().join("maildir/new")
    }
}

pub(crate) fn python() -> Option<String> {
    match std::env::var("SMTP_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) if std::env::var("SMTP_TEST_REQUIRED").is_ok() => {
            panic!("SMTP_TEST_REQUIRED is set but SMTP_TEST_PYTHON is not")
        }
        Err(_) => None,
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts aiosmtpd on `port` and waits (up to 10 s) until it accepts connections.
pub(crate) async fn smtp_server(python: &str, port: u16) -> SmtpServer {
    smtp_server_with(python, port, &[]).await
}

/// The same, with more aiosmtpd options (such as a STARTTLS certificate).
async fn smtp_server_with(python: &str, port: u16, options: &[&str]) -> SmtpServer {
    let maildir = tempfile::tempdir().unwrap();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(options)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
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
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        s.mail.from = "Acme Accounts <accounts@acme.test>".into();
        s.flows.project_name = "Acme".into();
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
    let app = spawn_with(|s| s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
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

/// A test CA and a `localhost` server certificate it signed (openssl).
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Portcullis test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

#[actix_web::test]
async fn starttls_to_a_relay_with_a_private_ca() {
    let Some(python) = python() else {
        eprintln!("skipped: SMTP_TEST_PYTHON not set");
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let port = free_port();
    let cert = certs.path().join("server.pem").display().to_string();
    let key = certs.path().join("server.key").display().to_string();
    // aiosmtpd refuses mail until the client has switched to TLS.
    let server = smtp_server_with(&python, port, &["--tlscert", &cert, "--tlskey", &key]).await;
    let url = format!("smtp://localhost:{port}?tls=required");

    // Without the CA the relay's certificate is not trusted: nothing is sent.
    let untrusting = spawn_with(|s| s.mail.smtp_url = Some(url.clone())).await;
    untrusting.signed_up("eve@example.com").await;
    let sent = untrusting.post("/api/v1/auth/otp/send", &json!({"email": "eve@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);

    let ca = certs.path().join("ca.pem");
    let app = spawn_with(|s| {
        s.mail.smtp_url = Some(url.clone());
        s.mail.smtp_ca_file = Some(ca.clone());
    })
    .await;
    app.signed_up("ada@example.com").await;
    let sent = app.post("/api/v1/auth/otp/send", &json!({"email": "ada@example.com", "purpose": "login"})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let code = nth_code(&server.inbox(), "ada@example.com", 1).await;
    let login = app.post("/api/v1/auth/otp/login", &json!({"email": "ada@example.com", "code": code})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert!(
        mails_to(&server.inbox(), "eve@example.com").is_empty(),
        "mail went to a relay whose certificate is not trusted"
    );
}
