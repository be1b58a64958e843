//! One file per resource.

pub mod auth;
pub mod health;
pub mod sessions;
