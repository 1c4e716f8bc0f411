//! The command line: one struct per subcommand, every flag with an
//! environment variable, checked once by `validate` with messages that name
//! the flag. `bulk-rooms`' flags are in `bulk`.

mod bulk;

pub use bulk::{BulkArgs, BulkPlacement, MAX_BULK_ROOMS, MAX_ID_LEN};

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Most connections one `run` opens (rooms × members).
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Most source addresses: 127.0.0.1 ..= 127.0.0.254.
pub const MAX_SOURCES: u8 = 254;
/// Largest `--payload`: a message frame stays below the node's 64 KiB limit.
pub const MAX_PAYLOAD: usize = 60_000;
/// Highest `--rate` per sender (`run`) or in total (`floor`).
pub const MAX_RATE: f64 = 10_000_000.0;
/// Longest `--warmup`, `--duration` or `--drain`.
pub const MAX_PHASE: Duration = Duration::from_secs(3600);
/// Most `--pids`.
pub const MAX_PIDS: usize = 64;

/// `loadgen`: drive roomrouter (or the Socket.IO + Redis baseline) with
/// rooms × members and report delivery latency, loss and server CPU.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One scenario against a target: rooms × members, senders at a rate.
    Run(RunArgs),
    /// The kernel floor: one writer thread writing WebSocket frames to N
    /// loopback sockets (K per write, or through a relay thread), its CPU
    /// per frame.
    Floor(FloorArgs),
    /// Fills an etcd store with room records fast, as the product lays them
    /// out (record + owner-index entry, HRW-placed), for scale benchmarks.
    BulkRooms(BulkArgs),
}

/// What `run` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// roomrouter: rooms created through the router API.
    Roomrouter,
    /// Socket.IO v4 servers (the Redis-adapter baseline).
    Socketio,
}

/// How roomrouter clients reach a room's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectMode {
    /// `ws://<api host>/room/<id>`: the router looks the room up and tunnels.
    Legacy,
    /// `ws://<api host>/<node>/room/<id>`: the router forwards by prefix.
    Instance,
    /// `ws://<node addr>/<node>/room/<id>`: straight to the node (what an
    /// ALB rule does).
    Direct,
}

/// What roomrouter members speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WireProtocol {
    /// roomrouter's JSON frames at `/iN/room/{id}`; a sender gets its own
    /// message back.
    Native,
    /// Socket.IO v5 at the room's `/socket.io/` path; a sender does not get
    /// its own event back.
    Socketio,
}

/// The Engine.IO transport of Socket.IO members of a roomrouter room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One WebSocket per member.
    Websocket,
    /// HTTP long-polling: a GET always pending for the server's packets,
    /// a POST for each batch of the client's.
    Polling,
}

/// `loadgen run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The system under test.
    #[arg(long, env = "LOADGEN_TARGET", value_enum, default_value_t = Target::Roomrouter)]
    pub target: Target,
    /// roomrouter: the router's base URL (rooms are created with `POST /rooms`).
    #[arg(long, env = "LOADGEN_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// roomrouter: how clients reach the room's node.
    #[arg(long, env = "LOADGEN_CONNECT", value_enum, default_value_t = ConnectMode::Instance)]
    pub connect: ConnectMode,
    /// roomrouter: what members speak (the baseline speaks Socket.IO
    /// whatever this says). Socket.IO members connect to
    /// `<room path>/socket.io/` (through the router's legacy path
    /// `/room/{id}/socket.io/` with `--connect legacy`) and emit
    /// `42["chat",<body>]`; they do not get their own event back, so a
    /// message is expected by members − 1.
    #[arg(long, env = "LOADGEN_PROTOCOL", value_enum, default_value_t = WireProtocol::Native)]
    pub protocol: WireProtocol,
    /// roomrouter with `--protocol socketio`: the members' Engine.IO
    /// transport.
    #[arg(long, env = "LOADGEN_TRANSPORT", value_enum, default_value_t = Transport::Websocket)]
    pub transport: Transport,
    /// roomrouter: bearer token for `POST /rooms` when the router has
    /// `--create-token`.
    #[arg(long, env = "LOADGEN_CREATE_TOKEN", hide_env_values = true)]
    pub create_token: Option<String>,
    /// socketio: comma-separated server URLs; each room's members are spread
    /// round-robin over them.
    #[arg(
        long,
        env = "LOADGEN_SERVERS",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:3001,ws://127.0.0.1:3002"
    )]
    pub servers: Vec<String>,
    /// Rooms.
    #[arg(long, env = "LOADGEN_ROOMS", default_value_t = 10)]
    pub rooms: usize,
    /// Members (connections) per room.
    #[arg(long, env = "LOADGEN_MEMBERS", default_value_t = 10)]
    pub members: usize,
    /// Senders per room: the first S members of each room send.
    #[arg(long, env = "LOADGEN_SENDERS", default_value_t = 1)]
    pub senders: usize,
    /// Messages per second per sender.
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 10.0)]
    pub rate: f64,
    /// Approximate size of a message body in bytes (a padded string field).
    #[arg(long, env = "LOADGEN_PAYLOAD", default_value_t = 64)]
    pub payload: usize,
    /// Traffic before measuring (humantime, e.g. `5s`, or seconds).
    #[arg(long, env = "LOADGEN_WARMUP", default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The measured window (humantime or seconds).
    #[arg(long, env = "LOADGEN_DURATION", default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// After the window, how long to wait for deliveries still in flight.
    #[arg(long, env = "LOADGEN_DRAIN", default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Connection attempts (TCP + WebSocket + protocol handshake) at once.
    #[arg(long, env = "LOADGEN_CONNECT_CONCURRENCY", default_value_t = 256)]
    pub connect_concurrency: usize,
    /// One connection attempt's time limit.
    #[arg(long, env = "LOADGEN_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Spread client source addresses over 127.0.0.1..=127.0.0.N (loopback
    /// targets only) so that many connections do not exhaust one address's
    /// ephemeral ports.
    #[arg(long, env = "LOADGEN_SOURCES", default_value_t = 1)]
    pub sources: u8,
    /// Processes whose CPU time and RSS are sampled at the start and end of
    /// the measured window (comma-separated pids).
    #[arg(long, env = "LOADGEN_PIDS", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Room ids are `lg-<run-id>-<k>`; a fresh one by default.
    #[arg(long, env = "LOADGEN_RUN_ID")]
    pub run_id: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: Option<PathBuf>,
}

