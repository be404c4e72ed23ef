//! The `bulwark` binary: command line, configuration, and the wiring of the server crates.
//! It decides nothing about mail itself; see the crates for that.

mod admin;
mod alloc;
mod cli;
mod config;
mod http;
mod password_input;
mod serve;
mod servers;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand};
use config::{Config, ConfigError};
use std::process::ExitCode;

/// The operation failed (unknown domain, account exists, store error, port taken, …).
const EXIT_FAILURE: u8 = 1;
/// The config file is invalid (sysexits.h `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    alloc::tune();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(ConfigError::Invalid { .. }) = e.downcast_ref::<ConfigError>() {
                eprintln!("error: {e}");
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
    let config = Config::load(&cli.config)?;
    if let Command::Serve = cli.command {
        return serve::run(config);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = admin::open_store(&config)?;
        let store = store.as_ref();
        match cli.command {
            Command::Domain(cmd) => admin::domain(store, cmd).await,
            Command::Account(cmd) => admin::account(store, cmd).await,
            Command::Alias(cmd) => admin::alias(store, cmd).await,
            Command::Queue(cmd) => admin::queue(store, cmd).await,
            Command::Serve | Command::Config(_) => Ok(()),
        }
    })
}
