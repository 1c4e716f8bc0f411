//! Opening many client connections: WebSocket URLs resolved once up front,
//! each TCP socket bound to one of several loopback source addresses before
//! it connects (so tens of thousands of connections do not exhaust one
//! address's ephemeral ports), `TCP_NODELAY`, and small WebSocket buffers.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, bail};
use nix::sys::socket::{setsockopt, sockopt};
use reqwest::Url;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer per WebSocket: messages here are small, connections many.
const READ_BUFFER: usize = 8 * 1024;
/// Largest frame or message the generator accepts.
const MAX_MESSAGE: usize = 1 << 20;

/// Where one connection goes: its URL and the address it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://host:port/path?query` (`http://` for a polling session).
    pub url: String,
    /// The resolved peer.
    pub peer: SocketAddr,
}

/// Resolves WebSocket URLs to endpoints, looking each host up once.
#[derive(Debug, Default)]
pub struct Resolver {
    cache: HashMap<(String, u16), SocketAddr>,
}

impl Resolver {
    /// The endpoint of `url` (`ws://`, or `http://` for Engine.IO
    /// polling), at its host's first address.
    pub async fn endpoint(&mut self, url: String) -> anyhow::Result<Endpoint> {
        let parsed = Url::parse(&url).with_context(|| format!("bad URL {url:?}"))?;
        if !matches!(parsed.scheme(), "ws" | "http") {
            bail!("only ws:// and http:// URLs are supported, got {url:?}");
        }
        let host = parsed.host_str().context("URL without a host")?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let key = (host, port);
        let peer = match self.cache.get(&key) {
            Some(peer) => *peer,
            None => {
                let (host, port) = (&key.0, key.1);
                let peer = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .with_context(|| format!("resolving {host}:{port}"))?
                    .next()
                    .with_context(|| format!("{host}:{port} has no address"))?;
                self.cache.insert(key, peer);
                peer
            }
        };
        Ok(Endpoint { url, peer })
    }
}

/// `ws://host:port` for an `http://host:port[/…]` base URL.
pub fn ws_origin(http: &str) -> anyhow::Result<String> {
    let u = Url::parse(http).with_context(|| format!("bad URL {http:?}"))?;
    if u.scheme() != "http" {
        bail!("only http:// is supported (the generator speaks ws://), got {http:?}");
    }
    let host = u.host_str().context("URL without a host")?;
    Ok(match u.port() {
        Some(p) => format!("ws://{host}:{p}"),
        None => format!("ws://{host}"),
    })
}

/// Source addresses 127.0.0.1 ..= 127.0.0.N, used for loopback peers only.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    n: u8,
}

impl Sources {
    /// `n` addresses (at least 1).
    pub fn new(n: u8) -> Self {
        Self { n: n.max(1) }
    }

    /// The source for connection `k` to `peer`: `None` (the kernel picks)
    /// unless the peer is IPv4 loopback.
    pub fn pick(&self, k: usize, peer: &SocketAddr) -> Option<Ipv4Addr> {
        match peer.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let host = 1 + (k % usize::from(self.n)) as u8;
                Some(Ipv4Addr::new(127, 0, 0, host))
            }
            _ => None,
        }
    }
}

/// A TCP connection to `peer` from `source` (when given), `TCP_NODELAY` on.
pub async fn connect_tcp(peer: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        // Let connect() pick the port per 4-tuple instead of bind() reserving
        // one per address; best effort (Linux ≥ 4.2).
        let _ = setsockopt(&socket, sockopt::IpBindAddressNoPort, &true);
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    }
    let stream = socket.connect(peer).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// WebSocket settings for many small-message connections: small read
/// buffer, every message written at once.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_over_loopback_only() {
        let s = Sources::new(3);
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let picks: Vec<_> = (0..4).map(|k| s.pick(k, &lo)).collect();
        assert_eq!(
            picks,
            [1, 2, 3, 1].map(|h| Some(Ipv4Addr::new(127, 0, 0, h)))
        );
        let remote: SocketAddr = "10.0.0.5:80".parse().unwrap();
        assert_eq!(s.pick(0, &remote), None);
    }

    #[tokio::test]
    async fn endpoints_resolve() {
        let mut r = Resolver::default();
        let e = r
            .endpoint("ws://127.0.0.1:9001/i1/room/x".into())
            .await
            .unwrap();
        assert_eq!(e.peer, "127.0.0.1:9001".parse().unwrap());
        let e = r.endpoint("ws://localhost/x".into()).await.unwrap();
        assert_eq!(e.peer.port(), 80);
        assert!(r.endpoint("https://127.0.0.1/x".into()).await.is_err());
        let e = r
            .endpoint("http://127.0.0.1:9001/i1/room/x/socket.io/?EIO=4&transport=polling".into())
            .await
            .unwrap();
        assert_eq!(e.peer, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(
            ws_origin("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080"
        );
        assert_eq!(ws_origin("http://example.com").unwrap(), "ws://example.com");
        assert!(ws_origin("https://example.com").is_err());
    }

    #[tokio::test]
    async fn bound_sources_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let src = Ipv4Addr::new(127, 0, 0, 7);
        let (client, accepted) = tokio::join!(connect_tcp(peer, Some(src)), listener.accept());
        assert_eq!(client.unwrap().local_addr().unwrap().ip(), src);
        assert_eq!(accepted.unwrap().1.ip(), src);
    }
}
