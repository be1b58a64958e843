//! Outgoing mail: one-time codes to users' inboxes.
//!
//! Owns the bounded queue between the request path and delivery, and the
//! delivery itself: SMTP through lettre when `smtp_url` is set (STARTTLS
//! with `?tls=required`, implicit TLS with `smtps://`, plain `smtp://` for a
//! local relay), otherwise the outbox directory, one RFC 5322 `.eml` file
//! per message, written whole under a temporary name and then renamed.
//!
//! Never: sends on the request path (a request only enqueues; a full queue
//! drops the message with a warning and a metric, never a slow answer),
//! logs a message body (it carries a code), or retries a message the server
//! refused for good.
//!
//! At shutdown (the stop signal) the queue closes and the workers deliver
//! every message already in it before they end: a code a client was told
//! is on its way is not lost to a restart. The app bounds that wait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Mutex, mpsc, watch};

use crate::settings::MailSettings;
use crate::telemetry::names;

/// Messages waiting for delivery at most; past it new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// Deliveries in flight at once.
const WORKERS: usize = 4;
/// Tries per message, with doubling pauses between them (1 s, 2 s, ...).
const ATTEMPTS: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Connecting to and talking with the SMTP server, per command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A message to one recipient, with plain-text and HTML bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid SMTP URL: {0}")]
    SmtpUrl(String),
    #[error("invalid sender address {0:?}")]
    From(String),
    #[error("outbox {path}: {message}")]
    Outbox { path: String, message: String },
    #[error("SMTP CA file {path}: {message}")]
    CaFile { path: String, message: String },
}

/// The SMTP transport for `url`, trusting `ca_file`'s certificates as well
/// when given (the URL must then ask for TLS).
fn smtp_transport(url: &str, ca_file: Option<&Path>) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let smtp_url = |e: &dyn std::fmt::Display| MailError::SmtpUrl(e.to_string());
    let mut builder: AsyncSmtpTransportBuilder =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| smtp_url(&e))?;
    if let Some(path) = ca_file {
        let ca_error = |message: String| MailError::CaFile { path: path.display().to_string(), message };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
        let parsed = url::Url::parse(url).map_err(|e| smtp_url(&e))?;
        let host = parsed.host_str().ok_or_else(|| MailError::SmtpUrl("no host".into()))?.to_owned();
        let parameters = TlsParameters::builder(host)
            .add_root_certificate(certificate)
            .build()
            .map_err(|e| ca_error(e.to_string()))?;
        let tls_mode = parsed.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        builder = builder.tls(match (parsed.scheme(), tls_mode.as_deref()) {
            ("smtps", _) => Tls::Wrapper(parameters),
            (_, Some("required")) => Tls::Required(parameters),
            (_, Some("opportunistic")) => Tls::Opportunistic(parameters),
            _ => return Err(MailError::SmtpUrl("smtp_ca_file needs smtps:// or ?tls=required".into())),
        });
    }
    Ok(builder.timeout(Some(SMTP_TIMEOUT)).build())
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Every `outcome` of `portcullis_mail_messages_total`.
pub const OUTCOMES: &[&str] = &["sent", "failed", "dropped", "invalid"];

/// Counts one message in `portcullis_mail_messages_total{outcome}`.
fn count(outcome: &'static str) {
    debug_assert!(OUTCOMES.contains(&outcome), "{outcome} joins OUTCOMES");
    metrics::counter!(names::MAIL_MESSAGES, "outcome" => outcome).increment(1);
}

/// The sending side: cheap to share, never waits.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Mail>,
}

impl Mailer {
    /// Validates the settings and starts the delivery workers (on the
    /// current runtime). When `stop` turns `true` the workers take no new
    /// mail, deliver what is queued, and end.
    pub fn start(
        settings: &MailSettings,
        stop: watch::Receiver<bool>,
    ) -> Result<(Mailer, Vec<JoinHandle<()>>), MailError> {
        let MailSettings { smtp_url, smtp_ca_file, outbox_dir: outbox, from } = settings;
        let from: Mailbox = from.parse().map_err(|_| MailError::From(from.to_owned()))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(smtp_transport(url, smtp_ca_file.as_deref())?),
            None => {
                // Messages carry codes: the outbox is as private as the data directory.
                crate::data_dir::private_dir(outbox)
                    .map_err(|e| MailError::Outbox { path: outbox.display().to_string(), message: e.to_string() })?;
                Transport::Outbox(outbox.to_path_buf())
            }
        };
        let (queue, waiting) = mpsc::channel(QUEUE_CAPACITY);
        let waiting = Arc::new(Mutex::new(waiting));
        let transport = Arc::new(transport);
        let workers = (0..WORKERS)
            .map(|_| {
                let (waiting, transport, from) = (Arc::clone(&waiting), Arc::clone(&transport), from.clone());
                actix_web::rt::spawn(work(waiting, transport, from, stop.clone()))
            })
            .collect();
        Ok((Mailer { queue }, workers))
    }

    /// Queues `mail` for delivery; `false` (and a warning) if the queue is full.
    pub fn send(&self, mail: Mail) -> bool {
        match self.queue.try_send(mail) {
            Ok(()) => {
                metrics::gauge!(names::MAIL_QUEUE_DEPTH).set((QUEUE_CAPACITY - self.queue.capacity()) as f64);
                true
            }
            Err(refused) => {
                count("dropped");
                let why = match refused {
                    mpsc::error::TrySendError::Full(_) => "mail queue full; message dropped",
                    mpsc::error::TrySendError::Closed(_) => "mail queue closed (shutting down); message dropped",
                };
                tracing::warn!(event = "mail_dropped", "{why}");
                false
            }
        }
    }
}

