//! The `bulwark` binary: command line, configuration, and the wiring of the server crates.
//! It decides nothing about mail itself; see the crates for that.

mod admin;
mod alloc;
mod cli;
mod config;
mod control;
mod dav_cli;
mod http;
mod migrate_cli;
mod node;
mod password_input;
mod private_files;
mod reload;
mod serve;
mod servers;
mod trust_cli;

use clap::Parser;
use cli::{AcmeCommand, AuthCommand, Cli, Command, ConfigCommand, NodeCommand};
use config::{Config, ConfigError};
use std::process::ExitCode;

/// The operation failed (unknown domain, account exists, store error, port taken, …).
const EXIT_FAILURE: u8 = 1;
/// The config file is invalid (sysexits.h `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    alloc::tune();
    // Issue 13 item 2: everything the server writes (database, keys, caches) is owner-only.
    private_files::restrict_umask();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(ConfigError::Invalid { .. }) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Some(refused) = e.downcast_ref::<control::ReloadRefused>() {
                eprintln!("error: {refused}");
                return ExitCode::from(EXIT_CONFIG);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        let path = file.clone().unwrap_or_else(|| cli.config.clone());
        Config::load(&path)?;
        println!("ok");
        return Ok(());
    }
    if let Command::Config(ConfigCommand::Reference) = &cli.command {
        print!("{}", config::schema::reference_markdown());
        return Ok(());
    }
    if let Command::Drill(args) = &cli.command {
        // Drills start their own PostgreSQL and nodes; they read no config file.
        return match bulwark_drill::run(args.clone())? {
            true => Ok(()),
            false => Err(anyhow::anyhow!(
                "a drill failed: lost or duplicated mail, a forced re-login, or a failed step"
            )),
        };
    }
    if let Command::Config(ConfigCommand::Reload) = &cli.command {
        return control::reload_running(&cli.config);
    }
    let mut config = Config::load(&cli.config)?;
    if let Some(id) = &cli.node_id {
        config::values::check_node_id(id).map_err(|why| anyhow::anyhow!("--node-id: {why}"))?;
        config.node_id = id.clone();
    }
    match cli.command {
        Command::Serve => return serve::run(config, cli.node_id),
        Command::Node(NodeCommand::Drain { timeout }) => {
            return control::drain_running(&config, timeout);
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Command::Status = cli.command {
            return control::status(&config).await;
        }
        let store = admin::open_store(&config).await?;
        let store = store.as_ref();
        match cli.command {
            Command::Domain(cmd) => admin::domain(store, &config, cmd).await,
            Command::Account(cmd) => admin::account(store, &config, cmd).await,
            Command::Alias(cmd) => admin::alias(store, cmd).await,
            Command::Queue(cmd) => admin::queue(store, cmd).await,
            Command::Auth(AuthCommand::RotateKey) => admin::rotate_key(store).await,
            Command::Import(args) => migrate_cli::import(store, &config, args).await,
            Command::Export(args) => migrate_cli::export(store, args).await,
            Command::Migrate(args) => migrate_cli::migrate(store, &config, args).await,
            Command::Calendar(cmd) => dav_cli::calendar(store, cmd).await,
            Command::Contacts(cmd) => dav_cli::contacts(store, cmd).await,
            Command::Serve | Command::Config(_) | Command::Node(_) | Command::Status => Ok(()),
            Command::Drill(_) => Ok(()),
            Command::Acme(AcmeCommand::Status) => admin::acme_status(store, &config).await,
        }
    })
}
