//! One file per resource.

pub mod api_keys;
pub mod auth;
pub mod gateway;
pub mod health;
pub mod otp;
pub mod sessions;
pub mod twofa;
