//! `loadgen`: parse flags, install tracing, raise the open-file limit, run
//! the subcommand on a runtime whose threads are named (so `floor` can find
//! them in `/proc`), print the table and write the JSON.

use std::path::Path;

use anyhow::Context as _;
use clap::Parser as _;
use loadgen::config::{Cli, Command};
use loadgen::{bulk, floor, scenario, sys};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let nofile = match sys::raise_nofile() {
        Ok((before, after)) => {
            tracing::info!(before, after, "open-file limit");
            after
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            0
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(floor::RUNTIME_THREAD_NAME)
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        tokio::select! {
            r = command(cli.command, nofile) => r,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
}

async fn command(command: Command, nofile: u64) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            args.validate().map_err(anyhow::Error::msg)?;
            let report = scenario::run(&args, nofile).await?;
            print!("{}", report.table());
            write_json(args.json.as_deref(), &report)
        }
        Command::Floor(args) => {
            args.validate().map_err(anyhow::Error::msg)?;
            let report = floor::run(&args, nofile).await?;
            print!("{}", report.table());
            write_json(args.json.as_deref(), &report)
        }
        Command::BulkRooms(args) => {
            args.validate().map_err(anyhow::Error::msg)?;
            let report = bulk::run(&args).await?;
            print!("{}", report.table());
            write_json(args.json.as_deref(), &report)
        }
    }
}

fn write_json(path: Option<&Path>, report: &impl Serialize) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
