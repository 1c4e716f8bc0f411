//! `router`: parses the command line, installs tracing and runs the chosen
//! command until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use proto::InstanceId;
use proto::token::Secret;
use roomnode::client::InternalClient;
use router::RouterConfig;
use router::ops::{self, RebalanceOptions};
use router::up::UpArgs;
use store::kv::etcd::{DEFAULT_TIMEOUT, EtcdKv};
use store::{Backend, Store};

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
}

/// Talking to the nodes' internal endpoints.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The cluster secret (the nodes' `--secret`): internal calls are
    /// authenticated with a key derived from it.
    #[arg(
        long,
        env = "ROOMROUTER_SECRET",
        hide_env_values = true,
        required = true
    )]
    secret: Option<Secret>,
    /// Moves in flight at once.
    #[arg(long, env = "ROUTER_MOVE_CONCURRENCY", default_value_t = 8)]
    concurrency: usize,
}

impl ClusterArgs {
    fn client(&self) -> InternalClient {
        InternalClient::new(self.secret.as_ref().expect("clap requires --secret"))
    }
}

#[derive(Debug, clap::Args)]
struct RebalanceArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print the plan only.
    #[arg(long)]
    dry_run: bool,
    /// Move at most this many rooms.
    #[arg(long)]
    max_moves: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct DrainArgs {
    /// The node to drain, e.g. `i3`.
    node: InstanceId,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Where the cluster's state lives.
#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// etcd endpoints, comma-separated (`http://10.0.0.1:2379,...`). Required:
    /// the embedded store is only for `router up`.
    #[arg(long, env = "ROUTER_ETCD", value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, env = "ROUTER_PREFIX", default_value = proto::keys::DEFAULT_PREFIX)]
    prefix: String,
}

impl StoreArgs {
    async fn connect(&self) -> anyhow::Result<Store> {
        let kv = EtcdKv::connect(&self.etcd, DEFAULT_TIMEOUT)
            .await
            .context("connecting to etcd")?;
        Ok(Store::new(Backend::Etcd(Box::new(kv)), &self.prefix))
    }
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    router: RouterConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    roomnode::process::init_tracing();
    match Cli::parse().command {
        Command::Serve(args) => {
            let store = args.store.connect().await?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding --listen {}", args.listen))?;
            router::run(
                listener,
                args.router,
                store,
                roomnode::process::shutdown_signal(),
            )
            .await
            .context("router")?;
        }
        Command::Up(args) => {
            let shutdown = roomnode::process::shutdown_signal();
            router::up::up(args, shutdown, |msg| println!("{msg}")).await?;
        }
        Command::Rebalance(args) => {
            let store = args.cluster.store.connect().await?;
            let opts = RebalanceOptions {
                dry_run: args.dry_run,
                max_moves: args.max_moves,
                concurrency: args.cluster.concurrency,
            };
            ops::rebalance(&store, &args.cluster.client(), opts, &mut |line| {
                println!("{line}")
            })
            .await
            .context("rebalance")?;
        }
        Command::Drain(args) => {
            let store = args.cluster.store.connect().await?;
            let client = args.cluster.client();
            ops::drain(
                &store,
                &client,
                args.node,
                args.cluster.concurrency,
                &mut |line| println!("{line}"),
            )
            .await
            .with_context(|| format!("drain {}", args.node))?;
        }
    }
    Ok(())
}
