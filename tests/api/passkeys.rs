//! Passkeys (WebAuthn) with a software authenticator: registration and
//! sign-in (with an address and usernameless), every way an assertion is
//! refused, no enumeration through the login options, and managing them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::authenticator::{Alg, Credential, b64, unb64};
use crate::harness::{Answer, PASSWORD, TestApp, Tokens, spawn_app};

const OPTIONS: &str = "/api/v1/auth/passkey/register/options";
const REGISTER: &str = "/api/v1/auth/passkey/register/verify";
const LOGIN_OPTIONS: &str = "/api/v1/auth/passkey/login/options";
const LOGIN: &str = "/api/v1/auth/passkey/login/verify";
const LIST: &str = "/api/v1/auth/passkey/list";

/// The origin the gateway's relying party signs for (its public URL).
pub fn origin(app: &TestApp) -> String {
    let port = app.base.rsplit(':').next().unwrap();
    format!("http://localhost:{port}")
}

/// Register options for `access`: `(challenge_id, publicKey)`.
async fn register_options(app: &TestApp, access: &str) -> (String, Value) {
    let options = app.post_auth(OPTIONS, access, &json!({})).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    (options.body["challenge_id"].as_str().unwrap().to_owned(), options.body["publicKey"].clone())
}

/// A new passkey of `alg` on `access`'s account: the authenticator's credential.
pub async fn add_passkey(app: &TestApp, access: &str, alg: Alg) -> Credential {
    let (challenge_id, options) = register_options(app, access).await;
    let (credential, json) = Credential::create(&options, &origin(app), alg);
    let body = json!({"challenge_id": challenge_id, "name": "Laptop", "credential": json});
    let registered = app.post_auth(REGISTER, access, &body).await;
    assert_eq!(registered.status, StatusCode::OK, "{alg:?}: {}", registered.body);
    credential
}

/// Login options (`body` as given) under `base`: `(challenge_id, publicKey)`.
async fn login_options_at(app: &TestApp, base: &str, body: &Value) -> (String, Value) {
    let options = app.post(&format!("{base}/passkey/login/options"), body).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    (options.body["challenge_id"].as_str().unwrap().to_owned(), options.body["publicKey"].clone())
}

async fn login_options(app: &TestApp, email: Option<&str>) -> (String, Value) {
    let body = email.map_or_else(|| json!({}), |email| json!({"email": email}));
    login_options_at(app, "/api/v1/auth", &body).await
}

async fn login_verify(app: &TestApp, challenge_id: &str, assertion: Value) -> Answer {
    app.post(LOGIN, &json!({"challenge_id": challenge_id, "credential": assertion})).await
}

/// A full passkey sign-in with `credential`, for `email` or usernameless.
async fn passkey_login(app: &TestApp, credential: &mut Credential, email: Option<&str>) -> Answer {
    let (challenge_id, options) = login_options(app, email).await;
    let assertion = credential.assert(&options, &origin(app));
    login_verify(app, &challenge_id, assertion).await
}

