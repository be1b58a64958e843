//! Seed `003` (lnchr), the parts that are path aliases and shapes:
//! `/api/v1/settings/service-keys` are the core API-key routes of the
//! default project (`expires_at` optional: without it a key never expires),
//! and a project's `response_envelope` setting wraps its answers in
//! `{success, data}`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use crate::http::extract;
use crate::http::routes::api_keys;

/// Wraps the scope's answers in the envelope when the route's project has
/// `response_envelope` on; otherwise (and for an unknown project, whose 404
/// is the core's) passes them through. Wrap a scope in it inside its
/// `deadline`.
pub async fn project_envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let enveloped = extract::project_of(req.request()).is_some_and(|project| project.settings.response_envelope);
    let res = next.call(req).await?.map_into_boxed_body();
    if enveloped { super::wrapped(res).await } else { Ok(res) }
}

/// Under `/api/v1/settings`, registered before the `/api/v1` gateway scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/service-keys")
            .route(web::get().to(api_keys::list_api_keys))
            .route(web::post().to(api_keys::create_api_key)),
    )
    .service(web::resource("/service-keys/{id}").route(web::delete().to(api_keys::revoke_api_key)));
}
