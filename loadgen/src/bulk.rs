//! `loadgen bulk-rooms`: fills an etcd store with N room records in
//! seconds instead of N `POST /rooms`, for benchmarks at 10^5..10^6 rooms
//! (`bench/scale`). Everything is written with the product's own types, so
//! the table is exactly what routers would have written: `proto::record::
//! RoomRecord` encoded by `store::store::encode` under `proto::keys::Keys`
//! (the record and its owner-index entry), the owner from `proto::placement`
//! (or round robin), and the schema key, so nothing migrates at start.
//! Writes go through `store::kv::etcd::EtcdKv::txn`, [`MAX_TXN_OPS`] puts
//! per transaction, `--in-flight` transactions at once; an unconditional
//! put is idempotent, so a failed transaction is simply sent again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use proto::keys::{Keys, SCHEMA_VERSION};
use proto::placement::Placement;
use proto::record::RoomRecord;
use proto::{InstanceId, RoomId};
use serde::Serialize;
use store::kv::etcd::EtcdKv;
use store::kv::{Kv as _, MAX_TXN_OPS, Op};
use store::store::encode;

use crate::config::{BulkArgs, BulkPlacement};

/// Bound on one transaction (etcd with fsync, many in flight, on a busy
/// machine: the product's 3 s default is too tight for a bulk load).
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per transaction before giving up.
const ATTEMPTS: u32 = 6;
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What `bulk-rooms` wrote.
#[derive(Debug, Serialize)]
pub struct BulkReport {
    /// Key prefix.
    pub prefix: String,
    /// Rooms written.
    pub rooms: u64,
    /// Number of the first room.
    pub start: u64,
    /// Length of every id.
    pub id_len: usize,
    /// The first and the last id written.
    pub first_id: String,
    /// The last id written.
    pub last_id: String,
    /// How owners were chosen.
    pub placement: BulkPlacement,
    /// Rooms per owner.
    pub per_node: BTreeMap<String, u64>,
    /// Transactions sent (each ≤ [`MAX_TXN_OPS`] puts).
    pub txns: u64,
    /// Transactions sent again after an error.
    pub retries: u64,
    /// Wall time of the writes, seconds.
    pub seconds: f64,
    /// Rooms (each two keys) written per second.
    pub rooms_per_s: f64,
    /// The joining node of `--movers`.
    pub movers_to: Option<String>,
    /// Written rooms whose HRW owner becomes `movers_to` once it joins.
    pub movers: Vec<String>,
}

impl BulkReport {
    /// A short human-readable summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "bulk-rooms: {} rooms ({}..{}, {} chars) under {} in {:.1}s = {:.0} rooms/s, {} txns, {} retried\n",
            self.rooms,
            self.first_id,
            self.last_id,
            self.id_len,
            self.prefix,
            self.seconds,
            self.rooms_per_s,
            self.txns,
            self.retries
        );
        for (node, n) in &self.per_node {
            out.push_str(&format!("  {node}: {n}\n"));
        }
        if let Some(to) = &self.movers_to {
            out.push_str(&format!("  movers to {to}: {}\n", self.movers.join(",")));
        }
        out
    }
}

/// Room number `n` as an id of exactly `len` characters: `tag`, then `n`
/// zero-padded. The caller has checked that it fits (`BulkArgs::validate`).
pub fn room_id(tag: &str, n: u64, len: usize) -> RoomId {
    let width = len - tag.len();
    format!("{tag}{n:0>width$}")
        .parse()
        .expect("a tag of valid characters and digits make a valid room id")
}

