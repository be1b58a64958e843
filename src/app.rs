//! Builds the application in dependency order and runs it until stopped.
//!
//! store → hashing pool → shards → token keys/signer/cache/gate → rate
//! limits → metrics → HTTP. Binding happens here, so tests ask for port 0 and
//! read the real port back. Shutdown (SIGINT/SIGTERM, or a handle's `stop`)
//! lets in-flight requests finish, then the background work (each task
//! finishes its current item; the mail queue is delivered), stops the
//! shards, writes the last API-key uses and unpublished revocations, and
//! flushes the store. Each wait is bounded by `shutdown_timeout`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::rt::task::JoinHandle;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio::sync::watch;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::account::ProjectId;
use crate::auth::{AuthParts, AuthPolicy, AuthService, RelyingParty};
use crate::clock::SharedClock;
use crate::feed::Feed;
use crate::hashing::HashingPool;
use crate::http::{self, ApiError, AppState};
use crate::mail::Mailer;
use crate::oidc;
use crate::projects::{Directory, Project, SettingsDefaults};
use crate::ratelimit::{LimitedRoute, RateLimits};
use crate::settings::Settings;
use crate::shards::{ShardPolicy, ShardRouter};
use crate::store::Store;
use crate::store::cql::{self, CqlStore};
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::store::metered::MeteredStore;
use crate::telemetry;
use crate::token::api_key::{ApiKeyHasher, KeyUsage};
use crate::token::vault::Vault;
use crate::token::{AccessGate, GateParts, KeyRing, TokenCache, TokenSigner};

/// How often expired cache entries and idle rate-limit keys are swept (the
/// store's sweep has its own setting), and the key directory re-read.
const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(30);
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(10);
/// How often the project directory is re-read whatever the feed says (a backstop).
const PROJECT_RELOAD_EVERY: Duration = Duration::from_secs(30);
/// How often, and how many at a time, the accounts of deleted projects are erased.
const PURGE_EVERY: Duration = Duration::from_secs(60);
const PURGE_BATCH: usize = 500;
/// How often `portcullis_sessions_active` is refreshed from the store.
const SESSION_COUNT_EVERY: Duration = Duration::from_secs(15);
/// How often a node writes its login tallies (the overview reads every node's).
const LOGIN_TALLY_EVERY: Duration = Duration::from_secs(10);

pub struct Application {
    port: u16,
    public_url: String,
    server: Server,
    shards: Arc<ShardRouter>,
    store: Arc<dyn Store>,
    key_usage: Arc<KeyUsage>,
    feed: Arc<Feed>,
    auth: Arc<AuthService>,
    background: Background,
    /// How long the background work may take to finish at shutdown.
    shutdown_timeout: Duration,
    /// `/metrics` on its own listener (`metrics_listen`), and its port.
    metrics_server: Option<(Server, u16)>,
}

/// A one-worker server with `/metrics` only, for an internal address.
fn metrics_server(address: std::net::SocketAddr, handle: PrometheusHandle) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(address).with_context(|| format!("binding the metrics listener {address}"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        let handle = handle.clone();
        App::new()
            .route("/metrics", web::get().to(move || std::future::ready(http::routes::health::metrics_text(&handle))))
            .default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::NotFound) }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, port))
}

/// The data directory made private (0700), and a refusal of key files
/// others can read, before anything in it is opened. Idempotent: `build`
/// runs it before opening the store, `build_on` (tests, benches) again.
pub(crate) fn guard_data_dir(settings: &Settings) -> Result<(), crate::data_dir::DataDirError> {
    crate::data_dir::private_dir(&settings.data_dir)?;
    crate::data_dir::check_key_files(&settings.data_dir)
}

