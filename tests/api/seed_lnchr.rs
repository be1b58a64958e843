//! Seed `003` (lnchr), written from its document: initial setup (the first
//! user only), login, passwordless codes, the profile with `first_name` and
//! `last_name`, the password, service keys at
//! `/api/v1/settings/service-keys` sent in `x-lnchr-key`, and every answer in
//! `{success, data}` (the `response_envelope` setting).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Answer, PASSWORD, TestApp, answer, nth_code, spawn_app, spawn_with};

/// `data` of a `{success: true, data}` answer.
#[track_caller]
fn data(answer: &Answer) -> &Value {
    assert_eq!(answer.body["success"], true, "{}", answer.body);
    &answer.body["data"]
}

/// A `{success: false, error, code}` answer with the core's code.
#[track_caller]
fn refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.body);
    assert_eq!(answer.body["success"], false, "{}", answer.body);
    assert_eq!(answer.body["code"], code, "{}", answer.body);
    assert!(answer.body["error"].is_string(), "{}", answer.body);
}

/// The document's user object: every field there, of its type.
#[track_caller]
fn assert_user_object(user: &Value) {
    for field in ["id", "email", "role", "created_at", "updated_at"] {
        assert!(user[field].is_string(), "{field}: {user}");
    }
    for field in ["first_name", "last_name"] {
        assert!(user[field].is_string() || user[field].is_null(), "{field}: {user}");
    }
    for field in ["must_reset_password", "two_factor_enabled"] {
        assert!(user[field].is_boolean(), "{field}: {user}");
    }
}

/// An lnchr installation: registration closed (initial setup only),
/// enveloped answers, keys also in `x-lnchr-key`.
async fn lnchr() -> TestApp {
    spawn_with(|s| {
        s.flows.allow_registration = false;
        s.flows.response_envelope = true;
        s.http.api_key_headers = vec!["x-api-key".into(), "x-lnchr-key".into()];
    })
    .await
}

