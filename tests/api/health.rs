//! Root routes: health, readiness, JWKS (and verifying tokens with it),
//! metrics, and the OpenAPI document.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{PASSWORD, spawn_app, spawn_with};

#[actix_web::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.header("x-request-id").is_some());
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    let expected = if std::env::var_os("CQL_TEST_NODES").is_some() { "cql" } else { "embedded" };
    assert_eq!(ready.body["store"], expected);
}

#[actix_web::test]
async fn the_gateway_serves_its_openapi_document() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let text = response.text().await.unwrap();
    assert_eq!(text, include_str!("../../openapi.yaml"), "the repository's document, byte for byte");
    assert!(text.starts_with("openapi: 3.1"));
}

#[actix_web::test]
async fn client_request_id_is_echoed() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).header("x-request-id", "trace-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-123");
}

#[actix_web::test]
async fn access_token_verifies_with_the_published_key() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let header = jsonwebtoken::decode_header(&tokens.access).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.unwrap();
    let keys = jwks.body["keys"].as_array().unwrap();
    let jwk = keys.iter().find(|k| k["kid"] == kid.as_str()).expect("token's kid is published");
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(jwk.get("d").is_none(), "private part published");
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["default"]);
    validation.set_issuer(&[app.base.replace("127.0.0.1", "localhost")]);
    let claims = jsonwebtoken::decode::<Value>(&tokens.access, &key, &validation).unwrap().claims;
    assert_eq!(claims["sub"], tokens.user_id.as_str());
    assert_eq!(claims["role"], "superadmin");
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "role", "scope"] {
        assert!(claims.get(claim).is_some(), "claim {claim} missing");
    }
}

#[actix_web::test]
async fn metrics_expose_http_hashing_cache_and_login_series() {
    let app = spawn_app().await;
    let tokens = app.signed_up("a@example.com").await;
    app.me(&tokens.access).await;
    app.me(&tokens.access).await;
    app.login("a@example.com", PASSWORD).await;
    app.login("a@example.com", "wrong password").await;
    let sessions = app.get("/api/v1/auth/sessions", Some(&tokens.access)).await;
    let id = sessions.body["sessions"][0]["id"].as_str().unwrap().to_owned();
    app.delete_auth(&format!("/api/v1/auth/sessions/{id}"), &tokens.access).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for series in [
        "portcullis_http_requests_total{route=\"/api/v1/auth/me\",method=\"GET\",status=\"200\"}",
        "portcullis_http_request_duration_seconds_bucket{route=\"/api/v1/auth/login\"",
        "portcullis_hash_duration_seconds_bucket",
        "portcullis_hash_wait_seconds_bucket",
        "portcullis_hash_queue_depth",
        "portcullis_token_cache_hits_total",
        "portcullis_token_cache_misses_total",
        "portcullis_token_cache_entries",
        "portcullis_logins_total{outcome=\"success\",project=\"default\"}",
        "portcullis_logins_total{outcome=\"failure\",project=\"default\"}",
        // Route labels are patterns, never raw paths.
        "portcullis_http_requests_total{route=\"/api/v1/auth/sessions/{id}\",method=\"DELETE\"",
        "portcullis_store_op_duration_seconds_bucket{op=\"create_session\",backend=",
        "portcullis_store_op_duration_seconds_bucket{op=\"find_user_by_email\",backend=",
        "portcullis_sessions_active",
        "portcullis_feed_lag_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(series), "missing {series}");
    }
    assert!(!text.contains(&id), "a raw path reached a label");
    // Token checks resolve below 100 µs.
    assert!(text.contains("portcullis_http_request_duration_seconds_bucket{route=\"/api/v1/auth/me\",le=\"0.00001\"}"));
}

#[actix_web::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let app = spawn_with(|s| s.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    app.get("/metrics", None).await.assert_error(404, "not_found");
    let port = app.metrics_port.expect("a metrics listener");
    let internal = app.client.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(internal.status(), StatusCode::OK);
    assert!(internal.text().await.unwrap().contains("portcullis_"));
    let other = app.client.get(format!("http://127.0.0.1:{port}/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "the internal listener serves /metrics only");
}
