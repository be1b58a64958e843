//! Two gateway nodes over one CQL database: revocations cross nodes through
//! the change feed, and uniqueness and single-use refresh hold cluster-wide.
//! Runs when `CQL_TEST_NODES` names a database (the README test command
//! starts Cassandra); skipped otherwise.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, TestApp, spawn_pair};
use crate::keyspaces::KeyspaceGuard;
use crate::process::{command, start_with};

#[actix_web::test]
async fn two_nodes_share_revocations_uniqueness_and_refresh_rotation() {
    let Ok(nodes) = std::env::var("CQL_TEST_NODES") else {
        eprintln!("skipped: CQL_TEST_NODES not set");
        return;
    };
    let keyspace = KeyspaceGuard::fresh(&nodes, "cluster");
    let store = format!("cql://{nodes}/{}", keyspace.name());
    // Both nodes share the key directory (signing keys, API-key hashing key).
    let dir = tempfile::tempdir().unwrap();
    let migrated = command(dir.path()).env("PORTCULLIS_STORE", &store).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let env = [("PORTCULLIS_STORE", store.as_str()), ("PORTCULLIS_REFRESH_REUSE_GRACE", "2")];
    let (a, b) = (start_with(dir.path(), &env), start_with(dir.path(), &env));

    // Logout on A: the token stops on B within a second.
    let body = json!({"email": "x@example.com", "password": PASSWORD, "name": "X"});
    let registered = a.post("/api/v1/auth/register", body).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    let access = registered.body["token"].as_str().unwrap().to_owned();
    assert_eq!(b.get("/api/v1/verify", Some(&access)).await.status, StatusCode::OK, "cached on B");
    let logout = a.client.post(format!("{}/api/v1/auth/logout", a.base)).bearer_auth(&access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let started = Instant::now();
    loop {
        if b.get("/api/v1/verify", Some(&access)).await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "B still accepts the token after 3 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delay = started.elapsed();
    eprintln!("cross-node revocation delay: {} ms", delay.as_millis());
    assert!(delay < Duration::from_secs(1), "revocation took {delay:?} to reach B");

    // The same email on A and B at the same moment: exactly one account.
    for round in 0..5 {
        let body = json!({"email": format!("race{round}@example.com"), "password": PASSWORD, "name": "R"});
        let (on_a, on_b) =
            futures_util::join!(a.post("/api/v1/auth/register", body.clone()), b.post("/api/v1/auth/register", body));
        let created = [&on_a, &on_b].iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(created, 1, "round {round}: {} / {}", on_a.body, on_b.body);
    }

    // A refresh token rotated on A, replayed on B: same successor within the
    // grace window, session revoked after it.
    let login = a.post("/api/v1/auth/login", json!({"email": "x@example.com", "password": PASSWORD})).await;
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    let first = a.post("/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    let replay = b.post("/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(first.body["refresh_token"], replay.body["refresh_token"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = b.post("/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(late.body["code"], "refresh_token_reused", "{}", late.body);
    let successor = first.body["refresh_token"].as_str().unwrap();
    assert_eq!(a.post("/api/v1/auth/refresh", json!({"refresh_token": successor})).await.body["code"], "invalid_token");

    // A password changed on A stops the old password on B.
    let fresh = a.post("/api/v1/auth/login", json!({"email": "x@example.com", "password": PASSWORD})).await;
    let token = fresh.body["token"].as_str().unwrap();
    let change = a
        .client
        .put(format!("{}/api/v1/auth/me/password", a.base))
        .bearer_auth(token)
        .json(&json!({"current_password": PASSWORD, "new_password": "a brand new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), StatusCode::OK);
    let old = b.post("/api/v1/auth/login", json!({"email": "x@example.com", "password": PASSWORD})).await;
    assert_eq!(old.body["code"], "invalid_credentials");
    let new = b.post("/api/v1/auth/login", json!({"email": "x@example.com", "password": "a brand new password"})).await;
    assert_eq!(new.status, StatusCode::OK);
}

/// Polls `node` until it refuses `access`, for at most `within`; the delay.
async fn refused_within(node: &TestApp, access: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let answer = node.verify(access).await;
        if answer.status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(started.elapsed() < within, "still accepted after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_node_that_cannot_read_the_feed_keeps_verifying_then_catches_up() {
    let Some([(a, _), (b, b_store)]) = spawn_pair().await else {
        eprintln!("skipped: CQL_TEST_NODES not set");
        return;
    };
    let tokens = a.signed_up("x@example.com").await;
    let on_b = b.verify(&tokens.access).await;
    assert_eq!(on_b.status, StatusCode::OK, "cached on B: {}", on_b.body);

    // B loses the feed; A logs out meanwhile.
    b_store.fail_op("read_feed", true);
    let logout = a.post_auth("/api/v1/auth/logout", &tokens.access, &json!({})).await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    // Well past the look-back window, B's cached token still verifies.
    a.clock.advance(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(b.verify(&tokens.access).await.status, StatusCode::OK, "the cache survives a feed outage");

    // The feed is back: B replays what it missed.
    b_store.fail_op("read_feed", false);
    let delay = refused_within(&b, &tokens.access, Duration::from_secs(2)).await;
    eprintln!("revocation replayed after the feed outage in {} ms", delay.as_millis());
}

#[actix_web::test]
async fn a_revocation_whose_publication_failed_is_published_again() {
    let Some([(a, a_store), (b, _)]) = spawn_pair().await else {
        eprintln!("skipped: CQL_TEST_NODES not set");
        return;
    };
    let tokens = a.signed_up("x@example.com").await;
    let on_b = b.verify(&tokens.access).await;
    assert_eq!(on_b.status, StatusCode::OK, "cached on B: {}", on_b.body);

    a_store.fail_op("append_feed", true);
    let logout = a.post_auth("/api/v1/auth/logout", &tokens.access, &json!({})).await;
    assert_eq!(logout.status, StatusCode::OK, "a feed failure never fails the revocation: {}", logout.body);
    assert_eq!(a.verify(&tokens.access).await.status, StatusCode::UNAUTHORIZED, "revoked at once on A");
    // Several polls later B has heard nothing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(b.verify(&tokens.access).await.status, StatusCode::OK, "not published yet");

    a_store.fail_op("append_feed", false);
    refused_within(&b, &tokens.access, Duration::from_secs(2)).await;
}

#[actix_web::test]
async fn a_user_change_on_one_node_does_not_refuse_later_tokens_on_another() {
    let Some([(a, _), (b, _)]) = spawn_pair().await else {
        eprintln!("skipped: CQL_TEST_NODES not set");
        return;
    };
    let tokens = a.signed_up("x@example.com").await;
    assert_eq!(b.verify(&tokens.access).await.status, StatusCode::OK, "cached on B");
    let user = portcullis::account::UserId::parse(&tokens.user_id).unwrap();
    a.auth.set_disabled(user, true).await.unwrap();
    let delay = refused_within(&b, &tokens.access, Duration::from_secs(2)).await;
    eprintln!("disabling reached B in {} ms", delay.as_millis());
    a.auth.set_disabled(user, false).await.unwrap();
    let fresh = a.logged_in("x@example.com").await;
    // B has applied both user marks by now (it polls every 250 ms).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let on_b = b.verify(&fresh.access).await;
    assert_eq!(on_b.status, StatusCode::OK, "a token issued after the change is refused on B: {}", on_b.body);
}
