//! The `rs-cms` binary: loads settings, starts logging, and runs one of the
//! subcommands. Everything else lives in the library.

use clap::{Parser, Subcommand};
use rs_cms::config::Settings;
use rs_cms::startup::{self, Application};

#[derive(Parser)]
#[command(name = "rs-cms", version, about = "Multi-merchant mall with a flash-sale engine")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create (or promote) an administrator account and exit.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read from RSCMS_ADMIN_PASSWORD when not given.
        #[arg(long, env = "RSCMS_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Load a few demo shops, categories and listed products, and exit.
    DemoData,
}

fn main() {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: invalid configuration: {err}");
            std::process::exit(2);
        }
    };
    rs_cms::telemetry::init(&settings.log);
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => Application::build(settings).await?.run_until_stopped().await,
            Command::Migrate => startup::migrate_only(&settings).await,
            Command::CreateAdmin { username, email, password } => {
                startup::create_admin(&settings, &username, &email, &password).await
            }
            Command::DemoData => startup::load_demo_data(&settings).await,
        }
    });
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
