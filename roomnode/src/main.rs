//! `roomnode`: parses flags, installs tracing, binds, runs until SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use roomnode::Config;
use store::kv::etcd::{DEFAULT_TIMEOUT, EtcdKv};
use store::{Backend, Store};

/// A roomrouter room node.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "ROOMNODE_LISTEN", default_value = "0.0.0.0:9000")]
    listen: SocketAddr,
    /// etcd endpoints, comma-separated (`http://10.0.0.1:2379,...`).
    #[arg(long, env = "ROOMNODE_ETCD", value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, env = "ROOMNODE_PREFIX", default_value = proto::keys::DEFAULT_PREFIX)]
    prefix: String,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::process::init_tracing();
    let cli = Cli::parse();
    let kv = EtcdKv::connect(&cli.etcd, DEFAULT_TIMEOUT)
        .await
        .context("connecting to etcd")?;
    let store = Store::new(Backend::Etcd(Box::new(kv)), &cli.prefix);
    let listener = service::server::bind(cli.listen)
        .with_context(|| format!("binding --listen {}", cli.listen))?;
    roomnode::run(
        listener,
        cli.config,
        store,
        service::process::shutdown_signal(),
    )
    .await
    .context("room node")?;
    Ok(())
}
