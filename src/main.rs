//! The `portcullis` command: serve, keys rotate, migrate, admin create, store-stats.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::app::Application;
use portcullis::clock::{Clock, SystemClock};
use portcullis::data_dir::DataDirError;
use portcullis::hashing::Password;
use portcullis::settings::Settings;
use portcullis::store::cql;
use portcullis::store::embedded::EmbeddedStore;
use portcullis::store::embedded::stats::StoreStats;
use portcullis::telemetry;
use portcullis::token::KeyRing;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "High-throughput authentication gateway")]
struct Cli {
    /// TOML settings file; PORTCULLIS_* environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Apply pending CQL migrations before serving.
        #[arg(long)]
        migrate: bool,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Apply migrations/ to the CQL store.
    Migrate,
    /// Manage admins from the command line.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Show what the embedded store's file holds, table by table (while the
    /// gateway is stopped).
    StoreStats,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make the first superadmin of an install that has none (on the
    /// embedded store, while the gateway is stopped).
    Create {
        /// The superadmin's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input; without
        /// it, the account signs in by email code and sets one.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a new signing key; older keys keep verifying until their tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let settings = match Settings::load(cli.config.as_deref(), env) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(2);
        }
    };
    let _log_writer = telemetry::init_logging(&settings.log);
    let outcome = match cli.command {
        Command::Serve { migrate } => serve(settings, migrate),
        Command::Keys { action: KeysAction::Rotate } => rotate_keys(&settings),
        Command::Migrate => migrate_only(&settings),
        Command::Admin { action: AdminAction::Create { email, password_stdin } } => {
            create_admin(&settings, &email, password_stdin)
        }
        Command::StoreStats => store_stats(&settings),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Like a bad setting: the operator must change something before a start can work.
        Err(e) if e.chain().any(|cause| cause.is::<DataDirError>()) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings, migrate: bool) -> anyhow::Result<()> {
    if migrate {
        migrate_only(&settings)?;
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings, Arc::new(SystemClock)).await?;
        app.run_until_stopped().await
    })
}

fn rotate_keys(settings: &Settings) -> anyhow::Result<()> {
    let kid = KeyRing::rotate(&settings.data_dir, SystemClock.now(), settings.max_access_ttl())?;
    println!("new signing key {kid}; a running gateway picks it up within seconds");
    Ok(())
}

fn create_admin(settings: &Settings, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Some(Password::new(line.trim_end_matches(['\n', '\r']).to_owned()))
    } else {
        None
    };
    let with_password = password.is_some();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let id = runtime.block_on(portcullis::bootstrap::create_superadmin(settings, email, password))?;
    println!("superadmin {id} created for {email}");
    if !with_password {
        println!(
            "it has no password: sign in with an email code (otp/send, purpose login) and set one with me/set-initial-password"
        );
    }
    Ok(())
}

fn store_stats(settings: &Settings) -> anyhow::Result<()> {
    if settings.store.cql_target().is_some() {
        anyhow::bail!("store-stats reads the embedded store; for CQL, ask the database (nodetool tablestats)");
    }
    let file = settings.data_dir.join("portcullis.redb");
    if !file.exists() {
        anyhow::bail!("no embedded store at {}", file.display());
    }
    let stats = EmbeddedStore::open(&settings.data_dir)
        .and_then(|store| store.stats())
        .context("reading the embedded store (is a gateway running on it?)")?;
    print!("{}", stats_table(&stats));
    Ok(())
}

fn stats_table(stats: &StoreStats) -> String {
    let mut out = String::from("table                     rows       stored B   B/row     pages B  height\n");
    for t in stats.tables.iter().filter(|t| t.rows > 0) {
        let per_row = t.stored_bytes / t.rows.max(1);
        out += &format!(
            "{:<20} {:>9} {:>14} {:>7} {:>11} {:>7}\n",
            t.name, t.rows, t.stored_bytes, per_row, t.page_bytes, t.height
        );
    }
    let stored: u64 = stats.tables.iter().map(|t| t.stored_bytes).sum();
    out += &format!(
        "all tables: {stored} B stored in {} B of pages; {} B allocated, file {} B\n",
        stats.tables.iter().map(|t| t.page_bytes).sum::<u64>(),
        stats.allocated_bytes,
        stats.file_bytes
    );
    out
}

fn migrate_only(settings: &Settings) -> anyhow::Result<()> {
    let Some(target) = settings.store.cql_target() else {
        println!("the embedded store needs no migrations");
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let applied = runtime.block_on(async {
        let session = cql::connect(&target).await?;
        cql::migrate::apply(&session, &target).await
    })?;
    println!("keyspace {}: applied {:?}, already applied {:?}", target.keyspace, applied.applied, applied.already);
    Ok(())
}
