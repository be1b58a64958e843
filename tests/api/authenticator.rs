//! A software authenticator: what a browser and a platform authenticator
//! hand the relying party, built from the options the gateway sent, with
//! keys of its own (ES256, ES384, RS256). "none" attestation, user present
//! and verified, a resident credential whose user handle it remembers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use rsa::pkcs1v15;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
}

enum Key {
    Es256(p256::ecdsa::SigningKey),
    Es384(p384::ecdsa::SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
}

impl Key {
    fn generate(alg: Alg) -> Self {
        let mut rng = rand_core::OsRng;
        match alg {
            Alg::Es256 => Key::Es256(p256::ecdsa::SigningKey::random(&mut rng)),
            Alg::Es384 => Key::Es384(p384::ecdsa::SigningKey::random(&mut rng)),
            Alg::Rs256 => Key::Rs256(Box::new(rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key"))),
        }
    }

    /// The COSE_Key of the public half.
    fn cose(&self) -> Cbor {
        let int = |i: i64| Cbor::Integer(i.into());
        // An EC2 key: COSE algorithm `alg`, curve `crv`, the point's coordinates.
        let ec2 = |alg: i64, crv: i64, x: &[u8], y: &[u8]| {
            vec![
                (int(1), int(2)),
                (int(3), int(alg)),
                (int(-1), int(crv)),
                (int(-2), Cbor::Bytes(x.to_vec())),
                (int(-3), Cbor::Bytes(y.to_vec())),
            ]
        };
        let entries = match self {
            Key::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                ec2(-7, 1, point.x().unwrap(), point.y().unwrap())
            }
            Key::Es384(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                ec2(-35, 2, point.x().unwrap(), point.y().unwrap())
            }
            Key::Rs256(key) => vec![
                (int(1), int(3)),
                (int(3), int(-257)),
                (int(-1), Cbor::Bytes(key.n().to_bytes_be())),
                (int(-2), Cbor::Bytes(key.e().to_bytes_be())),
            ],
        };
        Cbor::Map(entries)
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Key::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Key::Es384(key) => {
                let signature: p384::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Key::Rs256(key) => pkcs1v15::SigningKey::<Sha256>::new((**key).clone()).sign(message).to_vec(),
        }
    }
}

/// One credential held by the authenticator.
pub struct Credential {
    pub id: Vec<u8>,
    key: Key,
    /// The user handle the relying party gave at registration.
    pub user_handle: Vec<u8>,
    pub counter: u32,
}

/// Flags of authenticator data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

fn cbor(value: &Cbor) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("CBOR");
    bytes
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})).unwrap()
}

fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

impl Credential {
    /// `navigator.credentials.create` with `options` (the `publicKey`
    /// member the gateway answered) on a page of `origin`: the new
    /// credential, and the `PublicKeyCredential.toJSON()` to send back.
    pub fn create(options: &Value, origin: &str, alg: Alg) -> (Credential, Value) {
        let user_handle = unb64(options["user"]["id"].as_str().expect("user.id"));
        let mut id = vec![0u8; 32];
        getrandom::getrandom(&mut id).unwrap();
        let credential = Credential { id, key: Key::generate(alg), user_handle, counter: 1 };
        let json = credential.attest(options, origin);
        (credential, json)
    }

    /// The registration answer for this same credential (id and key) to
    /// `options`: what an authenticator that ignored `excludeCredentials` sends.
    pub fn attest(&self, options: &Value, origin: &str) -> Value {
        let rp_id = options["rp"]["id"].as_str().expect("rp.id");
        let challenge = options["challenge"].as_str().expect("challenge");
        let data = client_data("webauthn.create", challenge, origin);
        let mut auth_data = rp_id_hash(rp_id).to_vec();
        auth_data.push(UP | UV | AT);
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&u16::try_from(self.id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&self.id);
        auth_data.extend_from_slice(&cbor(&self.key.cose()));
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&data),
                "attestationObject": b64(&cbor(&attestation)),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// `navigator.credentials.get` with `options` (the `publicKey` member):
    /// an assertion by this credential, its counter advanced.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        self.counter += 1;
        let counter = self.counter;
        self.assert_with_counter(options, origin, counter)
    }

    /// An assertion that reports `counter`, whatever the authenticator's own.
    pub fn assert_with_counter(&self, options: &Value, origin: &str, counter: u32) -> Value {
        let rp_id = options["rpId"].as_str().expect("rpId");
        let challenge = options["challenge"].as_str().expect("challenge");
        let data = client_data("webauthn.get", challenge, origin);
        let mut auth_data = rp_id_hash(rp_id).to_vec();
        auth_data.push(UP | UV);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&data));
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&self.key.sign(&signed)),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