pub(crate) async fn open_store(settings: &Settings, clock: &SharedClock) -> anyhow::Result<Arc<dyn Store>> {
    match settings.store.cql_target() {
        None => {
            let options = EmbeddedOptions {
                min_free: settings.store.embedded_min_free,
                cache_bytes: settings.store.embedded_cache,
            };
            let store = EmbeddedStore::open_with(&settings.data_dir, options)
                .with_context(|| format!("opening the embedded store in {}", settings.data_dir.display()))?;
            Ok(Arc::new(store))
        }
        Some(target) => {
            let session = cql::connect(&target).await?;
            let store = CqlStore::open(session, &target, Arc::clone(clock)).await.with_context(|| {
                format!("preparing statements in keyspace {} (run portcullis migrate)", target.keyspace)
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// The `default` project made if it is not there yet (first start; on a
/// cluster, the first node to start wins and the others find it), then
/// every project read into the directory.
async fn open_projects(settings: &Settings, store: &Arc<dyn Store>, clock: &SharedClock) -> anyhow::Result<Directory> {
    let default = ProjectId::default_project();
    if store.find_project(&default).await?.is_none() {
        store.create_project(Project::default_project(clock.now())).await.context("creating the default project")?;
    }
    let defaults = SettingsDefaults::of(settings);
    Directory::load(Arc::clone(store), defaults, settings.http.metrics_project_labels)
        .await
        .context("reading the projects")
}

impl Application {
    /// Builds everything on the store `settings` names and binds the
    /// listener. Must run inside an actix `System`.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        guard_data_dir(&settings)?;
        let store = open_store(&settings, &clock).await?;
        Self::build_on(settings, clock, store).await
    }

    /// Builds everything on `store` (already open) and binds the listener.
    pub async fn build_on(settings: Settings, clock: SharedClock, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        guard_data_dir(&settings)?;
        // First: metric handles taken by the parts below must reach the recorder.
        let metrics = telemetry::prometheus();
        let store: Arc<dyn Store> = MeteredStore::new(store);
        let hash = &settings.hash;
        let hashing = HashingPool::start(hash.threads, hash.queue, hash.deadline, hash.cost)
            .context("starting the hashing pool")?;
        let shard_policy = ShardPolicy {
            lockout_threshold: settings.limits.lockout_threshold,
            lockout_base: settings.limits.lockout_base,
            attempt_deadline: settings.http.request_timeout,
            lockout_max_entries: settings.limits.lockout_max_entries,
        };
        let shards = Arc::new(ShardRouter::start(
            settings.shards.count,
            settings.shards.mailbox,
            settings.http.request_timeout,
            Arc::clone(&store),
            Arc::clone(&clock),
            shard_policy,
        ));

        let http_settings = &settings.http;
        let listener =
            TcpListener::bind(http_settings.listen).with_context(|| format!("binding {}", http_settings.listen))?;
        let port = listener.local_addr()?.port();
        let public_url = http_settings.public_url.clone().unwrap_or_else(|| format!("http://localhost:{port}"));
        let issuer = settings.token.issuer.clone().unwrap_or_else(|| public_url.clone());

        let keys = Arc::new(KeyRing::open(&settings.data_dir, clock.now()).context("loading signing keys")?);
        let signer = Arc::new(TokenSigner::new(Arc::clone(&keys), issuer, settings.max_access_ttl()));
        let cache = Arc::new(TokenCache::new(settings.token.cache_capacity));
        let key_hasher = ApiKeyHasher::open(&settings.data_dir).context("loading the API-key hashing key")?;
        let key_usage = Arc::new(KeyUsage::default());
        let projects = Arc::new(open_projects(&settings, &store, &clock).await?);
        telemetry::names::initialise(&telemetry::names::KnownLabels {
            backend: store.backend(),
            store_ops: MeteredStore::OPS,
            ratelimit_routes: LimitedRoute::LABELS,
            login_outcomes: crate::auth::LOGIN_OUTCOMES,
            mail_outcomes: crate::mail::OUTCOMES,
            projects: projects.metric_labels(),
        });
        let gate = Arc::new(AccessGate::new(GateParts {
            signer: Arc::clone(&signer),
            cache: Arc::clone(&cache),
            store: Arc::clone(&store),
            clock: Arc::clone(&clock),
            keys: key_hasher.clone(),
            usage: Arc::clone(&key_usage),
            projects: Arc::clone(&projects),
        }));
        let feed =
            Arc::new(Feed::new(Arc::clone(&store), Arc::clone(&gate), Arc::clone(&projects), Arc::clone(&clock)));
        let vault = Arc::new(Vault::open(&settings.data_dir).context("loading the secrets key")?);
        let relying_party = RelyingParty::new(&public_url, &vault).context("setting up passkeys")?;
        let mut background = Background::new();
        let (mailer, mail_workers) =
            Mailer::start(&settings.mail, background.stop_signal()).context("setting up mail")?;
        background.tasks.extend(mail_workers);
        let policy = AuthPolicy {
            project_name: settings.flows.project_name.clone(),
            audit_retention: settings.store.audit_retention,
        };
        let auth = Arc::new(AuthService::new(AuthParts {
            store: Arc::clone(&store),
            hashing,
            shards: Arc::clone(&shards),
            signer: Arc::clone(&signer),
            key_hasher,
            feed: Arc::clone(&feed),
            vault,
            mailer,
            clock: Arc::clone(&clock),
            policy,
            projects: Arc::clone(&projects),
            relying_party,
            oidc: oidc::Verifier::new(settings.flows.oidc_timeout, Arc::clone(&clock)).context("setting up OIDC")?,
        }));
        let limits = Arc::new(RateLimits::new(&settings.limits));

        let state = web::Data::new(AppState {
            auth: Arc::clone(&auth),
            gate,
            limits: Arc::clone(&limits),
            signer,
            store: Arc::clone(&store),
            metrics: metrics.clone(),
            metrics_on_main: http_settings.metrics_listen.is_none(),
            clock: Arc::clone(&clock),
            trusted_proxies: http_settings.trusted_proxies.clone(),
            api_key_headers: http_settings
                .api_key_headers
                .iter()
                .filter_map(|name| actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).ok())
                .collect(),
            projects: Arc::clone(&projects),
            request_timeout: http_settings.request_timeout,
            client_body_timeout: http_settings.client_body_timeout,
            request_ids: http::middleware::RequestIds::new(),
            http_metrics: http::middleware::HttpMetrics::default(),
            pages: Arc::new(http::pages::Pages::build()?),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(http::middleware::BodyDeadline)
                .wrap(http::middleware::Observe)
                .configure(http::configure)
                .default_service(web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::NotFound) }))
        })
        .workers(http_settings.workers)
        .shutdown_timeout(http_settings.shutdown_timeout.as_secs())
        .client_request_timeout(http_settings.client_header_timeout)
        .max_connections(http_settings.max_connections.div_ceil(http_settings.workers))
        .listen(listener)?
        .run();
        let metrics_server = match http_settings.metrics_listen {
            Some(address) => Some(metrics_server(address, metrics)?),
            None => None,
        };

        // The first count off the start-up path: on the embedded store it
        // reads every session.
        actix_web::rt::spawn(count_sessions(Arc::clone(&store), clock.now()));
        background.every(CACHE_SWEEP_EVERY, {
            let (cache, limits, clock) = (Arc::clone(&cache), Arc::clone(&limits), Arc::clone(&clock));
            move || {
                cache.sweep(clock.now());
                limits.sweep();
                async {}
            }
        });
        background.every(PROJECT_RELOAD_EVERY, {
            let projects = Arc::clone(&projects);
            move || {
                let projects = Arc::clone(&projects);
                async move {
                    if let Err(e) = projects.reload().await {
                        tracing::warn!(error = %e, "reloading the project directory failed; keeping the loaded one");
                    }
                }
            }
        });
        background.every(KEY_RELOAD_EVERY, move || {
            if let Err(e) = keys.reload() {
                tracing::error!(error = %e, "reloading signing keys failed; keeping the loaded ones");
            }
            async {}
        });
        background.every(settings.store.feed_poll, {
            let feed = Arc::clone(&feed);
            move || {
                let feed = Arc::clone(&feed);
                async move { feed.poll().await }
            }
        });
        background.every(settings.token.key_usage_flush, {
            let (usage, store) = (Arc::clone(&key_usage), Arc::clone(&store));
            move || {
                let (usage, store) = (Arc::clone(&usage), Arc::clone(&store));
                async move {
                    if let Err(e) = usage.flush(&store).await {
                        tracing::warn!(error = %e, "writing API-key last use failed; will retry");
                    }
                }
            }
        });
        background.every(LOGIN_TALLY_EVERY, {
            let auth = Arc::clone(&auth);
            move || {
                let auth = Arc::clone(&auth);
                async move { auth.flush_login_tallies().await }
            }
        });
        background.every(SESSION_COUNT_EVERY, {
            let (store, clock) = (Arc::clone(&store), Arc::clone(&clock));
            move || count_sessions(Arc::clone(&store), clock.now())
        });
        background.every(settings.store.sweep_interval, {
            let (store, clock) = (Arc::clone(&store), Arc::clone(&clock));
            move || {
                let (store, now) = (Arc::clone(&store), clock.now());
                async move {
                    match store.sweep_expired(now).await {
                        Ok(removed) => tracing::debug!(removed, "expired sessions swept"),
                        Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
                    }
                }
            }
        });
        background.every(PURGE_EVERY, {
            let auth = Arc::clone(&auth);
            move || {
                let auth = Arc::clone(&auth);
                async move {
                    if let Err(e) = auth.purge_deleted_projects(PURGE_BATCH).await {
                        tracing::warn!(error = %e, "erasing the accounts of deleted projects failed; retried");
                    }
                }
            }
        });
        tracing::info!(port, public_url = %public_url, store = store.backend(), "portcullis listening");
        let shutdown_timeout = http_settings.shutdown_timeout;
        Ok(Application {
            port,
            public_url,
            server,
            shards,
            store,
            key_usage,
            feed,
            auth,
            background,
            shutdown_timeout,
            metrics_server,
        })
    }

    /// The sign-in flows, for callers in the same process (the CLI, tests).
    pub fn auth(&self) -> Arc<AuthService> {
        Arc::clone(&self.auth)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until a signal or `handle().stop()`, then shuts down in order.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            server,
            shards,
            store,
            key_usage,
            feed,
            auth,
            background,
            shutdown_timeout,
            metrics_server,
            ..
        } = self;
        let metrics_handle = metrics_server.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let served = server.await;
        if let Some(handle) = metrics_handle {
            handle.stop(true).await;
        }
        // No request is running now: let the background work finish what it
        // holds (every queued mail included), then write what is left.
        background.drain(shutdown_timeout).await;
        shards.stop();
        if let Err(e) = key_usage.flush(&store).await {
            tracing::warn!(error = %e, "API-key last use not written at shutdown");
        }
        auth.flush_login_tallies().await;
        feed.publish_pending().await;
        store.flush().await.context("flushing the store")?;
        tracing::info!("portcullis stopped");
        Ok(served?)
    }
}