/// Writes the table `args` describes.
pub async fn run(args: &BulkArgs) -> anyhow::Result<BulkReport> {
    let kv = EtcdKv::connect(&args.etcd, TXN_TIMEOUT)
        .await
        .context("connecting to etcd")?;
    kv.ping().await.context("etcd does not answer")?;
    let keys = Keys::new(&args.prefix);
    let placement = Placement::new(args.nodes.iter().map(|&n| (n, 1.0)));
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let owner = |k: u64, id: &RoomId| -> InstanceId {
        match args.placement {
            BulkPlacement::Hrw => placement.owner(id).expect("at least one node"),
            BulkPlacement::RoundRobin => args.nodes[(k % args.nodes.len() as u64) as usize],
        }
    };
    let per_txn = (MAX_TXN_OPS / 2) as u64;
    let end = args.start + args.rooms;
    let retries = AtomicU64::new(0);
    let t0 = Instant::now();
    let mut per_node: BTreeMap<InstanceId, u64> = BTreeMap::new();
    let mut txns = 0u64;
    let mut written = 0u64;
    let mut last_log = Instant::now();

    let batch = |first: u64| {
        let mut ops = Vec::with_capacity(MAX_TXN_OPS);
        let mut owners = Vec::with_capacity(per_txn as usize);
        for k in first..(first + per_txn).min(end) {
            let id = room_id(&args.id_tag, k, args.id_len);
            let node = owner(k, &id);
            let record = RoomRecord::new(id, node, false, created_at);
            let value = encode(&record);
            ops.push(Op::Put(keys.room(&record.id), value.clone()));
            ops.push(Op::Put(keys.owned(node, &record.id), value));
            owners.push(node);
        }
        let (kv, retries) = (&kv, &retries);
        async move {
            let mut attempt = 1;
            loop {
                match kv.txn(Vec::new(), ops.clone()).await {
                    Ok(_) => return Ok(owners),
                    Err(e) if attempt < ATTEMPTS => {
                        tracing::warn!(first, attempt, error = %e, "bulk txn failed; sending it again");
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                        attempt += 1;
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("writing rooms {first}.. ({ATTEMPTS} attempts)")));
                    }
                }
            }
        }
    };
    let mut writes = futures_util::stream::iter((args.start..end).step_by(per_txn as usize))
        .map(batch)
        .buffer_unordered(args.in_flight);
    while let Some(done) = writes.next().await {
        let owners = done?;
        txns += 1;
        written += owners.len() as u64;
        for node in owners {
            *per_node.entry(node).or_default() += 1;
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            let secs = t0.elapsed().as_secs_f64();
            tracing::info!(
                written,
                of = args.rooms,
                rooms_per_s = (written as f64 / secs).round(),
                "bulk-rooms"
            );
        }
    }
    drop(writes);
    let seconds = t0.elapsed().as_secs_f64();
    let version = serde_json::json!({ "version": SCHEMA_VERSION });
    kv.put(&keys.schema(), encode(&version), None)
        .await
        .context("writing the schema key")?;

    Ok(BulkReport {
        prefix: args.prefix.clone(),
        rooms: args.rooms,
        start: args.start,
        id_len: args.id_len,
        first_id: room_id(&args.id_tag, args.start, args.id_len).to_string(),
        last_id: room_id(&args.id_tag, end - 1, args.id_len).to_string(),
        placement: args.placement,
        per_node: per_node
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        txns,
        retries: retries.into_inner(),
        seconds,
        rooms_per_s: args.rooms as f64 / seconds.max(1e-9),
        movers_to: args.movers_to.map(|n| n.to_string()),
        movers: movers(args),
    })
}

/// Up to `--movers` written rooms, spread evenly over the table, whose HRW
/// owner over `--nodes` + `--movers-to` is `--movers-to`: the rooms a
/// rebalance after that node joins moves (a placed table only).
fn movers(args: &BulkArgs) -> Vec<String> {
    let Some(to) = args.movers_to else {
        return Vec::new();
    };
    let grown = Placement::new(args.nodes.iter().chain([&to]).map(|&n| (n, 1.0)));
    let stride = (args.rooms / args.movers.max(1) as u64).max(1);
    let end = args.start + args.rooms;
    let mut out = Vec::new();
    let mut k = args.start;
    while out.len() < args.movers && k < end {
        let next = k + stride;
        // The first mover at or after k (about one in nodes + 1 is).
        while k < end && k < next {
            let id = room_id(&args.id_tag, k, args.id_len);
            if grown.owner(&id) == Some(to) {
                out.push(id.to_string());
                break;
            }
            k += 1;
        }
        k = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_asked_length() {
        assert_eq!(room_id("b", 42, 12).as_ref(), "b00000000042");
        assert_eq!(room_id("b", 999_999, 64).as_ref().len(), 64);
        assert_eq!(room_id("xy", 7, 3).as_ref(), "xy7");
    }

    #[test]
    fn movers_land_on_the_new_node_only() {
        use clap::Parser as _;
        let cli = crate::config::Cli::parse_from([
            "loadgen",
            "bulk-rooms",
            "--etcd",
            "http://127.0.0.1:1",
            "--rooms",
            "1000",
            "--movers",
            "5",
            "--movers-to",
            "i4",
        ]);
        let crate::config::Command::BulkRooms(args) = cli.command else {
            panic!("bulk-rooms")
        };
        let found = movers(&args);
        assert_eq!(found.len(), 5);
        let old = Placement::new(args.nodes.iter().map(|&n| (n, 1.0)));
        let i4: InstanceId = "i4".parse().unwrap();
        let grown = Placement::new(args.nodes.iter().chain([&i4]).map(|&n| (n, 1.0)));
        for id in found {
            let id: RoomId = id.parse().unwrap();
            assert_eq!(grown.owner(&id), Some(i4));
            assert_ne!(old.owner(&id), Some(i4));
        }
    }
}
