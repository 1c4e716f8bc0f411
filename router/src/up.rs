//! `router up`: a router and N room nodes in one process on the embedded
//! store — the whole system on one machine with one command. The embedded
//! store lives and dies with this process; it is never the multi-host path.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use proto::InstanceId;
use proto::token::Secret;
use roomnode::config::{HookFailure, parse_duration};
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
    /// The application's backend, asked by every node.
    #[command(flatten)]
    pub hooks: UpHooks,
}

/// The hook flags of `roomnode` (same names, variables and defaults), for
/// every node of `router up`: an example backend runs next to it
/// (docs/hooks.md, examples/chat-backend).
#[derive(Debug, Args)]
pub struct UpHooks {
    /// The application's backend, asked before each member is admitted
    /// (`http://…`; see docs/hooks.md).
    #[arg(long, env = "ROOMNODE_JOIN_HOOK")]
    pub join_hook: Option<String>,
    /// The application's backend, asked before each message is accepted.
    #[arg(long, env = "ROOMNODE_PUBLISH_HOOK")]
    pub publish_hook: Option<String>,
    /// The application's backend, sent every accepted message, join and
    /// leave in batches, at least once, in seq order per room.
    #[arg(long, env = "ROOMNODE_EVENTS_HOOK")]
    pub events_hook: Option<String>,
    /// Signs every hook request (`X-Roomrouter-Signature`); required with
    /// a hook.
    #[arg(long, env = "ROOMNODE_HOOK_SECRET", hide_env_values = true)]
    pub hook_secret: Option<Secret>,
    /// Longest wait for the join and publish hooks' answer.
    #[arg(long, env = "ROOMNODE_HOOK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub hook_timeout: Duration,
    /// What a join or publish hook that fails means: `closed` refuses the
    /// join or message, `open` lets it through.
    #[arg(long, env = "ROOMNODE_HOOK_FAILURE", value_enum, default_value_t = HookFailure::Closed)]
    pub hook_failure: HookFailure,
}

impl UpHooks {
    fn apply(&self, config: &mut roomnode::Config) {
        config.join_hook.clone_from(&self.join_hook);
        config.publish_hook.clone_from(&self.publish_hook);
        config.events_hook.clone_from(&self.events_hook);
        config.hook_secret.clone_from(&self.hook_secret);
        config.hook_timeout = self.hook_timeout;
        config.hook_failure = self.hook_failure;
    }
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
        args.hooks.apply(&mut config);
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
        "roomrouter is up: open {url}\nroom nodes: {}",
        addrs.join(", ")
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
