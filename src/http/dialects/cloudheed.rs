//! Seed `000` (Cloudheed): the `/v1/auth/...` tree (no `/api`) on the
//! default project. Every route is the core route of the same name but
//! one: `POST /v1/auth/2fa/verify {code}` confirms a TOTP setup (the core's
//! `2fa/enable`), since Cloudheed clients send the login's code inline
//! (`totp_code`) and have no challenge step.

use actix_web::web;

use crate::http::routes::twofa;

/// Registered before the core routes of the same scope, so it wins.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/2fa/verify", web::post().to(twofa::enable));
}