/// One delivery worker: takes the next message, delivers it (with its
/// retries), and so on; at shutdown, closes the queue and goes on until it
/// is empty.
async fn work(
    waiting: Arc<Mutex<mpsc::Receiver<Mail>>>,
    transport: Arc<Transport>,
    from: Mailbox,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // The lock is held only while waiting for the next message.
        let mail = {
            let mut queue = waiting.lock().await;
            let next = tokio::select! {
                biased;
                mail = queue.recv() => mail,
                _ = stop.wait_for(|stopping| *stopping) => {
                    // No new mail from now on; what is queued is still delivered.
                    queue.close();
                    queue.recv().await
                }
            };
            let Some(mail) = next else { return };
            // Down as well as up, or an idle queue would show its last peak.
            metrics::gauge!(names::MAIL_QUEUE_DEPTH).set(queue.len() as f64);
            mail
        };
        deliver(&transport, &from, mail).await;
    }
}

fn build(from: &Mailbox, mail: &Mail) -> Option<Message> {
    let to: Mailbox = mail.to.parse().ok()?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
        .ok()
}

async fn deliver(transport: &Transport, from: &Mailbox, mail: Mail) {
    let Some(message) = build(from, &mail) else {
        count("invalid");
        tracing::warn!(event = "mail_invalid", "a message could not be built (bad recipient address)");
        return;
    };
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        let outcome = match transport {
            Transport::Smtp(smtp) => smtp.send(message.clone()).await.map(|_| ()).map_err(|e| {
                let permanent = e.is_permanent();
                (e.to_string(), permanent)
            }),
            Transport::Outbox(dir) => write_eml(dir, &message.formatted()).await.map_err(|e| (e.to_string(), false)),
        };
        match outcome {
            Ok(()) => {
                count("sent");
                return;
            }
            Err((error, permanent)) if permanent || attempt == ATTEMPTS => {
                count("failed");
                tracing::error!(event = "mail_failed", attempt, %error, "message not delivered");
                return;
            }
            Err((error, _)) => {
                tracing::warn!(event = "mail_retry", attempt, %error, "delivery failed; retrying");
                actix_web::rt::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

/// Writes one message under a temporary name, then renames it into place,
/// so readers of the outbox never see half a message.
async fn write_eml(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let id = uuid::Uuid::now_v7();
    let partial = dir.join(format!(".{id}.eml.partial"));
    let mut file = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    tokio::fs::rename(&partial, dir.join(format!("{id}.eml"))).await
}

/// Escapes text for an HTML body.
pub fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(dir: &Path, from: &str) -> MailSettings {
        MailSettings { smtp_url: None, smtp_ca_file: None, outbox_dir: dir.to_path_buf(), from: from.to_owned() }
    }

    fn mail() -> Mail {
        Mail {
            to: "ada@example.com".into(),
            subject: "Your Acme code".into(),
            text: "Your code is 123456.".into(),
            html: "<p>Your code is <b>123456</b>.</p>".into(),
        }
    }

    #[actix_web::test]
    async fn the_outbox_gets_one_whole_eml_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let (_stop, stop) = watch::channel(false);
        let (mailer, _workers) = Mailer::start(&outbox(dir.path(), "Acme <no-reply@acme.test>"), stop).unwrap();
        assert!(mailer.send(mail()));
        let mut found = Vec::new();
        for _ in 0..200 {
            found = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            if !found.is_empty() {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(found.len(), 1);
        let eml = std::fs::read_to_string(&found[0]).unwrap();
        for part in
            ["To: ada@example.com", "Subject: Your Acme code", "multipart/alternative", "text/plain", "text/html"]
        {
            assert!(eml.contains(part), "{part} missing from\n{eml}");
        }
        assert!(eml.contains("123456"));
    }

    #[actix_web::test]
    async fn a_stop_delivers_every_queued_message_then_ends_the_workers() {
        let dir = tempfile::tempdir().unwrap();
        let (stop, signal) = watch::channel(false);
        let (mailer, workers) = Mailer::start(&outbox(dir.path(), "a@b.c"), signal).unwrap();
        for _ in 0..50 {
            assert!(mailer.send(mail()));
        }
        stop.send_replace(true);
        for worker in workers {
            tokio::time::timeout(Duration::from_secs(10), worker).await.unwrap().unwrap();
        }
        let written = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok);
        assert_eq!(written.filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count(), 50);
        assert!(!mailer.send(mail()), "a closed queue takes no more mail");
    }

    #[test]
    fn bad_settings_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let start = |settings: &MailSettings| Mailer::start(settings, watch::channel(false).1).map(|_| ());
        let smtp = |url: &str| MailSettings { smtp_url: Some(url.to_owned()), ..outbox(dir.path(), "a@b.c") };
        assert!(matches!(start(&smtp("ftp://x")), Err(MailError::SmtpUrl(_))));
        assert!(matches!(start(&outbox(dir.path(), "not an address")), Err(MailError::From(_))));
        let missing =
            MailSettings { smtp_ca_file: Some(PathBuf::from("/no/such/ca.pem")), ..smtp("smtp://x?tls=required") };
        assert!(matches!(start(&missing), Err(MailError::CaFile { .. })));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<b>A & 'B'</b>"), "&lt;b&gt;A &amp; &#39;B&#39;&lt;/b&gt;");
    }
}