#[actix_web::test]
async fn an_lnchr_client_works_unchanged() {
    let app = lnchr().await;
    let status = app.get("/api/v1/auth/setup-status", None).await;
    assert_eq!(data(&status)["setup_complete"], false);

    // Register the first user (initial setup only).
    let jane =
        json!({"email": "jane@example.com", "password": "securepassword", "first_name": "Jane", "last_name": "Doe"});
    let registered = app.post("/api/v1/auth/register", &jane).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    assert_user_object(&data(&registered)["user"]);
    assert_eq!(data(&app.get("/api/v1/auth/setup-status", None).await)["setup_complete"], true);
    let second = json!({"email": "eve@example.com", "password": "securepassword", "first_name": "Eve"});
    refused(&app.post("/api/v1/auth/register", &second).await, 403, "forbidden");

    // Login {email, password} -> {success, data: {token, user}}.
    let login =
        app.post("/api/v1/auth/login", &json!({"email": "jane@example.com", "password": "securepassword"})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = data(&login)["token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let user = &data(&login)["user"];
    assert_user_object(user);
    assert_eq!(
        (&user["email"], &user["first_name"], &user["last_name"]),
        (&json!("jane@example.com"), &json!("Jane"), &json!("Doe"))
    );
    assert_eq!(user["role"], "superadmin");
    assert_eq!((&user["must_reset_password"], &user["two_factor_enabled"]), (&json!(false), &json!(false)));
    let wrong =
        app.post("/api/v1/auth/login", &json!({"email": "jane@example.com", "password": "not-the-password"})).await;
    refused(&wrong, 401, "invalid_credentials");

    // GET /me, then PUT /me {first_name, last_name}.
    let me = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_user_object(data(&me));
    assert_eq!(data(&me)["id"], user["id"]);
    let updated = app.put_auth("/api/v1/auth/me", &token, &json!({"first_name": "Jane", "last_name": "Smith"})).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(data(&updated)["last_name"], "Smith");
    assert_eq!(data(&app.get("/api/v1/auth/me", Some(&token)).await)["last_name"], "Smith");

    // Passwordless: send-code {email, method} (no purpose), verify-code -> JWT.
    let sent = app.post("/api/v1/auth/send-code", &json!({"email": "jane@example.com", "method": "email"})).await;
    assert!(sent.status.is_success(), "{}", sent.body);
    assert_eq!(sent.body["success"], true, "{}", sent.body);
    let code = nth_code(&app.outbox, "jane@example.com", 1).await;
    let verified = app.post("/api/v1/auth/verify-code", &json!({"email": "jane@example.com", "code": code})).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let by_code = data(&verified)["token"].as_str().unwrap().to_owned();
    refused(&app.get("/api/v1/auth/me", Some("not-a-token")).await, 401, "invalid_token");

    // The first proof of the address ends what was made before it (a
    // squatter's password and sessions); the owner sets a password again.
    refused(&app.get("/api/v1/auth/me", Some(&token)).await, 401, "invalid_token");
    let initial = json!({"new_password": "securepassword2"});
    let set = app.post_auth("/api/v1/auth/me/set-initial-password", &by_code, &initial).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["success"], true);
    refused(
        &app.post_auth("/api/v1/auth/me/set-initial-password", &by_code, &initial).await,
        409,
        "password_already_set",
    );
    let again =
        app.post("/api/v1/auth/login", &json!({"email": "jane@example.com", "password": "securepassword2"})).await;
    let token = data(&again)["token"].as_str().unwrap().to_owned();

    // PUT /me/password {current_password, new_password}.
    let change = json!({"current_password": "securepassword2", "new_password": "newpassword"});
    let changed = app.put_auth("/api/v1/auth/me/password", &token, &change).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(data(&changed)["message_code"], "password_changed");
    assert!(data(&changed)["message"].is_string());
    let login = app.post("/api/v1/auth/login", &json!({"email": "jane@example.com", "password": "newpassword"})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);

    // Service keys: the key once, in the wrapper; then x-lnchr-key.
    let created =
        app.post_auth(KEYS, &token, &json!({"name": "ci-cd-pipeline", "expires_at": "2030-12-31T00:00:00Z"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = data(&created)["api_key"].as_str().unwrap().to_owned();
    let listed = app.get(KEYS, Some(&token)).await;
    assert_eq!(data(&listed)["api_keys"][0]["name"], "ci-cd-pipeline");
    assert!(data(&listed)["api_keys"][0].get("api_key").is_none(), "the key is shown only once");
    let keyed =
        answer(app.client.get(app.url("/api/v1/auth/me")).header("x-lnchr-key", &key).send().await.unwrap()).await;
    assert_eq!(data(&keyed)["email"], "jane@example.com");
    let id = data(&created)["id"].as_str().unwrap();
    assert_eq!(data(&app.delete_auth(&format!("{KEYS}/{id}"), &token).await)["message_code"], "api_key_revoked");
    refused(&app.delete_auth(&format!("{KEYS}/{id}"), &token).await, 404, "not_found");

    // A token of this dialect works on the other APIs, and logout here ends it there.
    assert_eq!(app.get("/v1/auth/me", Some(&token)).await.body["email"], "jane@example.com", "seed 000 is bare");
    assert_eq!(app.verify(&token).await.status, StatusCode::OK);
    let out = app.post_auth("/api/v1/auth/logout", &token, &json!({})).await;
    assert_eq!(data(&out)["message_code"], "logged_out");
    assert_eq!(app.verify(&token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/auth/me", Some(&token)).await.status, StatusCode::UNAUTHORIZED);
    // The password change ended the code's session, on every API.
    assert_eq!(app.verify(&by_code).await.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn response_envelope_is_a_project_setting() {
    let app = spawn_app().await;
    let root = app.signed_up("root@example.com").await;
    // Off by default: the core's bare answers.
    let bare = app.me(&root.access).await;
    assert_eq!(bare.body["email"], "root@example.com");
    assert!(bare.body.get("success").is_none(), "{}", bare.body);

    // On for one project, off for the other and for default.
    let admin = "/api/v1/admin/projects";
    let create = |id: &str, settings: Value| json!({"name": id, "id": id, "settings": settings});
    let made = app.post_auth(admin, &root.access, &create("wrapped", json!({"response_envelope": true}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["settings"]["response_envelope"], true, "the admin API itself is not wrapped");
    app.post_auth(admin, &root.access, &create("plain", json!({}))).await;
    let body = json!({"email": "ann@example.com", "password": PASSWORD, "first_name": "Ann", "last_name": "Lee"});
    let wrapped = app.post("/api/v1/projects/wrapped/auth/register", &body).await;
    assert_eq!(wrapped.status, StatusCode::CREATED, "{}", wrapped.body);
    assert_eq!(data(&wrapped)["user"]["name"], "Ann Lee");
    refused(&app.post("/api/v1/projects/wrapped/auth/register", &body).await, 409, "email_taken");
    let plain = app.post("/api/v1/projects/plain/auth/register", &body).await;
    assert_eq!(plain.body["user"]["first_name"], "Ann", "{}", plain.body);
    // A route no project serves answers as the core does.
    app.post("/api/v1/projects/nowhere/auth/login", &body).await.assert_error(404, "not_found");

    // Turned on for default: its /auth and /settings answers; a 204 stays empty.
    let patched = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("{admin}/default"),
            Some(&root.access),
            &json!({"settings": {"response_envelope": true}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(data(&app.me(&root.access).await)["email"], "root@example.com");
    assert!(data(&app.get(KEYS, Some(&root.access)).await)["api_keys"].is_array());
    let key =
        data(&app.post_auth("/api/v1/auth/keys", &root.access, &json!({})).await)["keyId"].as_str().unwrap().to_owned();
    let deleted = app.delete_auth(&format!("/api/v1/auth/keys/{key}"), &root.access).await;
    assert_eq!((deleted.status, &deleted.body), (StatusCode::NO_CONTENT, &Value::Null));
    // Gateway routes are never wrapped.
    assert!(app.verify(&root.access).await.status.is_success());
    let wrong = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("{admin}/default"),
            Some(&root.access),
            &json!({"settings": {"response_envelope": "yes"}}),
        )
        .await;
    wrong.assert_error(400, "validation_error");
}

#[actix_web::test]
async fn first_and_last_name_and_must_reset_password_are_on_every_user_object() {
    let app = spawn_app().await;
    // Core register without the parts: both null, the flag false.
    let root = app.register("root@example.com").await;
    let user = &root.body["user"];
    assert_eq!(
        (&user["first_name"], &user["last_name"], &user["must_reset_password"]),
        (&Value::Null, &Value::Null, &json!(false))
    );
    let root_access = root.body["token"].as_str().unwrap().to_owned();

    // The parts alone make the name; with a name, the name stays.
    let parts =
        json!({"email": "ada@example.com", "password": PASSWORD, "first_name": " Ada ", "last_name": "Lovelace"});
    let ada = app.post("/api/v1/auth/register", &parts).await;
    assert_eq!(ada.status, StatusCode::CREATED, "{}", ada.body);
    assert_eq!((&ada.body["user"]["name"], &ada.body["user"]["first_name"]), (&json!("Ada Lovelace"), &json!("Ada")));
    let named = json!({"email": "bo@example.com", "password": PASSWORD, "name": "Bo", "last_name": "Diddley"});
    assert_eq!(app.post("/api/v1/auth/register", &named).await.body["user"]["name"], "Bo");
    let neither = json!({"email": "cy@example.com", "password": PASSWORD});
    let refused = app.post("/api/v1/auth/register", &neither).await;
    refused.assert_error(400, "validation_error");
    assert!(refused.body["fields"]["name"].is_string(), "{}", refused.body);
    let too_long =
        json!({"email": "cy@example.com", "password": PASSWORD, "name": "Cy", "first_name": "x".repeat(201)});
    let refused = app.post("/api/v1/auth/register", &too_long).await;
    assert!(refused.body["fields"]["first_name"].is_string(), "{}", refused.body);

    // PUT /me: a part renames the user after the parts; null clears one; a name wins.
    let access = ada.body["token"].as_str().unwrap().to_owned();
    let changed = app.put_auth("/api/v1/auth/me", &access, &json!({"last_name": "King"})).await;
    assert_eq!((&changed.body["name"], &changed.body["last_name"]), (&json!("Ada King"), &json!("King")));
    let cleared = app.put_auth("/api/v1/auth/me", &access, &json!({"last_name": null})).await;
    assert_eq!((&cleared.body["name"], &cleared.body["last_name"]), (&json!("Ada"), &Value::Null));
    let both = app.put_auth("/api/v1/auth/me", &access, &json!({"name": "Countess", "first_name": "Augusta"})).await;
    assert_eq!((&both.body["name"], &both.body["first_name"]), (&json!("Countess"), &json!("Augusta")));
    app.put_auth("/api/v1/auth/me", &access, &json!({"first_name": 7})).await.assert_error(400, "validation_error");

    // must_reset_password: set by an admin, shown everywhere, cleared by the next password change.
    let path = format!("/api/v1/admin/projects/default/users/{}", ada.body["user"]["id"].as_str().unwrap());
    let flagged =
        app.send_json(reqwest::Method::PATCH, &path, Some(&root_access), &json!({"must_reset_password": true})).await;
    assert_eq!(flagged.status, StatusCode::OK, "{}", flagged.body);
    assert_eq!(flagged.body["must_reset_password"], true);
    assert_eq!(app.me(&access).await.body["must_reset_password"], true);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.body["user"]["must_reset_password"], true);
    let events = app.audit_events(&root_access, root.body["user"]["id"].as_str().unwrap()).await;
    assert!(events.iter().any(|(_, detail)| detail.contains("must_reset_password=true")), "{events:?}");
    let change = json!({"current_password": PASSWORD, "new_password": "a whole new password"});
    assert_eq!(app.put_auth("/api/v1/auth/me/password", &access, &change).await.status, StatusCode::OK);
    assert_eq!(app.me(&access).await.body["must_reset_password"], false);
    let listed = app.get("/api/v1/admin/projects/default/users", Some(&root_access)).await;
    let users = listed.body["users"].as_array().unwrap();
    assert!(users.iter().all(|u| u["must_reset_password"] == false && u.get("first_name").is_some()), "{users:?}");
}

const KEYS: &str = "/api/v1/settings/service-keys";

#[actix_web::test]
async fn service_keys_are_api_keys_and_come_in_the_configured_headers() {
    let app = spawn_with(|s| s.http.api_key_headers = vec!["x-api-key".into(), "x-lnchr-key".into()]).await;
    let admin = app.signed_up("jane@example.com").await;

    // Create {name, expires_at?}: the key is shown once.
    let created = app
        .post_auth(KEYS, &admin.access, &json!({"name": "ci-cd-pipeline", "expires_at": "2030-12-31T00:00:00Z"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["api_key"].as_str().unwrap().to_owned();
    assert_eq!(created.body["expires_at"], "2030-12-31T00:00:00Z");
    let forever = app.post_auth(KEYS, &admin.access, &json!({"name": "terraform"})).await;
    assert_eq!(forever.status, StatusCode::CREATED, "{}", forever.body);
    assert!(forever.body["expires_at"].is_null(), "without expires_at a key never expires");

    // Listed here and on the core API alike.
    let listed = app.get(KEYS, Some(&admin.access)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["api_keys"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/api/v1/auth/api-keys", Some(&admin.access)).await.body["api_keys"], listed.body["api_keys"]);

    // Sent as x-lnchr-key: honoured by a key-ok route, /verify and /introspect.
    let with = |path: &str| app.client.get(app.url(path)).header("x-lnchr-key", &key);
    let me = answer(with("/api/v1/auth/me").send().await.unwrap()).await;
    assert_eq!(me.body["email"], "jane@example.com", "{}", me.body);
    assert_eq!(with("/api/v1/verify").send().await.unwrap().status(), StatusCode::OK);
    let introspect_key = app.introspect_key(&admin.access).await;
    let request = app
        .client
        .post(app.url("/api/v1/introspect"))
        .header("x-lnchr-key", &introspect_key)
        .form(&[("token", &admin.access)]);
    let introspected = answer(request.send().await.unwrap()).await;
    assert_eq!(introspected.body["active"], true, "{}", introspected.body);
    // X-API-Key still works.
    let classic = app.client.get(app.url("/api/v1/verify")).header("X-API-Key", &key).send().await.unwrap();
    assert_eq!(classic.status(), StatusCode::OK);

    // Delete: it stops at once.
    let id = created.body["id"].as_str().unwrap();
    let deleted = app.delete_auth(&format!("{KEYS}/{id}"), &admin.access).await;
    assert_eq!(deleted.body["message_code"], "api_key_revoked", "{}", deleted.body);
    assert_eq!(with("/api/v1/verify").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.delete_auth(&format!("{KEYS}/{id}"), &admin.access).await.assert_error(404, "not_found");
    app.get(KEYS, None).await.assert_error(401, "unauthorized");
}

#[actix_web::test]
async fn a_header_that_is_not_configured_carries_no_key() {
    let app = spawn_app().await;
    let admin = app.signed_up("jane@example.com").await;
    let key =
        app.post_auth(KEYS, &admin.access, &json!({"name": "k"})).await.body["api_key"].as_str().unwrap().to_owned();
    let refused = app.client.get(app.url("/api/v1/verify")).header("x-lnchr-key", &key).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}
