//! Sign-in with OpenID Connect ID tokens (`/auth/oidc/{provider}`,
//! `/auth/google`) against a test provider on loopback: accounts made and
//! linked, every refused token, the JWKS cache (one fetch under a crowd,
//! rotation, `max-age`, a provider down or hung).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Answer, PASSWORD, TestApp, Tokens, spawn_with};
use crate::oidc_provider::{SigningKey, TestProvider};
use portcullis::clock::Clock;

const CLIENT: &str = "web-client";
const LOGIN: &str = "/api/v1/auth/oidc/test";

/// A gateway whose default project trusts `provider` as `test`; the superadmin's token.
async fn gateway(provider: &TestProvider, client_id: Value) -> (TestApp, String) {
    let app = spawn_with(|s| s.flows.oidc_timeout = Duration::from_millis(1500)).await;
    let root = app.signed_up("root@example.com").await.access;
    set_providers(&app, &root, json!({"test": provider.config(client_id)})).await;
    (app, root)
}

async fn set_providers(app: &TestApp, root: &str, providers: Value) {
    let body = json!({"settings": {"oidc_providers": providers}});
    let changed = app.send_json(Method::PATCH, "/api/v1/admin/projects/default", Some(root), &body).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
}

/// Claims of a good token for `sub` at the app's time.
fn claims(app: &TestApp, provider: &TestProvider, sub: &str, email: &str) -> Value {
    let now = app.clock.now().as_secs();
    json!({"iss": provider.issuer, "aud": CLIENT, "sub": sub, "iat": now, "exp": now + 3600,
           "email": email, "email_verified": true, "name": "Ada Lovelace"})
}

async fn sign_in(app: &TestApp, token: &str) -> Answer {
    app.post(LOGIN, &json!({"id_token": token})).await
}

fn unsigned(claims: &Value, kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"alg": "none", "typ": "JWT", "kid": kid})).unwrap());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{body}.")
}