/// `loadgen floor`.
#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Loopback TCP connection pairs.
    #[arg(long, env = "LOADGEN_SOCKETS", default_value_t = 1000)]
    pub sockets: usize,
    /// Frames per second, in total, from the one writer.
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 40_000.0)]
    pub rate: f64,
    /// Message body size; frames are sized like the node's `message` frames
    /// carrying such a body.
    #[arg(long, env = "LOADGEN_PAYLOAD", default_value_t = 64)]
    pub payload: usize,
    /// How long to write (humantime or seconds).
    #[arg(long, env = "LOADGEN_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Spread the connecting sides over 127.0.0.1..=127.0.0.N.
    #[arg(long, env = "LOADGEN_SOURCES", default_value_t = 1)]
    pub sources: u8,
    /// Frames per `write`: K copies of the frame in one buffer, one syscall
    /// per K frames (`--rate` stays frames/s, so rate/K writes/s); the
    /// floor of a server that coalesces K frames per member write.
    #[arg(long, env = "LOADGEN_FRAMES_PER_WRITE", default_value_t = 1)]
    pub frames_per_write: usize,
    /// Writes back to back, to that many consecutive sockets, each time
    /// that many are due (as a node fanning one message out to a room's
    /// members); 1: evenly spaced writes.
    #[arg(long, env = "LOADGEN_BURST", default_value_t = 1)]
    pub burst: usize,
    /// Put a byte-moving proxy in the path: the writer writes to N upstream
    /// pairs, one relay thread (epoll) reads each readable upstream socket
    /// once and writes those bytes to the matching downstream pair, whose
    /// readers drain it; the relay thread's CPU per frame is the floor of a
    /// proxy's CPU per proxied frame.
    #[arg(long, env = "LOADGEN_RELAY")]
    pub relay: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: Option<PathBuf>,
}

/// Most `--frames-per-write`.
pub const MAX_FRAMES_PER_WRITE: usize = 1024;

/// `5s`, `250ms`, `1m 30s` (humantime) or plain seconds (`5`, `2.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 5s, 250ms, 1m)"))
}

