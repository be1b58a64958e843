//! Per-client-IP rate limits (governor) on the sign-in routes.
//!
//! Owns one keyed limiter per route kind, and one per project whose quota
//! is its own (its settings' `rate_limit_per_minute` and `_burst`).
//! Budgets are per project either way: projects on the node's quota share
//! its limiter, keyed by project too.
//! `/introspect`, `/verify` and
//! `/metrics` are never limited here. The per-account failed-login lock is
//! not here: it is state of the account's shard (`shards::lockout`).
//! Memory is bounded twice: `sweep` forgets keys whose quota has refilled,
//! and each limiter holds at most about `rate_limit_max_keys` keys (see
//! `Bounded`), however many addresses arrive within one sweep.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};

use crate::account::ProjectId;
use crate::settings::{LimitSettings, RateQuota};
use crate::telemetry::names;

/// The route kinds that are limited, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitedRoute {
    Login,
    Register,
    Refresh,
    /// `otp/send` and `otp/login` (and their aliases), `register/verify`.
    Otp,
    /// `reset-password`.
    Reset,
    /// `2fa/verify`.
    TwoFactor,
    /// Signed-in routes that check a secret: `2fa/enable`, `2fa/disable`,
    /// `2fa/backup-codes/regenerate`, `PUT me/password`.
    Secret,
}

impl LimitedRoute {
    /// Every route's `route` label in `portcullis_ratelimit_rejected_total`
    /// (a new route joins this list).
    pub const LABELS: &'static [&'static str] = &[
        LimitedRoute::Login.label(),
        LimitedRoute::Register.label(),
        LimitedRoute::Refresh.label(),
        LimitedRoute::Otp.label(),
        LimitedRoute::Reset.label(),
        LimitedRoute::TwoFactor.label(),
        LimitedRoute::Secret.label(),
    ];

    const fn label(self) -> &'static str {
        match self {
            LimitedRoute::Login => "login",
            LimitedRoute::Register => "register",
            LimitedRoute::Refresh => "refresh",
            LimitedRoute::Otp => "otp",
            LimitedRoute::Reset => "reset",
            LimitedRoute::TwoFactor => "2fa",
            LimitedRoute::Secret => "secret",
        }
    }
}

type AuthLimiter = Bounded<(LimitedRoute, IpAddr)>;

pub struct RateLimits {
    enabled: bool,
    /// The node's quota for the sign-in routes, and its limiter.
    auth_quota: RateQuota,
    auth: Bounded<(ProjectId, LimitedRoute, IpAddr)>,
    /// Projects with a quota of their own: the quota and its limiter
    /// (replaced when the quota changes).
    projects: DashMap<ProjectId, (RateQuota, Arc<AuthLimiter>)>,
    refresh: Bounded<IpAddr>,
    max_keys: usize,
    clock: DefaultClock,
}

/// How many checks pass between two counts of a limiter's keys: the count
/// walks the map's shards, so it is not paid on every request.
const COUNT_EVERY: usize = 1024;

/// A keyed limiter holding at most about `max_keys` keys (plus the keys of
/// `COUNT_EVERY` checks). When a count finds it full, it forgets the keys
/// whose budget has refilled; if it is still full, it starts over empty,
/// every client's budget full again. Refusing new clients instead would let
/// anyone with enough addresses lock everybody out; the per-account lock
/// (`shards::lockout`) still guards the accounts meanwhile.
struct Bounded<K: Hash + Eq + Clone> {
    quota: Quota,
    current: ArcSwap<DefaultKeyedRateLimiter<K>>,
    checks: AtomicUsize,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(quota: Quota, max_keys: usize) -> Self {
        Bounded {
            quota,
            current: ArcSwap::from_pointee(RateLimiter::keyed(quota)),
            checks: AtomicUsize::new(0),
            max_keys: max_keys.max(1),
        }
    }

    fn check_key(&self, key: &K) -> Result<(), NotUntil<QuantaInstant>> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % COUNT_EVERY == COUNT_EVERY - 1 {
            self.bound();
        }
        self.current.load().check_key(key)
    }

    fn bound(&self) {
        let limiter = self.current.load();
        if limiter.len() < self.max_keys {
            return;
        }
        limiter.retain_recent();
        if limiter.len() >= self.max_keys {
            tracing::warn!(
                keys = limiter.len(),
                max_keys = self.max_keys,
                "rate limiter full of clients still inside their budgets; starting it over"
            );
            self.current.store(Arc::new(RateLimiter::keyed(self.quota)));
        }
    }

    fn sweep(&self) {
        let limiter = self.current.load();
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.load().len()
    }
}

/// The key a client is limited by: an IPv4 address as is, an IPv6 address by
/// its /64 (one host is routinely given a whole /64, so limiting single
/// addresses would let it rotate through 2^64 budgets).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

