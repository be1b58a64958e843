//! Property tests: every parser of request text, fed arbitrary strings and
//! bytes, answers (a value or a refusal) and never panics. A panic on a
//! request closes the connection without an answer and writes a backtrace.

use actix_web::test::TestRequest;
use proptest::prelude::*;

use super::extract::{client_ip, presented_credential};
use super::routes::api_keys::parse_expires_in;
use super::routes::gateway::plain_form_token;
use super::validate::code_shape;
use crate::account::{
    ApiKeyId, CodePurpose, SessionId, UserId, normalize_email, normalize_username, validate_name,
    validate_optional_name, validate_password,
};
use crate::clock::Timestamp;
use crate::token::refresh::RefreshSecret;

/// Text that leans on what breaks parsers: multi-byte characters at the
/// edges, digits, unit letters, separators, bidi and zero-width characters.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[0-9dhé\u{202e}\u{200b}@.\"<>, -]{0,12}", "[a-z0-9]{0,6}[\u{80}-\u{10ffff}]{0,3}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn text_parsers_never_panic(text in hostile_text()) {
        let _ = parse_expires_in(&text);
        let _ = normalize_email(&text);
        let _ = normalize_username(&text);
        let _ = validate_name(&text);
        let _ = validate_optional_name(&text);
        let _ = validate_password(&text, 8);
        let _ = code_shape(&text);
        let _ = CodePurpose::parse(&text);
        let _ = SessionId::parse(&text);
        let _ = ApiKeyId::parse(&text);
        let _ = UserId::parse(&text);
        let _ = Timestamp::parse_rfc3339(&text);
        let _ = RefreshSecret::parse(&text);
        let _ = crate::token::b64url_decode(&text);
        let _ = plain_form_token(text.as_bytes());
    }

    #[test]
    fn a_normalized_email_is_a_fixed_point(text in hostile_text()) {
        if let Ok(email) = normalize_email(&text) {
            prop_assert_eq!(normalize_email(&email), Ok(email.clone()));
        }
    }

    #[test]
    fn header_parsers_never_panic(value in proptest::collection::vec(any::<u8>(), 0..80)) {
        let Ok(header) = actix_web::http::header::HeaderValue::from_bytes(&value) else { return Ok(()) };
        let bearer = TestRequest::default().insert_header(("authorization", header.clone())).to_http_request();
        let _ = presented_credential(&bearer);
        let key = TestRequest::default().insert_header(("x-api-key", header.clone())).to_http_request();
        let _ = presented_credential(&key);
        let forwarded = TestRequest::default()
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .insert_header(("x-forwarded-for", header))
            .to_http_request();
        let _ = client_ip(&forwarded, &["127.0.0.0/8".parse().unwrap()]);
    }
}
