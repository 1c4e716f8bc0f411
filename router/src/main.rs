//! `router`: parses the command line, installs tracing and runs the chosen
//! command until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use proto::InstanceId;
use proto::token::Secret;
use router::RouterConfig;
use router::generate::alb::{self, AlbSettings};
use router::generate::file_sd;
use router::generate::nginx::{self, NginxSettings};
use router::ops::{self, RebalanceOptions};
use router::up::UpArgs;
use service::client::InternalClient;
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
    /// AWS ALB listener rules, one per instance (`/iN/room/*` → its target
    /// group), with priority `--priority-base` + N.
    AlbRules(AlbArgs),
    /// A complete nginx.conf: one location per instance, the rest to the
    /// routers.
    NginxConfig(NginxArgs),
    /// Prometheus file_sd targets of the live room nodes.
    PrometheusSd(SdArgs),
}

#[derive(Debug, clap::Args)]
struct AlbArgs {
    /// The instances to route, e.g. `i1,i2,i3`; without it, the live nodes
    /// registered in etcd (`--etcd`).
    #[arg(long, value_delimiter = ',', required_unless_present = "etcd")]
    instances: Vec<InstanceId>,
    /// etcd endpoints to read the live nodes from.
    #[arg(long, env = "ROUTER_ETCD", value_delimiter = ',')]
    etcd: Vec<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, env = "ROUTER_PREFIX", default_value = proto::keys::DEFAULT_PREFIX)]
    prefix: String,
    /// The ALB listener's ARN.
    #[arg(long, env = "ROUTER_ALB_LISTENER_ARN")]
    listener_arn: String,
    /// Target group ARN (or name) of each instance, with `{id}` (`i3`) or
    /// `{n}` (`3`) in it, e.g. `arn:aws:…:targetgroup/roomnode-{id}/…`.
    #[arg(long, env = "ROUTER_ALB_TARGET_GROUP")]
    target_group: String,
    /// Instance N's rule gets priority base + N (stable as instances change).
    #[arg(long, default_value_t = alb::DEFAULT_PRIORITY_BASE)]
    priority_base: u32,
    /// `cli-json`: one `aws elbv2 create-rule --cli-input-json` document per
    /// line; `cloudformation`: a template of ListenerRule resources; `plan`:
    /// what to create, modify and delete against `--current`.
    #[arg(long, value_enum, default_value = "cli-json")]
    format: AlbFormat,
    /// `aws elbv2 describe-rules --listener-arn …` output, for `--format plan`.
    #[arg(long, required_if_eq("format", "plan"))]
    current: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AlbFormat {
    CliJson,
    Cloudformation,
    Plan,
}

#[derive(Debug, clap::Args)]
struct NginxArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A router, `host:port` (repeat for each); the default location.
    #[arg(long = "router", required = true)]
    routers: Vec<String>,
    /// nginx's `listen`.
    #[arg(long, default_value = "80")]
    listen: String,
    /// Put nginx's pid, logs and temp files here (to run it without root).
    #[arg(long)]
    runtime_dir: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SdArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Write to this file (atomically) instead of printing.
    #[arg(long, required_if_eq("watch", "true"))]
    out: Option<std::path::PathBuf>,
    /// Keep `--out` current as nodes come and go, until stopped.
    #[arg(long)]
    watch: bool,
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
    /// Handoff requests in flight at once, each a batch of up to 42 rooms
    /// with one owner and one target.
    #[arg(long, env = "ROUTER_MOVE_CONCURRENCY", default_value_t = router::rebalance::DEFAULT_CONCURRENCY)]
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
    /// Undo a drain: the node takes new rooms again.
    #[arg(long)]
    cancel: bool,
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
    service::process::init_tracing();
    match Cli::parse().command {
        Command::Serve(args) => {
            let store = args.store.connect().await?;
            let listener = service::server::bind(args.listen)
                .with_context(|| format!("binding --listen {}", args.listen))?;
            router::run(
                listener,
                args.router,
                store,
                service::process::shutdown_signal(),
            )
            .await
            .context("router")?;
        }
        Command::Up(args) => {
            let shutdown = service::process::shutdown_signal();
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
        Command::AlbRules(args) => alb_rules(args).await?,
        Command::NginxConfig(args) => {
            let store = args.store.connect().await?;
            let nodes = store.nodes().await.context("reading the nodes")?;
            let settings = NginxSettings {
                listen: args.listen,
                routers: args.routers,
                runtime_dir: args.runtime_dir,
            };
            print!("{}", nginx::config(&settings, &nodes)?);
        }
        Command::PrometheusSd(args) => {
            let store = args.store.connect().await?;
            match (args.watch, args.out) {
                (true, Some(out)) => {
                    file_sd::watch(store, &out, service::process::shutdown_signal()).await?
                }
                (_, out) => {
                    let nodes = store.nodes().await.context("reading the nodes")?;
                    let json = serde_json::to_string_pretty(&file_sd::targets(&nodes))?;
                    match out {
                        Some(path) => file_sd::write_atomically(&path, &json)?,
                        None => println!("{json}"),
                    }
                }
            }
        }
        Command::Drain(args) => {
            let store = args.cluster.store.connect().await?;
            let client = args.cluster.client();
            if args.cancel {
                ops::undrain(&store, &client, args.node, &mut |line| println!("{line}")).await?;
                return Ok(());
            }
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

async fn alb_rules(args: AlbArgs) -> anyhow::Result<()> {
    let instances = if args.instances.is_empty() {
        let store = StoreArgs {
            etcd: args.etcd,
            prefix: args.prefix,
        }
        .connect()
        .await?;
        store
            .nodes()
            .await
            .context("reading the nodes")?
            .into_iter()
            .map(|n| n.id)
            .collect()
    } else {
        args.instances
    };
    if instances.len() > alb::RULES_PER_ALB {
        eprintln!(
            "warning: {} rules exceed the quota of {} rules per load balancer; see deploy/aws/README.md",
            instances.len(),
            alb::RULES_PER_ALB
        );
    }
    let settings = AlbSettings {
        listener_arn: args.listener_arn,
        target_group: args.target_group,
        priority_base: args.priority_base,
    };
    let rules = alb::rules(&settings, &instances)?;
    match args.format {
        AlbFormat::CliJson => {
            for r in &rules {
                println!("{}", alb::cli_input(&settings.listener_arn, r));
            }
        }
        AlbFormat::Cloudformation => {
            println!(
                "{}",
                serde_json::to_string_pretty(&alb::cloudformation(&settings.listener_arn, &rules))?
            );
        }
        AlbFormat::Plan => {
            let path = args
                .current
                .expect("clap requires --current with --format plan");
            let current = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let plan = alb::plan(&settings.listener_arn, &rules, &current)?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
            eprintln!(
                "plan: {} to create, {} to modify, {} to delete, {} unchanged",
                plan.create.len(),
                plan.modify.len(),
                plan.delete.len(),
                plan.unchanged
            );
        }
    }
    Ok(())
}