#[actix_web::test]
async fn an_id_token_makes_an_account_once_and_signs_it_in_again() {
    let key = SigningKey::rsa("r1");
    let provider = TestProvider::start(&[&key]).await;
    let (app, root) = gateway(&provider, json!(CLIENT)).await;

    let first = sign_in(&app, &key.sign(&claims(&app, &provider, "sub-1", "Ada@Example.com"))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let user = &first.body["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["has_password"], false);
    assert!(user["email_verified_at"].is_string(), "the provider vouched for it: {user}");
    let tokens = Tokens::from(&first);
    assert_eq!(app.me(&tokens.access).await.body["id"], user["id"]);
    assert_eq!(app.refresh(&tokens.refresh).await.status, StatusCode::OK);

    // The same subject again, even with another address: the same account.
    let again = sign_in(&app, &key.sign(&claims(&app, &provider, "sub-1", "other@example.com"))).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["user"]["id"], user["id"]);
    assert_eq!(again.body["user"]["email"], "ada@example.com");

    // An ES256 key with no `alg` in the set works too.
    let ec = SigningKey::ec("e1");
    provider.publish(&[&key, &ec]);
    app.clock.advance(Duration::from_secs(31));
    let by_ec = sign_in(&app, &ec.sign(&claims(&app, &provider, "sub-2", "bob@example.com"))).await;
    assert_eq!(by_ec.status, StatusCode::OK, "{}", by_ec.body);

    let events = app.audit_events(&root, user["id"].as_str().unwrap()).await;
    for kind in ["user_registered", "identity_linked", "login_succeeded"] {
        assert!(events.contains(&(kind.into(), "oidc:test".into())), "{kind}: {events:?}");
    }
}

#[actix_web::test]
async fn google_is_a_provider_like_any_other_and_unknown_ones_are_404() {
    let key = SigningKey::rsa("g1");
    let provider = TestProvider::start(&[&key]).await;
    let app = spawn_with(|_| {}).await;
    let root = app.signed_up("root@example.com").await.access;
    let token = key.sign(&claims(&app, &provider, "g-1", "ada@example.com"));
    // Not configured: 404.
    app.post("/api/v1/auth/google", &json!({"id_token": token})).await.assert_error(404, "not_found");
    app.post("/api/v1/auth/oidc/nobody", &json!({"id_token": token})).await.assert_error(404, "not_found");
    app.post("/api/v1/auth/oidc/Bad%20Name", &json!({"id_token": token})).await.assert_error(404, "not_found");
    let google =
        json!({"client_id": [CLIENT, "android-client"], "issuer": provider.issuer, "jwks_url": provider.jwks_url});
    set_providers(&app, &root, json!({"google": google})).await;
    let signed = app.post("/api/v1/auth/google", &json!({"id_token": token})).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    // The per-project twin serves the same project.
    let twin = app.post("/api/v1/projects/default/auth/google", &json!({"id_token": token})).await;
    assert_eq!(twin.body["user"]["id"], signed.body["user"]["id"], "{}", twin.body);
    // Google's defaults fill in issuer and keys; a bad provider is refused with its problem.
    let bad = json!({"settings": {"oidc_providers": {"okta": {"issuer": "http://idp.example", "client_id": "a", "jwks_url": "https://idp.example/keys"}}}});
    let refused = app.send_json(Method::PATCH, "/api/v1/admin/projects/default", Some(&root), &bad).await;
    refused.assert_error(400, "validation_error");
    let problem = refused.body["fields"]["settings.oidc_providers"].as_str().unwrap_or_default();
    assert!(problem.contains("okta: issuer"), "{}", refused.body);
}

#[actix_web::test]
async fn every_bad_token_is_refused_as_invalid_token() {
    let key = SigningKey::rsa("r1");
    let other = SigningKey::rsa("r1");
    let provider = TestProvider::start(&[&key]).await;
    let (app, _) = gateway(&provider, json!([CLIENT, "mobile-client"])).await;
    let now = app.clock.now().as_secs();
    let good = claims(&app, &provider, "sub-1", "ada@example.com");
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("r1".into());
        let secret = EncodingKey::from_secret(key.public_pem.as_ref().unwrap().as_bytes());
        jsonwebtoken::encode(&header, &good, &secret).unwrap()
    };
    // One bit of the signature flipped (in its middle: the last character
    // of base64url carries padding bits a decoder may ignore).
    let tampered = {
        let token = key.sign(&good);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[100] ^= 1;
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&signature))
    };
    let cases = [
        ("wrong audience", key.sign(&with(json!({"aud": "someone-else"})))),
        ("wrong issuer", key.sign(&with(json!({"iss": "https://evil.example"})))),
        ("issuer spelled differently", key.sign(&with(json!({"iss": format!("{}/", provider.issuer)})))),
        ("expired", key.sign(&with(json!({"iat": now - 7200, "exp": now - 3600})))),
        ("issued in the future", key.sign(&with(json!({"iat": now + 600, "exp": now + 4200})))),
        ("issued too long ago", key.sign(&with(json!({"iat": now - 3 * 86_400, "exp": now + 3600})))),
        ("not yet valid", key.sign(&with(json!({"nbf": now + 600})))),
        ("no sub", key.sign(&with(json!({"sub": null})))),
        ("empty sub", key.sign(&with(json!({"sub": ""})))),
        ("no exp", key.sign(&with(json!({"exp": null})))),
        ("no iat", key.sign(&with(json!({"iat": null})))),
        ("several audiences, no azp", key.sign(&with(json!({"aud": [CLIENT, "mobile-client"]})))),
        ("azp not ours", key.sign(&with(json!({"aud": [CLIENT, "x"], "azp": "x"})))),
        ("a key of the same kid that is not the provider's", other.sign(&good)),
        ("a bad signature", tampered),
        ("alg none", unsigned(&good, "r1")),
        ("HS256 signed with the RSA public key", hs256_with_public_key),
        ("not a JWT", "not.a.jwt".to_owned()),
        ("a nonce the client did not send", key.sign(&with(json!({"nonce": "n-1"})))),
    ];
    for (what, token) in cases {
        let answer = sign_in(&app, &token).await;
        assert_eq!((answer.status.as_u16(), answer.code()), (401, "invalid_token"), "{what}: {}", answer.body);
    }
    // Nonces: compared when sent.
    let body = json!({"id_token": key.sign(&with(json!({"nonce": "n-1"}))), "nonce": "n-2"});
    app.post(LOGIN, &body).await.assert_error(401, "invalid_token");
    let body = json!({"id_token": key.sign(&good), "nonce": "n-1"});
    app.post(LOGIN, &body).await.assert_error(401, "invalid_token");
    let body = json!({"id_token": key.sign(&with(json!({"nonce": "n-1"}))), "nonce": "n-1"});
    assert_eq!(app.post(LOGIN, &body).await.status, StatusCode::OK);
    // Several audiences with our azp, and a small clock skew, are fine.
    let fine = key.sign(&with(json!({"aud": ["mobile-client", "x"], "azp": "mobile-client", "iat": now + 30})));
    assert_eq!(sign_in(&app, &fine).await.status, StatusCode::OK);
    // The body's own problems are 400.
    app.post(LOGIN, &json!({})).await.assert_error(400, "validation_error");
    app.post(LOGIN, &json!({"id_token": "x".repeat(20_000)})).await.assert_error(400, "validation_error");
}

