//! `router`: parses the command line, installs tracing and runs the chosen
//! command until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use router::RouterConfig;
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
            router::up::up(args, roomnode::process::shutdown_signal(), |msg| {
                println!("{msg}")
            })
            .await?;
        }
    }
    Ok(())
}
