//! The `portcullis` command: serve, keys rotate, migrate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use portcullis::app::Application;
use portcullis::clock::{Clock, SystemClock};
use portcullis::data_dir::DataDirError;
use portcullis::settings::Settings;
use portcullis::store::cql;
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
