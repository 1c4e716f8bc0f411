//! `router up`: a router and N room nodes in one process on the embedded
//! store — the whole system on one machine with one command. The embedded
//! store lives and dies with this process; it is never the multi-host path.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use proto::InstanceId;
use proto::token::Secret;
use roomnode::config::HookArgs;
use store::kv::memory::MemoryKv;
use store::{Backend, Store};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::RouterConfig;

/// `router up` flags.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many room nodes to start.
    #[arg(long, env = "ROUTER_UP_NODES", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// Where the router listens.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The router's own settings.
    #[command(flatten)]
    pub router: RouterConfig,
    /// The application's backend, asked by every node: `roomnode`'s own
    /// hook flags (docs/hooks.md, examples/chat-backend).
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// Runs the local cluster until `shutdown` resolves; `on_ready` is told the
/// URL to open.
pub async fn up(
    args: UpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&str),
) -> anyhow::Result<()> {
    let store = Store::new(
        Backend::Memory(MemoryKv::new()),
        proto::keys::DEFAULT_PREFIX,
    );
    let mut args = args;
    // One process, one secret: private rooms work out of the box.
    let secret: Secret = match args.router.secret.clone() {
        Some(s) => s,
        None => format!("{:032x}", rand::random::<u128>())
            .parse()
            .map_err(anyhow::Error::msg)?,
    };
    args.router.secret = Some(secret.clone());
    // The operator dashboard needs an admin token: one made up for this
    // process unless given, and printed with the dashboard's URL.
    let admin_token: Secret = match args.router.admin_token.clone() {
        Some(t) => t,
        None => format!("{:032x}", rand::random::<u128>())
            .parse()
            .map_err(anyhow::Error::msg)?,
    };
    args.router.admin_token = Some(admin_token.clone());
    let stop = CancellationToken::new();
    let mut nodes = JoinSet::new();
    let mut addrs = Vec::new();
    for n in 1..=args.nodes {
        let id = InstanceId::new(n).context("instance number")?;
        let listener =
            service::server::bind(([127, 0, 0, 1], 0).into()).context("binding a room node")?;
        let addr = format!("http://{}", listener.local_addr()?);
        addrs.push(format!("{id} at {addr}"));
        let mut config = roomnode::Config::new(id, addr);
        config.secret = Some(secret.clone());
        config.hooks = args.hooks.clone();
        // Checked here, so that a bad hook flag stops `router up` at once.
        config.validate().context("the nodes' hook flags")?;
        let (store, stop) = (store.clone(), stop.clone());
        nodes.spawn(
            async move { roomnode::run(listener, config, store, stop.cancelled_owned()).await },
        );
    }
    let listener = service::server::bind(args.listen)
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let url = format!("http://{}/", listener.local_addr()?);
    on_ready(&format!(
        "roomrouter is up: open {url}\nroom nodes: {}\noperator dashboard: {url}admin (admin token: {})",
        addrs.join(", "),
        admin_token.expose()
    ));
    let router_stop = stop.clone();
    let router = crate::run(listener, args.router, store, router_stop.cancelled_owned());
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    let result = router.await;
    stop.cancel();
    while let Some(node) = nodes.join_next().await {
        node.context("room node task")?.context("room node")?;
    }
    result.context("router")
}
