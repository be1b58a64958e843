//! Connections: slow and idle clients are cut off by the header and body
//! timeouts, and 5,000 of them at once do not stop other clients from
//! being served.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{PASSWORD, TestApp, spawn_with};

fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// What the server sends on `stream` within `wait` (until it closes or goes quiet).
async fn read_answer(stream: &mut TcpStream, wait: Duration) -> String {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => {
                bytes.extend_from_slice(&buffer[..n]);
                if bytes.windows(4).any(|w| w == b"\r\n\r\n") && bytes.ends_with(b"}") {
                    break;
                }
            }
            Ok(Err(_)) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[actix_web::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let app = spawn_with(|s| s.http.client_body_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"email\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());

    // So does a body of which nothing came at all.
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A raw body route (introspection) answers the same.
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let head = "POST /api/v1/introspect HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A whole body, however slow the handler, is not late.
    let login = app.post("/api/v1/auth/login", &json!({"email": "nobody@example.com", "password": PASSWORD})).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
}

#[actix_web::test]
async fn a_head_that_does_not_arrive_in_time_is_cut_off() {
    let app = spawn_with(|s| s.http.client_header_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "still open after {:?}: {answer}", started.elapsed());
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// The soft limit on open files, from /proc.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn five_thousand_idle_and_slow_connections_do_not_stop_other_clients() {
    const EACH: usize = 2_500;
    // Both ends of every connection live in this process.
    let limit = open_files_limit();
    assert!(limit >= 4 * EACH + 1_000, "this test needs {} open files; the limit is {limit}", 4 * EACH + 1_000);
    // The defaults hold this test: 25,000 connections, a 5 s head timeout.
    let app = spawn_with(|_| {}).await;
    let target = address(&app);

    let mut idle = Vec::with_capacity(EACH);
    for _ in 0..EACH {
        idle.push(TcpStream::connect(&target).await.unwrap());
    }
    // Slow ones: a request head one byte a second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut slow = Vec::with_capacity(EACH);
    for _ in 0..EACH {
        let mut stream = TcpStream::connect(&target).await.unwrap();
        let stop = std::sync::Arc::clone(&stop);
        slow.push(actix_web::rt::spawn(async move {
            for byte in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".iter().cycle().take(30) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    // Meanwhile other clients sign up, sign in and check tokens, promptly.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        let email = format!("user{i}@example.com");
        let tokens = app.signed_up(&email).await;
        assert_eq!(app.verify(&tokens.access).await.status, StatusCode::OK);
        assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_secs(2), "a client waited {slowest:?} among 5,000 idle and slow connections");

    // The head timeout ends the idle and the slow ones (5 s, checked within 10).
    actix_web::rt::time::sleep(Duration::from_secs(6)).await;
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if matches!(tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await, Ok(Ok(_) | Err(_))) {
            closed += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in slow {
        let _ = task.await;
    }
    assert!(closed >= EACH * 99 / 100, "only {closed} of {EACH} idle connections were closed by the head timeout");
    // And the gateway still answers.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
}
