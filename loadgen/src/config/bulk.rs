//! `loadgen bulk-rooms`: its flags, checked once.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Longest room id.
pub const MAX_ID_LEN: usize = proto::id::MAX_ROOM_ID_LEN;
/// Most rooms one `bulk-rooms` writes.
pub const MAX_BULK_ROOMS: u64 = 100_000_000;

/// How `bulk-rooms` picks each room's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BulkPlacement {
    /// The product's weighted rendezvous hashing over `--nodes` (weight 1):
    /// the table is placed, as if every room had been created through a
    /// router with exactly these nodes active.
    Hrw,
    /// Room k on node k mod n: a table that `router rebalance` must fix.
    RoundRobin,
}

/// `loadgen bulk-rooms`.
#[derive(Debug, Clone, Args)]
pub struct BulkArgs {
    /// etcd endpoints, comma-separated (`http://127.0.0.1:2379`).
    #[arg(long, env = "LOADGEN_ETCD", value_delimiter = ',', required = true)]
    pub etcd: Vec<String>,
    /// The cluster's key prefix.
    #[arg(long, env = "LOADGEN_PREFIX", default_value = proto::keys::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Rooms to write.
    #[arg(long, env = "LOADGEN_ROOMS", default_value_t = 100_000)]
    pub rooms: u64,
    /// Number of the first room (ids are numbered from here), so that a
    /// second write adds rooms instead of overwriting.
    #[arg(long, env = "LOADGEN_START", default_value_t = 0)]
    pub start: u64,
    /// The owners, comma-separated instance ids.
    #[arg(
        long,
        env = "LOADGEN_NODES",
        value_delimiter = ',',
        default_value = "i1,i2,i3"
    )]
    pub nodes: Vec<proto::InstanceId>,
    /// How each room's owner is chosen.
    #[arg(long, env = "LOADGEN_PLACEMENT", value_enum, default_value_t = BulkPlacement::Hrw)]
    pub placement: BulkPlacement,
    /// Length of every room id (1..=64): `--id-tag` then the room's number,
    /// zero-padded.
    #[arg(long, env = "LOADGEN_ID_LEN", default_value_t = 12)]
    pub id_len: usize,
    /// First characters of every room id (`[A-Za-z0-9_-]`).
    #[arg(long, env = "LOADGEN_ID_TAG", default_value = "b")]
    pub id_tag: String,
    /// Transactions in flight at once (each ≤ 128 puts: 64 rooms).
    #[arg(long, env = "LOADGEN_IN_FLIGHT", default_value_t = 32)]
    pub in_flight: usize,
    /// Also list up to this many written rooms whose HRW owner becomes
    /// `--movers-to` once it joins `--nodes` (rooms a rebalance will move),
    /// spread over the table.
    #[arg(long, env = "LOADGEN_MOVERS", default_value_t = 0)]
    pub movers: usize,
    /// The node that joins, for `--movers`.
    #[arg(long, env = "LOADGEN_MOVERS_TO")]
    pub movers_to: Option<proto::InstanceId>,
    /// Also write the report as JSON to this file.
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: Option<PathBuf>,
}

impl BulkArgs {
    /// Checks what clap cannot; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_BULK_ROOMS).contains(&self.rooms) {
            return Err(format!("--rooms must be 1..={MAX_BULK_ROOMS}"));
        }
        if self.nodes.is_empty() {
            return Err("--nodes needs at least one instance id".into());
        }
        let tag_ok = self
            .id_tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !tag_ok {
            return Err(format!(
                "--id-tag must be of [A-Za-z0-9_-], got {:?}",
                self.id_tag
            ));
        }
        let last = self.start.saturating_add(self.rooms - 1);
        let need = self.id_tag.len() + last.to_string().len();
        if !(need..=MAX_ID_LEN).contains(&self.id_len) {
            return Err(format!(
                "--id-len must be {need}..={MAX_ID_LEN} (--id-tag plus the largest room number), got {}",
                self.id_len
            ));
        }
        if !(1..=1024).contains(&self.in_flight) {
            return Err("--in-flight must be 1..=1024".into());
        }
        if self.movers > 0 {
            match self.movers_to {
                None => return Err("--movers needs --movers-to".into()),
                Some(to) if self.nodes.contains(&to) => {
                    return Err(format!("--movers-to {to} is already in --nodes"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::super::{Cli, Command};

    #[test]
    fn bulk_rooms_checks_id_length_and_movers() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["loadgen", "bulk-rooms", "--etcd", "http://127.0.0.1:2379"];
            argv.extend_from_slice(extra);
            let Command::BulkRooms(args) = Cli::parse_from(argv).command else {
                panic!("bulk-rooms")
            };
            args
        };
        let args = parse(&[]);
        assert_eq!(
            (args.rooms, args.id_len, args.nodes.len()),
            (100_000, 12, 3)
        );
        assert!(args.validate().is_ok());
        let err = parse(&["--rooms", "1000000000", "--id-len", "8"])
            .validate()
            .unwrap_err();
        assert!(err.contains("--rooms"), "{err}");
        let err = parse(&["--id-len", "5"]).validate().unwrap_err();
        assert!(err.contains("--id-len"), "{err}");
        let err = parse(&["--movers", "3"]).validate().unwrap_err();
        assert!(err.contains("--movers-to"), "{err}");
        assert!(
            parse(&["--movers", "3", "--movers-to", "i4", "--id-len", "64"])
                .validate()
                .is_ok()
        );
    }
}
