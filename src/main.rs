//! The `portcullis` command: serve, keys rotate, migrate, admin create.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use portcullis::app::Application;
use portcullis::clock::{Clock, SystemClock};
use portcullis::data_dir::DataDirError;
use portcullis::hashing::Password;
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
    /// Manage admins from the command line.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
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
