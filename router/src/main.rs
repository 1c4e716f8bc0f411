//! `router`: parses the command line, installs tracing and runs the chosen
//! command until SIGTERM or Ctrl-C. Each command's flags live beside it.

use clap::{Parser, Subcommand};
use router::generate::alb::AlbArgs;
use router::generate::file_sd::SdArgs;
use router::generate::nginx::NginxArgs;
use router::ops::{DrainArgs, RebalanceArgs};
use router::server::ServeArgs;
use router::up::UpArgs;
use service::process::shutdown_signal;

/// The roomrouter router: room placement, the room API and the data-plane
/// proxy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and the proxy against an etcd cluster.
    Serve(ServeArgs),
    /// Run a router and N room nodes in this process on an embedded store
    /// (local trial; not for multiple hosts).
    Up(UpArgs),
    /// Move every room whose HRW owner changed (after adding nodes) to that
    /// owner, live: members are told where to reconnect and lose nothing.
    Rebalance(RebalanceArgs),
    /// Take a node out of placement, move all its rooms away live, and exit
    /// 0 once it owns none (then it is safe to stop).
    Drain(DrainArgs),
    /// AWS ALB listener rules, one per instance (`/iN/room/*` → its target
    /// group), with priority `--priority-base` + N.
    AlbRules(AlbArgs),
    /// A complete nginx.conf: one location per instance, the rest to the
    /// routers.
    NginxConfig(NginxArgs),
    /// Prometheus file_sd targets of the live room nodes.
    PrometheusSd(SdArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::process::init_tracing();
    match Cli::parse().command {
        Command::Serve(args) => args.run(shutdown_signal()).await,
        Command::Up(args) => router::up::up(args, shutdown_signal(), |msg| println!("{msg}")).await,
        Command::Rebalance(args) => args.run().await,
        Command::Drain(args) => args.run().await,
        Command::AlbRules(args) => args.run().await,
        Command::NginxConfig(args) => args.run().await,
        Command::PrometheusSd(args) => args.run(shutdown_signal()).await,
    }
}