#[actix_web::test]
async fn only_an_address_the_provider_vouches_for_reaches_an_existing_account() {
    let key = SigningKey::rsa("r1");
    let provider = TestProvider::start(&[&key]).await;
    let (app, _) = gateway(&provider, json!(CLIENT)).await;
    // Someone registered ada@ with a password, and never proved the address.
    let squatter = app.signed_up("ada@example.com").await;

    let unvouched = with_claim(claims(&app, &provider, "sub-ada", "ada@example.com"), "email_verified", json!(false));
    sign_in(&app, &key.sign(&unvouched)).await.assert_error(409, "email_taken");
    assert_eq!(app.me(&squatter.access).await.status, StatusCode::OK, "nothing changed");
    let as_text = with_claim(unvouched.clone(), "email_verified", json!("false"));
    sign_in(&app, &key.sign(&as_text)).await.assert_error(409, "email_taken");

    // Vouched for: the owner signs in to that account, and what the
    // squatter made on it (sessions, the password) ends.
    let vouched = claims(&app, &provider, "sub-ada", "ada@example.com");
    let owner = sign_in(&app, &key.sign(&vouched)).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert_eq!(owner.body["user"]["id"], squatter.user_id.as_str());
    assert_eq!(owner.body["user"]["has_password"], false);
    assert_ne!(app.me(&squatter.access).await.status, StatusCode::OK, "the squatter's session ended");
    app.login("ada@example.com", PASSWORD).await.assert_error(401, "invalid_credentials");

    // A new address the provider does not vouch for makes an unverified account.
    let fresh = with_claim(claims(&app, &provider, "sub-cy", "cy@example.com"), "email_verified", json!(false));
    let made = sign_in(&app, &key.sign(&fresh)).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert!(made.body["user"]["email_verified_at"].is_null());
    // A token with no address cannot make an account.
    let anonymous = with_claim(claims(&app, &provider, "sub-x", "x@example.com"), "email", Value::Null);
    sign_in(&app, &key.sign(&anonymous)).await.assert_error(400, "validation_error");

    // A disabled account gets no session.
    let root = app.logged_in("root@example.com").await.access;
    let path = format!("/api/v1/admin/projects/default/users/{}", squatter.user_id);
    let disabled = app.send_json(Method::PATCH, &path, Some(&root), &json!({"disabled": true})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    sign_in(&app, &key.sign(&vouched)).await.assert_error(403, "account_disabled");
}

fn with_claim(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

#[actix_web::test]
async fn the_key_set_is_fetched_once_for_a_crowd_and_again_on_rotation_or_expiry() {
    let key = SigningKey::rsa("r1");
    let provider = TestProvider::start(&[&key]).await;
    provider.set_max_age(Some(120));
    let (app, _) = gateway(&provider, json!(CLIENT)).await;

    // 50 concurrent first sign-ins: one fetch.
    let tokens: Vec<String> = (0..50)
        .map(|i| key.sign(&claims(&app, &provider, &format!("crowd-{i}"), &format!("c{i}@example.com"))))
        .collect();
    let answers = join_all(tokens.iter().map(|t| sign_in(&app, t))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    assert_eq!(provider.fetches(), 1);

    // Rotation: a token of a new key refreshes the set (once the last fetch
    // is 30 s old); random kids in between cost no fetch.
    let rotated = SigningKey::rsa("r2");
    provider.publish(&[&rotated]);
    let mut forged = claims(&app, &provider, "crowd-0", "c0@example.com");
    for i in 0..20 {
        forged["jti"] = json!(i);
        sign_in(&app, &key.sign_as(&forged, &format!("random-{i}"))).await.assert_error(401, "invalid_token");
    }
    assert_eq!(provider.fetches(), 1, "unknown kids within the interval fetch nothing");
    app.clock.advance(Duration::from_secs(31));
    let fresh = sign_in(&app, &rotated.sign(&claims(&app, &provider, "crowd-1", "c1@example.com"))).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(provider.fetches(), 2);
    // The retired key is gone from the new set.
    sign_in(&app, &key.sign(&claims(&app, &provider, "crowd-2", "c2@example.com")))
        .await
        .assert_error(401, "invalid_token");
    let after_retired = provider.fetches();
    assert!(after_retired <= 3, "{after_retired}");

    // max-age: within it no fetch; past it, one.
    let before = provider.fetches();
    sign_in(&app, &rotated.sign(&claims(&app, &provider, "crowd-3", "c3@example.com"))).await;
    assert_eq!(provider.fetches(), before);
    app.clock.advance(Duration::from_secs(121));
    let renewed = sign_in(&app, &rotated.sign(&claims(&app, &provider, "crowd-3", "c3@example.com"))).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(provider.fetches(), before + 1);
}

#[actix_web::test]
async fn a_provider_down_or_hung_answers_503_and_held_keys_keep_working() {
    let key = SigningKey::rsa("r1");
    let provider = TestProvider::start(&[&key]).await;
    provider.set_max_age(Some(60));
    let (app, _) = gateway(&provider, json!(CLIENT)).await;

    // Down before any fetch: 503 provider_unavailable, with Retry-After.
    provider.fail(true);
    let down = sign_in(&app, &key.sign(&claims(&app, &provider, "s", "s@example.com"))).await;
    down.assert_error(503, "provider_unavailable");
    assert!(down.header("retry-after").is_some());
    provider.fail(false);
    app.clock.advance(Duration::from_secs(6));
    assert_eq!(sign_in(&app, &key.sign(&claims(&app, &provider, "s", "s@example.com"))).await.status, StatusCode::OK);

    // Down after a fetch, past max-age: the held keys still verify.
    provider.fail(true);
    app.clock.advance(Duration::from_secs(61));
    let held = sign_in(&app, &key.sign(&claims(&app, &provider, "s", "s@example.com"))).await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    provider.fail(false);

    // Hung, on another gateway with nothing held: a bounded wait, then 503.
    let hung = SigningKey::rsa("h1");
    let stalled = TestProvider::start(&[&hung]).await;
    stalled.stall(true);
    let (other, _) = gateway(&stalled, json!(CLIENT)).await;
    let started = Instant::now();
    let answer = sign_in(&other, &hung.sign(&claims(&other, &stalled, "h", "h@example.com"))).await;
    answer.assert_error(503, "provider_unavailable");
    assert!(started.elapsed() < Duration::from_secs(10), "the fetch is bounded: {:?}", started.elapsed());
}