impl RunArgs {
    /// Checks what clap cannot; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.rooms == 0 || self.members == 0 {
            return Err("--rooms and --members must be at least 1".into());
        }
        let conns = self.rooms.saturating_mul(self.members);
        if conns > MAX_CONNECTIONS {
            return Err(format!(
                "--rooms × --members is {conns}, more than {MAX_CONNECTIONS} connections"
            ));
        }
        if self.senders > self.members {
            return Err(format!(
                "--senders ({}) cannot exceed --members ({})",
                self.senders, self.members
            ));
        }
        check_rate(self.rate)?;
        check_payload(self.payload)?;
        check_sources(self.sources)?;
        for (flag, d) in [
            ("--warmup", self.warmup),
            ("--duration", self.duration),
            ("--drain", self.drain),
            ("--connect-timeout", self.connect_timeout),
        ] {
            if d > MAX_PHASE {
                return Err(format!(
                    "{flag} must be at most {}",
                    humantime::format_duration(MAX_PHASE)
                ));
            }
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if self.connect_timeout.is_zero() {
            return Err("--connect-timeout must be more than 0".into());
        }
        if !(1..=100_000).contains(&self.connect_concurrency) {
            return Err("--connect-concurrency must be 1..=100000".into());
        }
        if self.pids.len() > MAX_PIDS {
            return Err(format!("--pids takes at most {MAX_PIDS} pids"));
        }
        if let Some(id) = &self.run_id
            && (id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(format!(
                "--run-id must be 1 to 32 of [A-Za-z0-9_-], got {id:?}"
            ));
        }
        match self.target {
            Target::Roomrouter => {
                if !(self.api.starts_with("http://") || self.api.starts_with("https://")) {
                    return Err(format!("--api must be an http:// URL, got {:?}", self.api));
                }
                if self.transport == Transport::Polling && self.protocol != WireProtocol::Socketio {
                    return Err("--transport polling needs --protocol socketio".into());
                }
            }
            Target::Socketio => {
                if self.transport == Transport::Polling {
                    return Err(
                        "--transport polling is for --target roomrouter --protocol socketio (the baseline serves WebSocket only)"
                            .into(),
                    );
                }
                if self.servers.is_empty() || self.servers.len() > 64 {
                    return Err("--servers takes 1 to 64 URLs".into());
                }
                if let Some(bad) = self.servers.iter().find(|s| !s.starts_with("ws://")) {
                    return Err(format!("--servers must be ws:// URLs, got {bad:?}"));
                }
            }
        }
        Ok(())
    }
}

impl FloorArgs {
    /// Checks what clap cannot; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CONNECTIONS).contains(&self.sockets) {
            return Err(format!("--sockets must be 1..={MAX_CONNECTIONS}"));
        }
        check_rate(self.rate)?;
        check_payload(self.payload)?;
        check_sources(self.sources)?;
        if self.duration.is_zero() || self.duration > MAX_PHASE {
            return Err("--duration must be more than 0 and at most 1h".into());
        }
        if !(1..=self.sockets).contains(&self.burst) {
            return Err(format!(
                "--burst must be 1..=--sockets ({}), got {}",
                self.sockets, self.burst
            ));
        }
        if !(1..=MAX_FRAMES_PER_WRITE).contains(&self.frames_per_write) {
            return Err(format!(
                "--frames-per-write must be 1..={MAX_FRAMES_PER_WRITE}, got {}",
                self.frames_per_write
            ));
        }
        Ok(())
    }
}

fn check_rate(rate: f64) -> Result<(), String> {
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
        return Err(format!(
            "--rate must be more than 0 and at most {MAX_RATE}, got {rate}"
        ));
    }
    Ok(())
}

fn check_payload(payload: usize) -> Result<(), String> {
    if payload > MAX_PAYLOAD {
        return Err(format!(
            "--payload must be at most {MAX_PAYLOAD} bytes, got {payload}"
        ));
    }
    Ok(())
}

fn check_sources(n: u8) -> Result<(), String> {
    if !(1..=MAX_SOURCES).contains(&n) {
        return Err(format!("--sources must be 1..={MAX_SOURCES}, got {n}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_humantime_or_seconds() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn validation_names_the_flag() {
        let cli = Cli::parse_from(["loadgen", "run", "--members", "2", "--senders", "3"]);
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        let err = args.validate().unwrap_err();
        assert!(err.contains("--senders"), "{err}");
    }

    #[test]
    fn floor_takes_frames_per_write_and_relay() {
        let cli = Cli::parse_from(["loadgen", "floor"]);
        let Command::Floor(args) = cli.command else {
            panic!("floor")
        };
        assert_eq!(
            (args.frames_per_write, args.relay, args.burst),
            (1, false, 1)
        );
        assert!(args.validate().is_ok());
        let cli = Cli::parse_from(["loadgen", "floor", "--frames-per-write", "4", "--relay"]);
        let Command::Floor(args) = cli.command else {
            panic!("floor")
        };
        assert_eq!((args.frames_per_write, args.relay), (4, true));
        assert!(args.validate().is_ok());
        let cli = Cli::parse_from(["loadgen", "floor", "--frames-per-write", "0"]);
        let Command::Floor(args) = cli.command else {
            panic!("floor")
        };
        let err = args.validate().unwrap_err();
        assert!(err.contains("--frames-per-write"), "{err}");
        let cli = Cli::parse_from(["loadgen", "floor", "--sockets", "10", "--burst", "11"]);
        let Command::Floor(args) = cli.command else {
            panic!("floor")
        };
        let err = args.validate().unwrap_err();
        assert!(err.contains("--burst"), "{err}");
    }
}