fn allowed_ids(options: &Value) -> Vec<String> {
    options["allowCredentials"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

#[actix_web::test]
async fn a_passkey_registers_and_signs_in_with_an_address_or_usernameless() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    let ada = app.signed_up("ada@example.com").await;

    // Creation options: the standard WebAuthn JSON, for the gateway's RP.
    let (challenge_id, options) = register_options(&app, &ada.access).await;
    assert_eq!(options["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["user"]["name"], "ada@example.com");
    assert_eq!(unb64(options["user"]["id"].as_str().unwrap()).len(), 16, "the user handle is the account's UUID");
    assert!(unb64(options["challenge"].as_str().unwrap()).len() >= 16);
    assert!(options["pubKeyCredParams"].as_array().unwrap().iter().any(|p| p["alg"] == -7), "{options}");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "preferred", "{options}");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required", "{options}");
    let (mut credential, json) = Credential::create(&options, &origin(&app), Alg::Es256);
    let body = json!({"challenge_id": challenge_id, "name": "Laptop", "credential": json});
    let registered = app.post_auth(REGISTER, &ada.access, &body).await;
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert_eq!(registered.body["name"], "Laptop");
    assert!(registered.body["created_at"].is_string() && registered.body["last_used_at"].is_null());
    let passkey_id = registered.body["id"].as_str().unwrap().to_owned();

    // The same challenge cannot register twice.
    app.post_auth(REGISTER, &ada.access, &body).await.assert_error(400, "validation_error");

    // With the address: the account's credential is listed.
    let (challenge_id, options) = login_options(&app, Some("ada@example.com")).await;
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(allowed_ids(&options), vec![b64(&credential.id)]);
    let signed = login_verify(&app, &challenge_id, credential.assert(&options, &origin(&app))).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert_eq!(signed.body["token_type"], "Bearer");
    assert_eq!(signed.body["user"]["id"], ada.user_id.as_str());
    let tokens = Tokens::from(&signed);
    assert_eq!(app.me(&tokens.access).await.body["email"], "ada@example.com");
    // A new session, like a password login: its refresh token rotates.
    assert_eq!(app.refresh(&tokens.refresh).await.status, StatusCode::OK);

    // Usernameless: nothing listed; the discoverable credential names its account.
    let (challenge_id, options) = login_options(&app, None).await;
    assert!(allowed_ids(&options).is_empty(), "{options}");
    let signed = login_verify(&app, &challenge_id, credential.assert(&options, &origin(&app))).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    assert_eq!(signed.body["user"]["email"], "ada@example.com");
    // No body at all is usernameless too.
    let bare = answer_of(app.client.post(app.url(LOGIN_OPTIONS)).send().await.unwrap()).await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.body);
    assert!(bare.body["challenge_id"].is_string() && bare.body["publicKey"]["challenge"].is_string());

    // The list shows it, used.
    let list = app.get(LIST, Some(&ada.access)).await;
    assert_eq!(list.status, StatusCode::OK);
    let passkeys = list.body["passkeys"].as_array().unwrap();
    assert_eq!(passkeys.len(), 1);
    assert_eq!(passkeys[0]["id"], passkey_id.as_str());
    assert!(passkeys[0]["last_used_at"].is_string(), "{}", list.body);
    assert_eq!(passkeys[0].as_object().unwrap().len(), 4, "id, name, created_at, last_used_at: {}", list.body);

    // Registration and logins are audited.
    let kinds = app.audit_events(&root.access, &ada.user_id).await;
    assert!(kinds.contains(&("passkey_registered".into(), format!("passkey={passkey_id}"))), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == &("login_succeeded".into(), "passkey".into())).count(), 2);
}

async fn answer_of(response: reqwest::Response) -> Answer {
    crate::harness::answer(response).await
}

