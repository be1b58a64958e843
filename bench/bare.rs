//! The baseline of the throughput harness: a bare actix-web server with the
//! same worker count as the gateway, answering a fixed JSON body.
//!
//! `POST /bare` reads the whole request body first (an unread body costs
//! actix the keep-alive connection and would make the baseline look 3x
//! slower) and answers the body in `BARE_BODY`; `GET /bare` answers it too.
//!
//! Run: `cargo run --release --example bare -- 127.0.0.1:9000`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::{App, HttpResponse, HttpServer, web};

struct Body(String);

async fn post(body: web::Data<Body>, _request: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body.0.clone())
}

async fn get(body: web::Data<Body>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body.0.clone())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let workers: usize = std::env::var("BARE_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let body = web::Data::new(Body(std::env::var("BARE_BODY").unwrap_or_else(|_| r#"{"active":true}"#.into())));
    HttpServer::new(move || {
        App::new().app_data(body.clone()).route("/bare", web::post().to(post)).route("/bare", web::get().to(get))
    })
    .workers(workers)
    .bind(listen)?
    .run()
    .await
}
