//! The real `socket.io-client` 4.8 from npm, in Node, against room nodes
//! and routers (in this process; the real binaries and etcd for `router
//! drain` and the node's duration flags): each case runs one script of
//! `tests/browser/socketio/` with the room's URL and path on its command
//! line and asserts on the JSON line of results it prints. Scripts fail
//! (exit 1) only when something never happens; what happened is checked
//! here, value by value.
//!
//! Offsets: every delivered event ends with its seq as a string (the
//! recovery offset), which socket.io-client passes on to the handler as
//! its last argument; the expected argument lists include it.
//!
//! Layout: this file holds what the cases share (running a script, a room
//! on its node, the exchange verdict); the cases are by topic: `node.rs`
//! (straight to a node: transports, 500 in order, binary, private rooms,
//! native members), `recovery.rs` (a dropped transport, another stream,
//! a deleted room), `router.rs` (through the router, polling over several
//! routers), `moves.rs` (a rebalance and a drain under traffic).

mod moves;
mod node;
mod recovery;
mod router;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::Proc;
use testkit::inproc::Cluster;

/// Bound on one script run (each waits at most a few seconds per step).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/browser`, where the npm packages and the scripts are.
fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// `node socketio/<script>.mjs <args>`, started.
fn start(script: &str, args: &[&str]) -> Proc {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "socket.io-client is not installed: run `npm ci` in tests/browser"
    );
    Proc::program(script, "node")
        .arg(dir.join("socketio").join(format!("{script}.mjs")))
        .args(args)
        .spawn()
}

/// Waits for a started script to end: its result line, or a panic with
/// its output if it failed.
async fn result(script: &mut Proc) -> Value {
    let (status, log) = script.finish(SCRIPT_TIMEOUT).await;
    let line = log.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(|v| v.get("ok").is_some())
    });
    match line {
        Some(v) if status.success() && v["ok"] == true => v,
        _ => panic!("{} failed ({status}):\n{log}", script.label()),
    }
}

/// Runs `socketio/<script>.mjs` to its end: its result line.
async fn run(script: &str, args: &[&str]) -> Value {
    result(&mut start(script, args)).await
}

/// Creates `room` and returns the base URL of its owner and its Socket.IO
/// path there (`/iN/room/{room}/socket.io`).
async fn on_node(cluster: &Cluster, room: &str) -> (String, String) {
    let rec = cluster.create_room(room).await;
    let node = cluster.owner(room).await;
    let path = format!("/{}/room/{room}/socket.io", node.id());
    assert_eq!(rec["node"], node.id());
    (node.http().base().to_owned(), path)
}

/// The argument list of a delivered event: `args`, then the offset.
fn delivered(args: Value, seq: u64) -> Value {
    let mut all = args.as_array().expect("args is an array").clone();
    all.push(json!(seq.to_string()));
    Value::Array(all)
}

/// What `exchange.mjs` saw in a fresh room: `count` chat events acked with
/// seqs 1..=count and received by B with those offsets, none echoed to A,
/// and B's reply (seq count + 1) at A.
fn check_exchange(out: &Value, count: u64) {
    let acks: Vec<Value> = (1..=count).map(|seq| json!({ "seq": seq })).collect();
    assert_eq!(out["acks"], json!(acks), "{out}");
    let at_b: Vec<Value> = (0..count)
        .map(|i| delivered(json!(["hello", i, { "n": i }]), i + 1))
        .collect();
    assert_eq!(out["atB"], json!(at_b), "{out}");
    assert_eq!(out["atA"], json!([]), "a sender gets no echo: {out}");
    assert_eq!(out["replyAck"], json!({ "seq": count + 1 }), "{out}");
    assert_eq!(
        out["repliesAtA"],
        json!([delivered(json!(["hi alice"]), count + 1)]),
        "{out}"
    );
    let (a, b) = (&out["ids"]["a"], &out["ids"]["b"]);
    assert!(a.is_string() && b.is_string() && a != b, "{out}");
}
