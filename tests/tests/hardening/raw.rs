//! The hostile client: HTTP requests and WebSocket frames written by hand
//! on raw TCP, from any 127/8 address, and the answers read to the end.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::WAIT;

pub(super) const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub(super) const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// `127.0.0.1:port`.
pub(super) fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A connection to `port` from `from` (any 127/8 address is this host).
pub(super) async fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(local(port)).await
}

/// An HTTP answer read to the end of its connection.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) head: String,
    pub(super) body: Value,
}

/// Parses what a server wrote before closing.
pub(super) fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// Writes `request` to `port` and reads until the server closes.
pub(super) async fn exchange(port: u16, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(local(port)).await.expect("connect");
    s.write_all(request).await.expect("write the request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("no end of the answer to {request:.80?} within {WAIT:?}"))
        .expect("read the answer");
    parse(&raw)
}

/// Asserts `a` is `status` with the JSON error `code`.
pub(super) fn assert_refusal(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (status, Some(code)),
        "{what}: {a:?}"
    );
    assert!(a.body["message"].is_string(), "{what}: {a:?}");
}

/// A WebSocket member through `port` from `from`, joined to `room` (its
/// welcome read), or the I/O error of a refused connection.
pub(super) async fn member_from(from: Ipv4Addr, port: u16, path: &str) -> std::io::Result<WsRaw> {
    let s = connect_from(from, port).await?;
    WsRaw::handshake(s, path).await
}

/// The headers of a WebSocket upgrade, each line ended.
pub(super) const UPGRADE_HEADERS: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// A WebSocket client on raw TCP that writes frames by hand.
pub(super) struct WsRaw {
    pub(super) s: TcpStream,
    buf: Vec<u8>,
}

impl WsRaw {
    /// Upgrades `s` at `path` and reads the welcome.
    pub(super) async fn handshake(mut s: TcpStream, path: &str) -> std::io::Result<Self> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut ws = Self { s, buf: Vec::new() };
        while !ws.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            ws.fill().await?;
        }
        let end = ws
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(0)
            + 4;
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws.buf.drain(..end);
        let (op, welcome) = ws.frame().await?.expect("a welcome");
        assert_eq!(op, 1, "{welcome:?}");
        Ok(ws)
    }

    /// Reads more; the end of the connection is `UnexpectedEof`.
    pub(super) async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("nothing to read within 10 s"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next frame from the server (opcode, payload); `None` at the end
    /// of the connection.
    pub(super) async fn frame(&mut self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        loop {
            if let Some((op, start, len)) = frame_at(&self.buf)
                && self.buf.len() >= start + len
            {
                let payload = self.buf[start..start + len].to_vec();
                self.buf.drain(..start + len);
                return Ok(Some((op, payload)));
            }
            match self.fill().await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The opcode, payload offset and length of the server frame at the start
/// of `buf`, once its header is complete (servers do not mask).
pub(super) fn frame_at(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (op, len) = (buf.first()? & 0x0f, buf.get(1)? & 0x7f);
    match len {
        126 => Some((
            op,
            4,
            u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize,
        )),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some((op, 10, u64::from_be_bytes(bytes) as usize))
        }
        n => Some((op, 2, n as usize)),
    }
}

/// A client frame: `first` is the FIN, RSV and opcode byte; masked with a
/// fixed key unless `masked` is false. Payloads under 126 bytes, or 126.
pub(super) fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n @ 0..126 => out.push(mask_bit | n as u8),
        n => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if !masked {
        out.extend_from_slice(payload);
        return out;
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}
