//! A test OpenID Connect provider on loopback: its own keys (RS256 and
//! ES256), a JWKS endpoint that can rotate keys, stall or fail, and counts
//! its fetches, and ID tokens signed as the tests need.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

/// One signing key of the provider.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
    /// The RSA public key as PEM (what an `alg` confusion attack signs with).
    pub public_pem: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    pub fn rsa(kid: &str) -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let encoding = EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes());
        let public = key.to_public_key();
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                         "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())});
        let public_pem = public.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        SigningKey { kid: kid.into(), alg: Algorithm::RS256, encoding, jwk, public_pem: Some(public_pem) }
    }

    pub fn ec(kid: &str) -> Self {
        let key = p256::SecretKey::random(&mut rand_core::OsRng);
        let encoding = EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes());
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        // No `alg`: the gateway takes ES256 from the key type and curve.
        let jwk = json!({"kty": "EC", "kid": kid, "crv": "P-256",
                         "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
        SigningKey { kid: kid.into(), alg: Algorithm::ES256, encoding, jwk, public_pem: None }
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, &self.kid)
    }

    /// Signed by this key, under another `kid`.
    pub fn sign_as(&self, claims: &Value, kid: &str) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// How the JWKS endpoint answers.
#[derive(Default)]
pub struct Behaviour {
    pub fail: AtomicBool,
    pub stall: AtomicBool,
}

struct Shared {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    behaviour: Behaviour,
    max_age: Mutex<Option<u64>>,
}

pub struct TestProvider {
    pub issuer: String,
    pub jwks_url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn jwks(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    if shared.behaviour.stall.load(Ordering::SeqCst) {
        actix_web::rt::time::sleep(Duration::from_secs(30)).await;
    }
    if shared.behaviour.fail.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().finish();
    }
    let keys = shared.keys.lock().unwrap().clone();
    let mut response = HttpResponse::Ok();
    if let Some(age) = *shared.max_age.lock().unwrap() {
        response.insert_header(("Cache-Control", format!("public, max-age={age}, must-revalidate")));
    }
    response.json(json!({ "keys": keys }))
}

impl TestProvider {
    /// A provider publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
            behaviour: Behaviour::default(),
            max_age: Mutex::new(None),
        });
        let data = web::Data::new(Arc::clone(&shared));
        let server = HttpServer::new(move || App::new().app_data(data.clone()).route("/jwks", web::get().to(jwks)))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let base = format!("http://127.0.0.1:{port}");
        TestProvider { issuer: base.clone(), jwks_url: format!("{base}/jwks"), shared, handle }
    }

    /// The provider's settings entry for a project.
    pub fn config(&self, client_id: Value) -> Value {
        json!({"issuer": self.issuer, "client_id": client_id, "jwks_url": self.jwks_url})
    }

    /// Publishes `keys` instead (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.shared.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn set_max_age(&self, seconds: Option<u64>) {
        *self.shared.max_age.lock().unwrap() = seconds;
    }

    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    pub fn fail(&self, on: bool) {
        self.shared.behaviour.fail.store(on, Ordering::SeqCst);
    }

    pub fn stall(&self, on: bool) {
        self.shared.behaviour.stall.store(on, Ordering::SeqCst);
    }
}