#[actix_web::test]
async fn es384_and_rs256_passkeys_sign_in_too() {
    let app = spawn_app().await;
    let ada = app.signed_up("ada@example.com").await;
    for alg in [Alg::Es384, Alg::Rs256] {
        let mut credential = add_passkey(&app, &ada.access, alg).await;
        let signed = passkey_login(&app, &mut credential, Some("ada@example.com")).await;
        assert_eq!(signed.status, StatusCode::OK, "{alg:?}: {}", signed.body);
    }
    assert_eq!(app.get(LIST, Some(&ada.access)).await.body["passkeys"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn a_replayed_or_foreign_assertion_is_refused() {
    let app = spawn_app().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let mut ada_key = add_passkey(&app, &ada.access, Alg::Es256).await;
    let mut bob_key = add_passkey(&app, &bob.access, Alg::Es256).await;

    // Replayed: the same challenge and assertion again, then the old
    // assertion against a new challenge.
    let (challenge_id, options) = login_options(&app, Some("ada@example.com")).await;
    let assertion = ada_key.assert(&options, &origin(&app));
    assert_eq!(login_verify(&app, &challenge_id, assertion.clone()).await.status, StatusCode::OK);
    login_verify(&app, &challenge_id, assertion.clone()).await.assert_error(401, "invalid_credentials");
    let (fresh, _) = login_options(&app, Some("ada@example.com")).await;
    login_verify(&app, &fresh, assertion).await.assert_error(401, "invalid_credentials");

    // An authenticator the gateway never saw.
    let (challenge_id, options) = register_options(&app, &ada.access).await;
    let (mut stranger, _) = Credential::create(&options, &origin(&app), Alg::Es256);
    drop(challenge_id);
    passkey_login(&app, &mut stranger, None).await.assert_error(401, "invalid_credentials");

    // Another user's passkey, for Ada's address.
    passkey_login(&app, &mut bob_key, Some("ada@example.com")).await.assert_error(401, "invalid_credentials");
    // For an unknown address.
    passkey_login(&app, &mut bob_key, Some("nobody@example.com")).await.assert_error(401, "invalid_credentials");

    // Signed for another origin.
    let (challenge_id, options) = login_options(&app, None).await;
    let phished = ada_key.assert(&options, "http://localhost:1");
    login_verify(&app, &challenge_id, phished).await.assert_error(401, "invalid_credentials");
    let (challenge_id, options) = register_options(&app, &ada.access).await;
    let (_, json) = Credential::create(&options, "https://evil.example", Alg::Es256);
    let body = json!({"challenge_id": challenge_id, "credential": json});
    let refused = app.post_auth(REGISTER, &ada.access, &body).await;
    refused.assert_error(400, "validation_error");
    assert!(refused.body["fields"]["credential"].is_string(), "{}", refused.body);

    // A tampered signature.
    let (challenge_id, options) = login_options(&app, None).await;
    let mut tampered = ada_key.assert(&options, &origin(&app));
    let mut signature = unb64(tampered["response"]["signature"].as_str().unwrap());
    let last = signature.len() - 1;
    signature[last] ^= 1;
    tampered["response"]["signature"] = b64(&signature).into();
    login_verify(&app, &challenge_id, tampered).await.assert_error(401, "invalid_credentials");

    // An expired challenge (5 minutes).
    let (challenge_id, options) = login_options(&app, None).await;
    let late = ada_key.assert(&options, &origin(&app));
    app.clock.advance(Duration::from_secs(301));
    login_verify(&app, &challenge_id, late).await.assert_error(401, "invalid_credentials");
    // After all that, the real thing still works.
    assert_eq!(passkey_login(&app, &mut ada_key, None).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_counter_that_goes_backwards_is_refused_and_audited() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    let mut credential = add_passkey(&app, &ada.access, Alg::Es256).await;
    for _ in 0..3 {
        assert_eq!(passkey_login(&app, &mut credential, None).await.status, StatusCode::OK);
    }
    // A clone of the authenticator at an older counter.
    let (challenge_id, options) = login_options(&app, None).await;
    let cloned = credential.assert_with_counter(&options, &origin(&app), 2);
    login_verify(&app, &challenge_id, cloned).await.assert_error(401, "invalid_credentials");
    // The same counter again is refused too.
    let (challenge_id, options) = login_options(&app, None).await;
    let same = credential.assert_with_counter(&options, &origin(&app), credential.counter);
    login_verify(&app, &challenge_id, same).await.assert_error(401, "invalid_credentials");
    let kinds = app.audit_events(&root.access, &ada.user_id).await;
    assert!(kinds.iter().any(|(kind, _)| kind == "passkey_counter_regressed"), "{kinds:?}");
    // The genuine authenticator, ahead of the stored counter, still signs in.
    assert_eq!(passkey_login(&app, &mut credential, None).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn login_options_do_not_tell_whether_an_account_or_a_passkey_exists() {
    let app = spawn_app().await;
    let ada = app.signed_up("ada@example.com").await;
    app.signed_up("bob@example.com").await;
    add_passkey(&app, &ada.access, Alg::Es256).await;
    let shape = |options: &Value| {
        let mut keys: Vec<String> = options.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let (_, known) = login_options(&app, Some("ada@example.com")).await;
    for email in ["nobody@example.com", "bob@example.com"] {
        let (_, other) = login_options(&app, Some(email)).await;
        assert_eq!(shape(&other), shape(&known), "{email}: {other} vs {known}");
        // Stable fake ids: asking twice shows the same list.
        let (_, again) = login_options(&app, Some(email)).await;
        assert_eq!(allowed_ids(&again), allowed_ids(&other), "{email}");
        for id in allowed_ids(&other) {
            assert!(!unb64(&id).is_empty());
        }
    }
    // Different addresses get different fake lists.
    let (_, a) = login_options(&app, Some("x1@example.com")).await;
    let (_, b) = login_options(&app, Some("x2@example.com")).await;
    let (_, c) = login_options(&app, Some("x3@example.com")).await;
    assert!(allowed_ids(&a) != allowed_ids(&b) || allowed_ids(&b) != allowed_ids(&c));
}

#[actix_web::test]
async fn a_passkey_is_renamed_removed_and_stops_at_once() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let mut credential = add_passkey(&app, &ada.access, Alg::Es256).await;
    let id = app.get(LIST, Some(&ada.access)).await.body["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/auth/passkey/{id}");

    let renamed = app.send_json(Method::PATCH, &path, Some(&ada.access), &json!({"name": "  Phone "})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Phone");
    assert_eq!(renamed.body["id"], id.as_str());
    for bad in [json!({}), json!({"name": ""}), json!({"name": "x".repeat(65)}), json!({"name": "a\u{0007}b"})] {
        let answer = app.send_json(Method::PATCH, &path, Some(&ada.access), &bad).await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"]["name"].is_string(), "{bad}: {}", answer.body);
    }
    // Not Bob's to rename or remove, and not there for a bad id.
    app.send_json(Method::PATCH, &path, Some(&bob.access), &json!({"name": "mine"}))
        .await
        .assert_error(404, "not_found");
    app.delete_auth(&path, &bob.access).await.assert_error(404, "not_found");
    app.delete_auth("/api/v1/auth/passkey/not-an-id", &ada.access).await.assert_error(404, "not_found");

    // A ceremony in flight when the passkey goes is refused.
    let (challenge_id, options) = login_options(&app, Some("ada@example.com")).await;
    let assertion = credential.assert(&options, &origin(&app));
    let removed = app.delete_auth(&path, &ada.access).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(removed.body["message_code"], "passkey_removed");
    login_verify(&app, &challenge_id, assertion).await.assert_error(401, "invalid_credentials");
    passkey_login(&app, &mut credential, None).await.assert_error(401, "invalid_credentials");
    app.delete_auth(&path, &ada.access).await.assert_error(404, "not_found");
    assert_eq!(app.get(LIST, Some(&ada.access)).await.body["passkeys"], json!([]));
    let kinds = app.audit_events(&root.access, &ada.user_id).await;
    assert!(kinds.contains(&("passkey_removed".into(), format!("passkey={id}"))), "{kinds:?}");
}

#[actix_web::test]
async fn a_disabled_account_or_another_project_gets_no_session_from_a_passkey() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    let ada = app.signed_up("ada@example.com").await;
    let mut credential = add_passkey(&app, &ada.access, Alg::Es256).await;

    // Project `app` does not know Ada's credential.
    let created = app.post_auth("/api/v1/admin/projects", &root.access, &json!({"id": "app", "name": "App"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (challenge_id, options) = login_options_at(&app, "/api/v1/projects/app/auth", &json!({})).await;
    let assertion = credential.assert(&options, &origin(&app));
    let path = "/api/v1/projects/app/auth/passkey/login/verify";
    let refused = app.post(path, &json!({"challenge_id": challenge_id, "credential": assertion})).await;
    refused.assert_error(401, "invalid_credentials");
    // Nor a ceremony started on the default project finished on `app`.
    let (challenge_id, options) = login_options(&app, None).await;
    let assertion = credential.assert(&options, &origin(&app));
    let refused = app.post(path, &json!({"challenge_id": challenge_id, "credential": assertion})).await;
    refused.assert_error(401, "invalid_credentials");

    // Disabled: the passkey signs nobody in.
    let user = format!("/api/v1/admin/projects/default/users/{}", ada.user_id);
    let disabled = app.send_json(Method::PATCH, &user, Some(&root.access), &json!({"disabled": true})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    passkey_login(&app, &mut credential, None).await.assert_error(403, "account_disabled");
    let enabled = app.send_json(Method::PATCH, &user, Some(&root.access), &json!({"disabled": false})).await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert_eq!(passkey_login(&app, &mut credential, None).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_credential_belongs_to_one_account_and_ceremonies_to_their_user() {
    let app = spawn_app().await;
    let ada = app.signed_up("ada@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let (challenge_id, options) = register_options(&app, &ada.access).await;
    let (credential, json) = Credential::create(&options, &origin(&app), Alg::Es256);

    // Bob cannot finish Ada's ceremony (and it is spent by trying).
    let body = json!({"challenge_id": challenge_id, "credential": json});
    app.post_auth(REGISTER, &bob.access, &body).await.assert_error(400, "validation_error");
    app.post_auth(REGISTER, &ada.access, &body).await.assert_error(400, "validation_error");

    let (challenge_id, options) = register_options(&app, &ada.access).await;
    let body = json!({"challenge_id": challenge_id, "credential": credential.attest(&options, &origin(&app))});
    assert_eq!(app.post_auth(REGISTER, &ada.access, &body).await.status, StatusCode::OK);
    // Ada's next options exclude it.
    let (_, options) = register_options(&app, &ada.access).await;
    let excluded: Vec<&str> =
        options["excludeCredentials"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(excluded, vec![b64(&credential.id)]);
    // The same credential on Bob's account (an authenticator that ignored
    // the exclusion) is refused: a credential id has one owner.
    let (challenge_id, options) = register_options(&app, &bob.access).await;
    let body = json!({"challenge_id": challenge_id, "credential": credential.attest(&options, &origin(&app))});
    app.post_auth(REGISTER, &bob.access, &body).await.assert_error(409, "passkey_exists");
    assert_eq!(app.get(LIST, Some(&bob.access)).await.body["passkeys"], json!([]));
}

#[actix_web::test]
async fn bad_passkey_requests_get_clear_errors() {
    let app = spawn_app().await;
    let ada = app.signed_up("ada@example.com").await;
    let (challenge_id, _) = register_options(&app, &ada.access).await;
    for (body, field) in [
        (json!({"credential": {}}), "challenge_id"),
        (json!({"challenge_id": challenge_id}), "credential"),
        (json!({"challenge_id": challenge_id, "credential": {"id": 5}}), "credential"),
        (json!({"challenge_id": challenge_id, "credential": {}, "name": ""}), "name"),
    ] {
        let answer = app.post_auth(REGISTER, &ada.access, &body).await;
        answer.assert_error(400, "validation_error");
        assert!(answer.body["fields"][field].is_string(), "{body}: {}", answer.body);
    }
    let body = json!({"challenge_id": "not-a-uuid", "credential": sample_assertion()});
    app.post(LOGIN, &body).await.assert_error(401, "invalid_credentials");
    app.post(LOGIN, &json!({"challenge_id": uuid_like(), "credential": []}))
        .await
        .assert_error(400, "validation_error");
    let answer = app.post(LOGIN, &json!({"challenge_id": uuid_like(), "credential": sample_assertion()})).await;
    answer.assert_error(401, "invalid_credentials");
    app.post(LOGIN_OPTIONS, &json!({"email": "not an address"})).await.assert_error(400, "validation_error");
    let malformed = app
        .client
        .post(app.url(LOGIN_OPTIONS))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    answer_of(malformed).await.assert_error(400, "invalid_json");
    // Signed-in routes need a session token.
    app.post(OPTIONS, &json!({})).await.assert_error(401, "unauthorized");
    app.get(LIST, None).await.assert_error(401, "unauthorized");
    // A password account with no passkey still logs in with its password.
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status, StatusCode::OK);
}

fn uuid_like() -> &'static str {
    "0190a0b0-0000-7000-8000-000000000000"
}

/// A well-formed assertion of no real ceremony.
fn sample_assertion() -> Value {
    json!({
        "id": b64(b"credential"),
        "rawId": b64(b"credential"),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64(b"{}"),
            "authenticatorData": b64(&[0u8; 37]),
            "signature": b64(b"sig"),
            "userHandle": null,
        },
        "clientExtensionResults": {},
    })
}
