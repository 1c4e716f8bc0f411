//! The generated deployment configuration, run by the real tools: nginx from
//! `router nginx-config` in front of real nodes, and in front of stand-in
//! nodes for the Socket.IO paths under `/iN/room/ID`; Prometheus
//! discovering the nodes through `router prometheus-sd --watch` and
//! scraping them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use proto::record::{NodeRecord, NodeState};
use router::generate::nginx::NginxSettings;
use serde_json::{Value, json};
use testkit::ws::tungstenite::Message;
use testkit::{Cluster, Http, Proc, Upstream, WsClient, eventually, free_port};

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

/// nginx running `conf` from `dir` (checked with `nginx -t` first), once
/// it answers on `listen` through its default location (the routers).
async fn nginx(dir: &tempfile::TempDir, conf: &str, listen: &str) -> Proc {
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
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
    server
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
    let server = nginx(&dir, &conf, &listen).await;
    let front = Http::new(format!("http://{listen}"));
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

/// The `proxy_read_timeout` (seconds) nginx applies in `location {path}`
/// of `conf`: the location's own, else the server's, else nginx's default
/// of 60 s. Durations in `conf` are written in seconds (`3600s`).
fn read_timeout(conf: &str, location: &str) -> u64 {
    let setting = |block: &str| {
        block.lines().find_map(|l| {
            let v = l.trim().strip_prefix("proxy_read_timeout ")?;
            v.trim_end_matches(';').strip_suffix('s')?.parse().ok()
        })
    };
    let server = &conf[conf.find("server {").expect("a server block")..];
    let open = format!("location {location} {{");
    let inside = server
        .find(&open)
        .map(|at| &server[at..at + server[at..].find('}').expect("block end")])
        .unwrap_or_else(|| panic!("no `{open}` in:\n{conf}"));
    let outside = &server[..server.find("location ").unwrap_or(server.len())];
    setting(inside).or_else(|| setting(outside)).unwrap_or(60)
}

/// The Socket.IO endpoint under `/iN/room/ID`, through nginx from `router
/// nginx-config`: polling GETs and POSTs and a WebSocket upgrade reach
/// instance N with path and query intact (seen by stand-in nodes that
/// answer with what reached them), `/room/ID/socket.io/` goes to the
/// routers unchanged, and no read timeout cuts a long poll short.
#[tokio::test]
async fn nginx_from_nginx_config_passes_socketio_paths_to_their_instance() {
    let router = Upstream::start("router").await;
    let mut stand_ins = Vec::new();
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let node = Upstream::start(&format!("i{n}")).await;
        nodes.push(NodeRecord {
            id: testkit::ids::iid(n),
            addr: node.url(),
            weight: 1.0,
            state: NodeState::Active,
        });
        stand_ins.push(node);
    }
    let dir = shared_dir();
    let listen = format!("127.0.0.1:{}", free_port());
    let settings = NginxSettings {
        listen: listen.clone(),
        routers: vec![router.addr().to_string()],
        runtime_dir: Some(dir.path().to_str().unwrap().to_owned()),
    };
    let conf = router::generate::nginx::config(&settings, &nodes).expect("a config");
    for n in 1..=3 {
        // A poll is held up to the node's ping interval (25 s by default).
        let secs = read_timeout(&conf, &format!("/i{n}/room/"));
        assert!(secs >= 60, "proxy_read_timeout {secs}s for /i{n}/room/");
    }
    let _server = nginx(&dir, &conf, &listen).await;
    let front = Http::new(format!("http://{listen}"));
    let wait = Duration::from_secs(10);

    for stand_in in stand_ins.iter().chain([&router]) {
        let (name, path) = match stand_in.name() {
            "router" => ("router", "/room/x/socket.io/".to_owned()),
            n => (n, format!("/{n}/room/x/socket.io/")),
        };
        let query = "EIO=4&transport=polling&t=Pq-1";
        let poll = front.get(&format!("{path}?{query}")).await;
        assert_eq!(poll.status, 200, "{}", poll.text);
        let seen = &poll.body;
        assert_eq!(
            (&seen["upstream"], &seen["method"]),
            (&json!(name), &json!("GET"))
        );
        assert_eq!(
            (&seen["path"], &seen["query"]),
            (&json!(path), &json!(query))
        );

        let query = "EIO=4&transport=polling&sid=s1";
        let post = front
            .raw(
                reqwest::Method::POST,
                &format!("{path}?{query}"),
                &[("content-type", "text/plain;charset=UTF-8")],
                Some("40"),
                wait,
            )
            .await;
        assert_eq!(post.status, 200, "{}", post.text);
        let seen = &post.body;
        assert_eq!(
            (&seen["upstream"], &seen["method"], &seen["path"]),
            (&json!(name), &json!("POST"), &json!(path))
        );
        assert_eq!(
            (&seen["query"], &seen["body"]),
            (&json!(query), &json!("40"))
        );
    }

    let query = "EIO=4&transport=websocket";
    let url = format!("ws://{listen}/i2/room/x/socket.io/?{query}");
    let mut ws = WsClient::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let seen = ws.recv_json(wait).await;
    assert_eq!(
        (&seen["upstream"], &seen["method"]),
        (&json!("i2"), &json!("GET"))
    );
    assert_eq!(
        (&seen["path"], &seen["query"]),
        (&json!("/i2/room/x/socket.io/"), &json!(query))
    );
    assert_eq!(seen["headers"]["upgrade"], "websocket");
    ws.send_text("2probe").await;
    match ws.recv_message(wait).await {
        Some(Message::Text(t)) => assert_eq!(t.as_str(), "2probe"),
        other => panic!("expected the probe back through nginx, got {other:?}"),
    }
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