fn quota(q: RateQuota) -> Quota {
    let per_minute = NonZeroU32::new(q.per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl RateLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        RateLimits {
            enabled: settings.rate_limit_enabled,
            auth_quota: settings.auth_rate,
            auth: Bounded::new(quota(settings.auth_rate), settings.max_keys),
            projects: DashMap::new(),
            refresh: Bounded::new(quota(settings.refresh_rate), settings.max_keys),
            max_keys: settings.max_keys,
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `ip` has used up its budget for `route` in
    /// `project`, whose sign-in routes allow `project_quota`.
    pub fn check(
        &self,
        project: &ProjectId,
        project_quota: RateQuota,
        route: LimitedRoute,
        ip: IpAddr,
    ) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let ip = client_key(ip);
        let outcome = match route {
            LimitedRoute::Refresh => self.refresh.check_key(&ip),
            other if project_quota == self.auth_quota => self.auth.check_key(&(project.clone(), other, ip)),
            other => self.project_limiter(project, project_quota).check_key(&(other, ip)),
        };
        outcome.map(|_| ()).map_err(|not_until| {
            metrics::counter!(names::RATELIMIT_REJECTED, "route" => route.label()).increment(1);
            not_until.wait_time_from(self.clock.now()).max(Duration::from_secs(1))
        })
    }

    /// The limiter of a project with a quota of its own.
    fn project_limiter(&self, project: &ProjectId, wanted: RateQuota) -> Arc<AuthLimiter> {
        if let Some(entry) = self.projects.get(project)
            && entry.0 == wanted
        {
            return Arc::clone(&entry.1);
        }
        let limiter = Arc::new(Bounded::new(quota(wanted), self.max_keys));
        self.projects.insert(project.clone(), (wanted, Arc::clone(&limiter)));
        limiter
    }

    /// Forgets keys whose budget has fully refilled.
    pub fn sweep(&self) {
        for entry in &self.projects {
            entry.1.sweep();
        }
        self.auth.sweep();
        self.refresh.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: RateQuota = RateQuota { per_minute: 10, burst: 5 };

    fn limits() -> RateLimits {
        let mut settings = crate::settings::Settings::load(None, Vec::new()).unwrap().limits;
        settings.auth_rate = NODE;
        RateLimits::new(&settings)
    }

    /// One request of `ip` to `route` of the default project, on the node's quota.
    fn check(limits: &RateLimits, route: LimitedRoute, ip: &str) -> Result<(), Duration> {
        limits.check(&ProjectId::default_project(), NODE, route, ip.parse().unwrap())
    }

    #[test]
    fn burst_then_refused_with_a_wait() {
        let limits = limits();
        for _ in 0..5 {
            assert!(check(&limits, LimitedRoute::Login, "192.0.2.1").is_ok());
        }
        let wait = check(&limits, LimitedRoute::Login, "192.0.2.1").unwrap_err();
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(6), "{wait:?}");
        // Other IPs and other routes have budgets of their own.
        assert!(check(&limits, LimitedRoute::Login, "192.0.2.2").is_ok());
        assert!(check(&limits, LimitedRoute::Register, "192.0.2.1").is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limits = limits();
        for host in 1..=5 {
            assert!(check(&limits, LimitedRoute::Login, &format!("2001:db8:1:2::{host}")).is_ok());
        }
        assert!(check(&limits, LimitedRoute::Login, "2001:db8:1:2:ffff::9").is_err());
        assert!(check(&limits, LimitedRoute::Login, "2001:db8:1:3::1").is_ok());
        // An IPv4-mapped address counts as its IPv4 address.
        assert!(check(&limits, LimitedRoute::Register, "::ffff:192.0.2.9").is_ok());
        assert_eq!(client_key("::ffff:192.0.2.9".parse().unwrap()), "192.0.2.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_limiter_holds_at_most_about_max_keys() {
        let bounded = Bounded::<u32>::new(quota(NODE), 1000);
        assert!((0..5).all(|_| bounded.check_key(&0).is_ok()));
        assert!(bounded.check_key(&0).is_err(), "client 0 spent its burst");
        for key in 1..20_000 {
            assert!(bounded.check_key(&key).is_ok(), "a new client has its budget");
            assert!(bounded.len() <= 1000 + COUNT_EVERY, "{} keys after {key}", bounded.len());
        }
        // Started over: client 0's budget (30 s from refilled) is full again.
        assert!(bounded.check_key(&0).is_ok());
    }

    #[test]
    fn off_means_never_limited() {
        let mut settings = crate::settings::Settings::load(None, Vec::new()).unwrap().limits;
        settings.rate_limit_enabled = false;
        let limits = RateLimits::new(&settings);
        assert!((0..100).all(|_| check(&limits, LimitedRoute::Login, "192.0.2.1").is_ok()));
    }

    #[test]
    fn a_project_with_a_quota_of_its_own_has_its_own_budget() {
        let limits = limits();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let tight = RateQuota { per_minute: 2, burst: 2 };
        let project = ProjectId("tight".into());
        assert!((0..2).all(|_| limits.check(&project, tight, LimitedRoute::Login, ip).is_ok()));
        assert!(limits.check(&project, tight, LimitedRoute::Login, ip).is_err());
        // Another project's budget is untouched.
        assert!((0..5).all(|_| limits.check(&ProjectId::default_project(), NODE, LimitedRoute::Login, ip).is_ok()));
        // A changed quota starts afresh.
        let looser = RateQuota { per_minute: 60, burst: 3 };
        assert!((0..3).all(|_| limits.check(&project, looser, LimitedRoute::Login, ip).is_ok()));
    }
}