/// Sets `portcullis_sessions_active` from the store.
async fn count_sessions(store: Arc<dyn Store>, now: crate::clock::Timestamp) {
    match store.count_active_sessions(now).await {
        Ok(live) => metrics::gauge!(telemetry::names::SESSIONS_ACTIVE).set(live as f64),
        Err(e) => tracing::warn!(error = %e, "counting active sessions failed"),
    }
}

/// The background work of a node (timers and the mail workers), stopped
/// together: told to stop, each finishes the item it is on (a feed poll, a
/// key-usage write, a sweep; the mail workers, every queued message) and
/// ends. The wait is bounded; whatever is still running then is aborted.
struct Background {
    /// `true` once shutdown has begun; every task watches it.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    fn new() -> Self {
        Background { stop: watch::Sender::new(false), tasks: Vec::new() }
    }

    /// What a task watches to learn that shutdown has begun.
    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs `tick` every `period` on the current arbiter until shutdown; a
    /// tick under way when it begins runs to its end.
    fn every<F, Fut>(&mut self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let mut stop = self.stop_signal();
        self.tasks.push(actix_web::rt::spawn(async move {
            let mut interval = actix_web::rt::time::interval(period);
            // A slow tick (a store timeout) delays the next ones rather than
            // bursting to catch up.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
                tick().await;
            }
        }));
    }

    /// Tells every task to stop and waits for them, at most `limit`.
    async fn drain(self, limit: Duration) {
        self.stop.send_replace(true);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let finished = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(limit, finished).await.is_err() {
            tracing::warn!(seconds = limit.as_secs(), "background work still running at the shutdown timeout; stopped");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }
}
