//! Per-client-IP rate limits (governor) on the sign-in routes.
//!
//! Owns one keyed limiter per route kind. `/introspect`, `/verify` and
//! `/metrics` are never limited here. The per-account failed-login lock is
//! not here: it is state of the account's shard (`shards::lockout`).
//! Memory is bounded by `sweep`, which forgets keys whose quota has refilled.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::settings::{RateQuota, Settings};
use crate::telemetry::names;

/// The route kinds that are limited, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedRoute {
    Login,
    Register,
    Refresh,
}

impl LimitedRoute {
    fn label(self) -> &'static str {
        match self {
            LimitedRoute::Login => "login",
            LimitedRoute::Register => "register",
            LimitedRoute::Refresh => "refresh",
        }
    }
}

pub struct RateLimits {
    enabled: bool,
    auth: DefaultKeyedRateLimiter<(LimitedRoute, IpAddr)>,
    refresh: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn quota(q: RateQuota) -> Quota {
    let per_minute = NonZeroU32::new(q.per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl RateLimits {
    pub fn new(settings: &Settings) -> Self {
        RateLimits {
            enabled: settings.rate_limit_enabled,
            auth: RateLimiter::keyed(quota(settings.auth_rate)),
            refresh: RateLimiter::keyed(quota(settings.refresh_rate)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `ip` has used up its budget for `route`.
    pub fn check(&self, route: LimitedRoute, ip: IpAddr) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let outcome = match route {
            LimitedRoute::Refresh => self.refresh.check_key(&ip),
            other => self.auth.check_key(&(other, ip)),
        };
        outcome.map(|_| ()).map_err(|not_until| {
            metrics::counter!(names::RATELIMIT_REJECTED, "route" => route.label()).increment(1);
            not_until.wait_time_from(self.clock.now()).max(Duration::from_secs(1))
        })
    }

    /// Forgets keys whose budget has fully refilled.
    pub fn sweep(&self) {
        self.auth.retain_recent();
        self.auth.shrink_to_fit();
        self.refresh.retain_recent();
        self.refresh.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        let mut settings = Settings::load(None, Vec::new()).unwrap();
        settings.auth_rate = RateQuota { per_minute: 10, burst: 5 };
        RateLimits::new(&settings)
    }

    #[test]
    fn burst_then_refused_with_a_wait() {
        let limits = limits();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert!(limits.check(LimitedRoute::Login, ip).is_ok());
        }
        let wait = limits.check(LimitedRoute::Login, ip).unwrap_err();
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(6), "{wait:?}");
        // Other IPs and other routes have budgets of their own.
        assert!(limits.check(LimitedRoute::Login, "192.0.2.2".parse().unwrap()).is_ok());
        assert!(limits.check(LimitedRoute::Register, ip).is_ok());
    }

    #[test]
    fn off_means_never_limited() {
        let mut settings = Settings::load(None, Vec::new()).unwrap();
        settings.rate_limit_enabled = false;
        let limits = RateLimits::new(&settings);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..100).all(|_| limits.check(LimitedRoute::Login, ip).is_ok()));
    }
}
