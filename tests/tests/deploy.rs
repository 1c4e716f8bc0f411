//! The generated deployment configuration, run by the real tools: nginx from
//! `router nginx-config` in front of real nodes, and Prometheus discovering
//! the nodes through `router prometheus-sd --watch` and scraping them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Cluster, Http, Proc, WsClient, eventually, free_port};

const WAIT: Duration = Duration::from_secs(15);

/// A program from the system, found on PATH or in the usual places.
fn system_program(name: &str) -> std::path::PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/test, which installs it")
}

/// Runs a `router` subcommand against the cluster's etcd; its stdout.
async fn router_output(cluster: &Cluster, args: &[&str]) -> String {
    let mut p = Proc::bin("router")
        .args(args)
        .args([
            "--etcd",
            &cluster.etcd.endpoint(),
            "--prefix",
            &cluster.prefix,
        ])
        .env("RUST_LOG", "warn")
        .spawn();
    let status = p.wait_exit(WAIT).await.expect("router command ends");
    assert!(status.success(), "router {args:?}:\n{}", p.log());
    p.log()
}

/// A world-writable temp dir: nginx's workers run as an unprivileged user.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

#[tokio::test]
async fn nginx_from_nginx_config_routes_each_instance_path_to_its_node() {
    let cluster = Cluster::start(3, 1).await;
    let dir = shared_dir();
    let port = free_port();
    let router = format!("127.0.0.1:{}", cluster.router(0).port);
    let listen = format!("127.0.0.1:{port}");
    let runtime = dir.path().to_str().unwrap();
    let conf = router_output(
        &cluster,
        &[
            "nginx-config",
            "--router",
            &router,
            "--listen",
            &listen,
            "--runtime-dir",
            runtime,
        ],
    )
    .await;
    for n in 1..=3 {
        assert!(conf.contains(&format!("location /i{n}/room/ {{")), "{conf}");
    }
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, &conf).unwrap();
    let nginx = system_program("nginx");
    let conf_arg = conf_path.to_str().unwrap();
    let mut check = Proc::program("nginx -t", &nginx)
        .args(["-t", "-c", conf_arg])
        .spawn();
    let status = check.wait_exit(WAIT).await.expect("nginx -t ends");
    assert!(status.success(), "nginx -t:\n{}", check.log());
    let server = Proc::program("nginx", &nginx)
        .args(["-c", conf_arg, "-g", "daemon off; master_process off;"])
        .spawn();

    let front = Http::new(format!("http://{listen}"));
    let ready = testkit::wait_until(WAIT, async || {
        front
            .send(reqwest::Method::GET, "/readyz", None)
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    if !ready {
        server.fail("nginx did not come up");
    }
    // The API through nginx's default location (the routers).
    let mut joined = 0;
    for i in 0..12 {
        let created = front
            .post_json("/rooms", &json!({"id": format!("via-nginx-{i}")}))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let (node, path) = (
            created.body["node"].as_str().unwrap(),
            created.body["path"].as_str().unwrap(),
        );
        // The room through nginx's per-instance location: the right node.
        let mut a = WsClient::connect(&format!("ws://{listen}{path}?name=a"))
            .await
            .expect("join through nginx");
        let welcome = a.recv_json(WAIT).await;
        assert_eq!(welcome["node"], node, "{welcome}");
        // And the legacy path, through the routers' proxy.
        let mut b = WsClient::connect(&format!("ws://{listen}/room/via-nginx-{i}"))
            .await
            .expect("legacy join");
        assert_eq!(b.recv_json(WAIT).await["node"], node);
        assert_eq!(a.recv_json(WAIT).await["type"], "joined");
        b.send_json(&json!({"type": "send", "body": i})).await;
        for c in [&mut a, &mut b] {
            let m = c.recv_json(WAIT).await;
            assert_eq!((m["seq"].as_u64(), &m["body"]), (Some(1), &json!(i)), "{m}");
        }
        joined += 1;
    }
    assert_eq!(joined, 12);
    drop(server);
}

#[tokio::test]
async fn prometheus_discovers_the_nodes_and_scrapes_their_rooms() {
    let cluster = Cluster::start(2, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("roomnodes.json");
    let _sd = Proc::bin("router")
        .args([
            "prometheus-sd",
            "--watch",
            "--out",
            targets.to_str().unwrap(),
        ])
        .args([
            "--etcd",
            &cluster.etcd.endpoint(),
            "--prefix",
            &cluster.prefix,
        ])
        .spawn();
    eventually(WAIT, "prometheus-sd writes the targets", async || {
        std::fs::read_to_string(&targets)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.as_array().map(Vec::len))
            == Some(2)
    })
    .await;
    let mut counts: std::collections::BTreeMap<String, u64> =
        cluster.nodes.iter().map(|n| (n.id(), 0)).collect();
    for i in 0..10 {
        let rec = cluster.create_room(&format!("scraped-{i}")).await;
        *counts
            .entry(rec["node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: roomnodes\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
        targets.display()
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let _prom = Proc::program("prometheus", system_program("prometheus"))
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .spawn();
    let api = Http::new(format!("http://127.0.0.1:{port}"));
    // Prometheus's own answer: roomnode_rooms per discovered node, labelled
    // with the instance id from the file_sd labels, equal to what was placed.
    eventually(
        Duration::from_secs(40),
        "Prometheus reports roomnode_rooms of every node",
        async || {
            let Ok(r) = api
                .send(
                    reqwest::Method::GET,
                    "/api/v1/query?query=roomnode_rooms",
                    None,
                )
                .await
            else {
                return false;
            };
            let Some(results) = r.body["data"]["result"].as_array() else {
                return false;
            };
            let seen: std::collections::BTreeMap<String, u64> = results
                .iter()
                .filter_map(|s| {
                    let node = s["metric"]["instance_id"].as_str()?;
                    assert_eq!(
                        s["metric"]["node"].as_str(),
                        Some(node),
                        "the node label matches discovery: {s}"
                    );
                    Some((node.to_owned(), s["value"][1].as_str()?.parse().ok()?))
                })
                .collect();
            seen == counts
        },
    )
    .await;
}
