//! Seed `003` (lnchr), the parts that are path aliases:
//! `/api/v1/settings/service-keys` are the core API-key routes of the
//! default project (`expires_at` optional: without it a key never expires).

use actix_web::web;

use crate::http::routes::api_keys;

/// Under `/api/v1/settings`, registered before the `/api/v1` gateway scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/service-keys")
            .route(web::get().to(api_keys::list_api_keys))
            .route(web::post().to(api_keys::create_api_key)),
    )
    .service(web::resource("/service-keys/{id}").route(web::delete().to(api_keys::revoke_api_key)));
}
