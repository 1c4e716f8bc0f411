//! Prometheus file-based service discovery of the live room nodes: one
//! target group per node, labelled with its instance id and state, written
//! atomically (temp file + rename) so Prometheus never reads half a file.
//! [`SdArgs`] is `router prometheus-sd`.

use std::path::Path;

use anyhow::Context;
use proto::record::NodeRecord;
use serde_json::{Value, json};

use crate::config::StoreArgs;

/// The file_sd JSON for `nodes`.
pub fn targets(nodes: &[NodeRecord]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| {
                let target = n
                    .addr
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                json!({
                    "targets": [target],
                    "labels": {"instance_id": n.id, "state": n.state},
                })
            })
            .collect(),
    )
}

/// Writes `content` to `path` atomically.
pub fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

/// Keeps `path` current as nodes come and go, until `shutdown`.
pub async fn watch(
    store: store::Store,
    path: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let mirror = store::Mirror::start(store, store::Scope::Registry, None);
    let mut written: Option<String> = None;
    tokio::pin!(shutdown);
    loop {
        if mirror.is_synced() {
            let nodes: Vec<NodeRecord> = mirror.nodes().nodes.values().cloned().collect();
            let content = serde_json::to_string_pretty(&targets(&nodes)).expect("JSON");
            if written.as_ref() != Some(&content) {
                write_atomically(path, &content)?;
                tracing::info!(path = %path.display(), nodes = nodes.len(), "targets written");
                written = Some(content);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// How often `watch` compares the node set with the file.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// `router prometheus-sd` flags.
#[derive(Debug, clap::Args)]
pub struct SdArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Write to this file (atomically) instead of printing.
    #[arg(long, required_if_eq("watch", "true"))]
    out: Option<std::path::PathBuf>,
    /// Keep `--out` current as nodes come and go, until stopped.
    #[arg(long)]
    watch: bool,
}

impl SdArgs {
    /// `router prometheus-sd`: the targets once, or (`--watch`) kept
    /// current until `shutdown`.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let store = self.store.connect().await?;
        match (self.watch, self.out) {
            (true, Some(out)) => watch(store, &out, shutdown).await?,
            (_, out) => {
                let nodes = store.nodes().await.context("reading the nodes")?;
                let json = serde_json::to_string_pretty(&targets(&nodes))?;
                match out {
                    Some(path) => write_atomically(&path, &json)?,
                    None => println!("{json}"),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proto::record::NodeState;

    use super::*;

    #[test]
    fn one_target_group_per_node() {
        let n = NodeRecord {
            id: "i4".parse().unwrap(),
            addr: "http://10.0.0.4:9000".into(),
            weight: 1.0,
            state: NodeState::Draining,
        };
        let v = targets(&[n]);
        assert_eq!(
            v,
            json!([{"targets": ["10.0.0.4:9000"], "labels": {"instance_id": "i4", "state": "draining"}}])
        );
        let dir = std::env::temp_dir().join(format!("file-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.json");
        write_atomically(&path, "[]").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[]");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
