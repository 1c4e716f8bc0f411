//! The router's configuration, every field a flag with an environment
//! variable: [`RouterConfig`], how a router serves, checked once at start;
//! [`StoreArgs`], where the cluster's state lives, for every command that
//! reads it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use proto::token::Secret;
use store::kv::etcd::{DEFAULT_TIMEOUT, EtcdKv};
use store::{Backend, Store};

/// Default lifetime of a join token, seconds.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
/// Longest lifetime of a join token, seconds (a week).
pub const MAX_TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;
/// Default bound on receiving a request's body, seconds: the API's bodies
/// are a few hundred bytes of JSON.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;

/// How a router serves.
#[derive(Debug, Clone, Args)]
pub struct RouterConfig {
    /// The address clients use, e.g. `https://chat.example.com` (the ALB's);
    /// `ws_url`s are built from it. Without it, from the request's `Host`.
    #[arg(long, env = "ROUTER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Serve `/metrics` on this address instead of the public listener
    /// (recommended behind a public load balancer).
    #[arg(long, env = "ROUTER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `DELETE /rooms/{id}` and
    /// other admin endpoints.
    #[arg(long, env = "ROUTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Require `Authorization: Bearer <token>` on `POST /rooms` too (the
    /// admin token also works), for services that create rooms on behalf of
    /// their users.
    #[arg(long, env = "ROUTER_CREATE_TOKEN", hide_env_values = true)]
    pub create_token: Option<Secret>,
    /// Keys of the application's backend for the server API (publish,
    /// members, kick, history), comma-separated so they can rotate; the
    /// admin token also works there.
    #[arg(
        long = "api-key",
        env = "ROUTER_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<Secret>,
    /// Cluster secret that signs join tokens of private rooms (the same on
    /// every router and node; at least 16 characters).
    #[arg(long, env = "ROOMROUTER_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,
    /// Lifetime of join tokens issued at room creation, seconds.
    #[arg(long, env = "ROUTER_TOKEN_TTL", default_value_t = DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl: u64,
    /// Seconds a client may take to send a request's body after its head;
    /// past it the request gets 408 and its connection is closed.
    #[arg(long, env = "ROUTER_BODY_TIMEOUT", default_value_t = DEFAULT_BODY_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Most connections open at once from one client address (an IPv6
    /// /64), proxied WebSockets included; more are closed unanswered and
    /// counted in `router_rejected_total{reason="per_ip"}`. 0, the default,
    /// is no limit: behind a load balancer every connection comes from the
    /// balancer's address, so set it only where clients reach the router
    /// directly.
    #[arg(long, env = "ROUTER_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
}

/// Where the cluster's state lives.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// etcd endpoints, comma-separated (`http://10.0.0.1:2379,...`). Required:
    /// the embedded store is only for `router up`.
    #[arg(long, env = "ROUTER_ETCD", value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// Key prefix of this cluster in etcd.
    #[arg(long, env = "ROUTER_PREFIX", default_value = proto::keys::DEFAULT_PREFIX)]
    prefix: String,
}

impl StoreArgs {
    /// The cluster's store.
    pub(crate) async fn connect(&self) -> anyhow::Result<Store> {
        connect(&self.etcd, &self.prefix).await
    }
}

/// The store of the cluster under `prefix` in the etcd at `endpoints`.
pub(crate) async fn connect(endpoints: &[String], prefix: &str) -> anyhow::Result<Store> {
    let kv = EtcdKv::connect(endpoints, DEFAULT_TIMEOUT)
        .await
        .context("connecting to etcd")?;
    Ok(Store::new(Backend::Etcd(Box::new(kv)), prefix))
}

/// A configuration that cannot work, naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// See the message.
    #[error(
        "--public-url must be an http://, https://, ws:// or wss:// URL without a path, got {0:?}"
    )]
    PublicUrl(String),
    /// See the message.
    #[error("--token-ttl must be 1..={MAX_TOKEN_TTL_SECS} seconds, got {0}")]
    TokenTtl(u64),
}

impl RouterConfig {
    /// How the router's listener bounds its clients (the refusals counted
    /// in `rejected`).
    pub(crate) fn limits(&self, rejected: prometheus::IntCounterVec) -> service::server::Limits {
        service::server::Limits {
            body: Duration::from_secs(self.body_timeout),
            per_ip: self.max_connections_per_ip,
            rejected: Some(rejected),
            ..Default::default()
        }
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(u) = &self.public_url {
            ws_base(u).ok_or_else(|| ConfigError::PublicUrl(u.clone()))?;
        }
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&self.token_ttl) {
            return Err(ConfigError::TokenTtl(self.token_ttl));
        }
        Ok(())
    }
}

/// `ws://host[:port]` or `wss://…` for a public URL; `None` if it is not one.
pub(crate) fn ws_base(public_url: &str) -> Option<String> {
    let (scheme, rest) = public_url.split_once("://")?;
    let ws = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some(format!("{ws}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_become_websocket_bases() {
        assert_eq!(
            ws_base("https://chat.example.com").as_deref(),
            Some("wss://chat.example.com")
        );
        assert_eq!(
            ws_base("http://127.0.0.1:8080/").as_deref(),
            Some("ws://127.0.0.1:8080")
        );
        assert_eq!(ws_base("ftp://x"), None);
        assert_eq!(ws_base("https://x/path"), None);
    }
}
