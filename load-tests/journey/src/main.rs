//! A full user journey against a Portcullis gateway, as load:
//! register → login → me → refresh → introspect → logout.
//!
//! Each iteration signs up a new account, so the run measures the real mix
//! of password hashing (register, login) and fast-path checks (me,
//! introspect). Every step checks its status code; the process exits 1 if
//! any request failed.
//!
//! Run against any gateway (with `PORTCULLIS_RATE_LIMIT=off` there):
//!   cargo run --release -- --host http://127.0.0.1:8080 --users 20 --hatch-rate 5 --run-time 60s
//! `INTROSPECT_KEY` (an API key with scope `introspect`) enables the introspect step.

use std::sync::atomic::{AtomicU64, Ordering};

use goose::prelude::*;
use serde_json::{Value, json};

const PASSWORD: &str = "journey password 1";
static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(0);

/// Sends `request` (named for the report), expecting `status`; returns the JSON body.
async fn step(
    user: &mut GooseUser,
    name: &str,
    status: u16,
    builder: reqwest::RequestBuilder,
) -> Result<Value, Box<TransactionError>> {
    let request = GooseRequest::builder().name(name).expect_status_code(status).set_request_builder(builder).build();
    let mut goose = user.request(request).await?;
    match goose.response {
        Ok(response) if response.status().as_u16() == status => {
            let text = response.text().await.unwrap_or_default();
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Ok(response) => {
            let text = format!("{name}: status {}", response.status());
            user.set_failure(&text, &mut goose.request, None, None)?;
            Err(Box::new(TransactionError::Custom(text)))
        }
        Err(e) => Err(Box::new(TransactionError::Reqwest(e))),
    }
}

fn text(value: &Value, field: &str) -> Result<String, Box<TransactionError>> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Box::new(TransactionError::Custom(format!("no {field} in {value}"))))
}

async fn journey(user: &mut GooseUser) -> TransactionResult {
    let n = NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed);
    let email = format!("journey-{}-{n}@load.test", std::process::id());

    let body = json!({"email": email, "password": PASSWORD, "name": "Journey"});
    let rb = user.get_request_builder(&GooseMethod::Post, "/api/v1/auth/register")?.json(&body);
    step(user, "register", 201, rb).await?;

    let body = json!({"email": email, "password": PASSWORD});
    let rb = user.get_request_builder(&GooseMethod::Post, "/api/v1/auth/login")?.json(&body);
    let login = step(user, "login", 200, rb).await?;
    let access = text(&login, "token")?;
    let refresh = text(&login, "refresh_token")?;

    let rb = user.get_request_builder(&GooseMethod::Get, "/api/v1/auth/me")?.bearer_auth(&access);
    step(user, "me", 200, rb).await?;

    let rb =
        user.get_request_builder(&GooseMethod::Post, "/api/v1/auth/refresh")?.json(&json!({"refresh_token": refresh}));
    let refreshed = step(user, "refresh", 200, rb).await?;
    let access = text(&refreshed, "token")?;

    if let Ok(key) = std::env::var("INTROSPECT_KEY") {
        let rb = user
            .get_request_builder(&GooseMethod::Post, "/api/v1/introspect")?
            .bearer_auth(key)
            .form(&[("token", access.as_str())]);
        let answer = step(user, "introspect", 200, rb).await?;
        if answer["active"] != true {
            return Err(Box::new(TransactionError::Custom(format!("introspect: not active: {answer}"))));
        }
    }

    let rb = user.get_request_builder(&GooseMethod::Post, "/api/v1/auth/logout")?.bearer_auth(&access);
    step(user, "logout", 200, rb).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let metrics = GooseAttack::initialize()?
        .register_scenario(scenario!("UserJourney").register_transaction(transaction!(journey).set_name("journey")))
        .execute()
        .await?;
    let failed: usize = metrics.requests.values().map(|r| r.fail_count).sum();
    let succeeded: usize = metrics.requests.values().map(|r| r.success_count).sum();
    println!("journey requests: {succeeded} succeeded, {failed} failed");
    if failed > 0 || succeeded == 0 {
        std::process::exit(1);
    }
    Ok(())
}
