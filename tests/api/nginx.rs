//! A real reverse proxy in front of the gateway: nginx with `auth_request`
//! to `/api/v1/verify`, guarding a tiny upstream.
//!
//! Needs nginx: `scripts/test-all` installs it (Debian's package) and sets
//! `NGINX_TEST_REQUIRED=1`, under which a missing nginx fails the test.
//! Plain `cargo test` without nginx prints that it skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::spawn_app;

fn nginx_binary() -> Option<PathBuf> {
    let candidates = [std::env::var_os("NGINX_BIN").map(PathBuf::from), Some(PathBuf::from("/usr/sbin/nginx"))];
    candidates.into_iter().flatten().find(|p| p.exists())
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(dir: &Path, listen: u16, gateway: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{listen};
        location = /_portcullis {{
            internal;
            proxy_pass http://127.0.0.1:{gateway}/api/v1/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
        location / {{
            auth_request /_portcullis;
            auth_request_set $auth_user_id $upstream_http_x_auth_user_id;
            proxy_set_header X-Auth-User-Id $auth_user_id;
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"#
    )
}

/// The upstream answers with the identity nginx passed it.
async fn upstream(req: HttpRequest) -> HttpResponse {
    let user = req.headers().get("x-auth-user-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    HttpResponse::Ok().json(json!({"upstream_saw": user}))
}

#[actix_web::test]
async fn nginx_auth_request_guards_an_upstream() {
    let Some(binary) = nginx_binary() else {
        assert!(std::env::var_os("NGINX_TEST_REQUIRED").is_none(), "nginx is required but not installed");
        eprintln!("skipped: nginx not installed (scripts/test-all installs it)");
        return;
    };
    let app = spawn_app().await;
    let gateway_port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let upstream_server =
        HttpServer::new(|| App::new().default_service(web::to(upstream))).workers(1).bind(("127.0.0.1", 0)).unwrap();
    let upstream_port = upstream_server.addrs()[0].port();
    let upstream_server = upstream_server.run();
    let upstream_handle = upstream_server.handle();
    actix_web::rt::spawn(upstream_server);

    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), listen, gateway_port, upstream_port)).unwrap();
    let child = Command::new(&binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _nginx = Nginx(child);
    let proxied = format!("http://127.0.0.1:{listen}/orders");
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.client.get(&proxied).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let tokens = app.signed_up("a@example.com").await;
    let passed = app.client.get(&proxied).bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(passed.status(), StatusCode::OK);
    let body: serde_json::Value = passed.json().await.unwrap();
    assert_eq!(body["upstream_saw"], tokens.user_id.as_str());

    let anonymous = app.client.get(&proxied).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    app.post_auth("/api/v1/auth/logout", &tokens.access, &json!({})).await;
    let after_logout = app.client.get(&proxied).bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(after_logout.status(), StatusCode::UNAUTHORIZED);
    upstream_handle.stop(false).await;
}
