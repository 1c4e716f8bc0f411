//! The example backend of `examples/chat-backend/` (docs/hooks.md), run
//! as it is with `node` against an in-process cluster whose node calls its
//! hooks: refused and renamed joins (native and Socket.IO), a filtered
//! message rejected and nobody else seeing it, trimmed messages replaced,
//! every accepted message persisted once after the events feed delivered
//! it (and once again when a batch comes twice), unsigned requests refused,
//! and its admin script on the server API (an announcement once per
//! idempotency key, members, kick).

use std::path::PathBuf;
use std::time::Duration;

use proto::hooks::{SIGNATURE_HEADER, signature};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::ws::{join, refused_join};
use testkit::{Http, Proc, Reply, WsClient, eventually, next, wait_until};

/// The nodes' `--hook-secret`, the example's `HOOK_SECRET`.
const SECRET: &str = "example-hook-secret-0123";
/// The router's `--api-key`, the admin script's `API_KEY`.
const API_KEY: &str = "example-api-key-0123456789";
/// Keys of `examples/chat-backend/config.json`.
const ANN_KEY: &str = "key-ann-4f1c2e";
const BOB_KEY: &str = "key-bob-9d3a7b";

const WAIT: Duration = Duration::from_secs(10);

fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/chat-backend")
        .join(file)
}

/// The example's server with its data in a temp dir, and a cluster of one
/// node calling its hooks and one router taking [`API_KEY`].
struct Scene {
    /// Runs while the scene lives (killed on drop).
    _backend: Proc,
    url: String,
    data: tempfile::TempDir,
    cluster: Cluster,
}

impl Scene {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let backend = Proc::program("chat-backend", "node")
            .arg(example("server.js"))
            .env("HOOK_SECRET", SECRET)
            .env("PORT", "0")
            .env("DATA_DIR", data.path())
            .spawn();
        let mut url = None;
        let up = wait_until(WAIT, async || {
            url = listening_on(&backend.log());
            url.is_some()
        })
        .await;
        let Some(url) = url.filter(|_| up) else {
            backend.fail("the example backend did not say where it listens");
        };
        let hooks = url.clone();
        let mut cluster = Cluster::start_with(1, 0, move |c| {
            c.hooks.join_hook = Some(format!("{hooks}/join"));
            c.hooks.publish_hook = Some(format!("{hooks}/publish"));
            c.hooks.events_hook = Some(format!("{hooks}/events"));
            c.hooks.hook_secret = Some(SECRET.parse().unwrap());
        })
        .await;
        cluster
            .add_router(|c| c.api_keys = vec![API_KEY.parse().unwrap()])
            .await;
        cluster.wait_nodes_seen(1).await;
        Self {
            _backend: backend,
            url,
            data,
            cluster,
        }
    }

    /// A native join URL of `room` on its owner, with `query`.
    async fn url(&self, room: &str, query: &str) -> String {
        let rec = self.cluster.record(room).await;
        format!(
            "{}{}?{query}",
            self.cluster.owner(room).await.ws_base(),
            rec["path"].as_str().unwrap()
        )
    }

    /// `node admin.js <args>` against the router: its answer line.
    async fn admin(&self, args: &[&str]) -> Value {
        let mut run = Proc::program("admin", "node")
            .arg(example("admin.js"))
            .args(args)
            .env("ROUTER_URL", self.cluster.router(0).http().base())
            .env("API_KEY", API_KEY)
            .spawn();
        let (_, log) = run.finish(WAIT).await;
        log.lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("admin.js {args:?} printed no answer:\n{log}"))
    }

    /// The lines of `messages.jsonl` (none before the first message).
    fn stored(&self) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.data.path().join("messages.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// POSTs `body` to the example's `path` with `sig` as the signature.
    async fn post(&self, path: &str, body: &str, sig: Option<&str>) -> Reply {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(sig) = sig {
            headers.push((SIGNATURE_HEADER, sig));
        }
        Http::new(&self.url)
            .raw(Method::POST, path, &headers, Some(body), WAIT)
            .await
    }
}

/// `http://HOST:PORT` from the example's `chat-backend listening on …` line.
fn listening_on(log: &str) -> Option<String> {
    let rest = log.split("listening on ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

/// A Socket.IO client of `room` over a WebSocket that sent CONNECT with
/// `auth`: the client and the answer packet (`40…` or `44…`).
async fn socketio(scene: &Scene, room: &str, auth: Value) -> (WsClient, String) {
    let rec = scene.cluster.record(room).await;
    let url = format!(
        "{}{}/socket.io/?EIO=4&transport=websocket",
        scene.cluster.owner(room).await.ws_base(),
        rec["path"].as_str().unwrap()
    );
    let mut c = WsClient::connect(&url).await.unwrap();
    c.recv_message(WAIT).await.expect("the open packet");
    c.send_text(format!("40{auth}")).await;
    loop {
        match c.recv_message(WAIT).await {
            Some(testkit::ws::tungstenite::Message::Text(t)) if t.as_str() == "2" => {
                c.send_text("3").await
            }
            Some(testkit::ws::tungstenite::Message::Text(t)) => return (c, t.to_string()),
            other => panic!("Socket.IO answer to CONNECT: {other:?}"),
        }
    }
}

async fn send(c: &mut WsClient, body: Value) {
    c.send_json(&json!({"type": "send", "body": body})).await;
}

#[tokio::test]
async fn joins_are_refused_or_renamed_and_the_admin_script_lists_and_kicks() {
    let scene = Scene::start().await;
    scene.cluster.create_room("gate").await;

    for (query, reason) in [
        ("name=mallory", "banned"),
        ("key=nope", "unknown key"),
        (
            "name=Ann",
            "that name belongs to a member: join with your key",
        ),
    ] {
        let (status, body) = refused_join(&scene.url("gate", query).await).await;
        assert_eq!(
            (status, body["error"].as_str(), body["message"].as_str()),
            (403, Some("join_refused"), Some(reason)),
            "{query}: {body}"
        );
    }
    let (_ann, wa) = join(&scene.url("gate", &format!("key={ANN_KEY}&name=x")).await).await;
    let (mut carl, wc) = join(&scene.url("gate", "name=carl").await).await;
    let (_, answer) = socketio(&scene, "gate", json!({"name": "mallory"})).await;
    let refusal: Value = serde_json::from_str(answer.strip_prefix("44").unwrap()).unwrap();
    assert_eq!(
        refusal,
        json!({"message": "banned", "data": {"code": "join_refused"}})
    );
    let (_bob, answer) = socketio(&scene, "gate", json!({"key": BOB_KEY})).await;
    assert!(answer.starts_with("40{"), "{answer}");

    let listed = scene.admin(&["members", "gate"]).await;
    assert_eq!(listed["status"], 200, "{listed}");
    let members: Vec<(Value, Value, Value)> = listed["body"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["member"].clone(),
                m["name"].clone(),
                m["transport"].clone(),
            )
        })
        .collect();
    assert_eq!(members.len(), 3, "{listed}");
    assert_eq!(
        members[0],
        (wa["member"].clone(), json!("Ann"), json!("websocket"))
    );
    assert_eq!(
        members[1],
        (
            wc["member"].clone(),
            json!("carl (guest)"),
            json!("websocket")
        )
    );
    assert_eq!(
        (members[2].1.clone(), members[2].2.clone()),
        (json!("Bob"), json!("socketio-websocket"))
    );

    let kicked = scene
        .admin(&["kick", "gate", wc["member"].as_str().unwrap()])
        .await;
    assert_eq!(kicked["status"], 204, "{kicked}");
    assert_eq!(carl.recv_until("error", WAIT).await["code"], "kicked");
    assert_eq!(carl.expect_close(WAIT).await, Some(1008));
}

#[tokio::test]
async fn messages_are_filtered_trimmed_and_persisted_once() {
    let scene = Scene::start().await;
    scene.cluster.create_room("talk").await;
    let (mut ann, wa) = join(&scene.url("talk", &format!("key={ANN_KEY}")).await).await;
    let (mut bob, _) = join(&scene.url("talk", &format!("key={BOB_KEY}")).await).await;
    next(&mut ann, "joined").await;

    send(&mut ann, json!("  hello  ")).await;
    send(&mut ann, json!("cheap SPAM here")).await;
    send(&mut ann, json!({"event": "chat", "args": ["  hi  "]})).await;
    send(&mut ann, json!("x".repeat(501))).await;
    send(&mut ann, json!("fine")).await;
    // Bob sees the accepted ones, trimmed, and nothing of the others.
    for (seq, body) in [
        (1, json!("hello")),
        (2, json!({"event": "chat", "args": ["hi"]})),
        (3, json!("fine")),
    ] {
        let m = next(&mut bob, "message").await;
        assert_eq!((m["seq"].as_u64(), &m["body"]), (Some(seq), &body), "{m}");
    }
    // Ann gets each message back or its refusal, in the order she sent.
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let f = ann.recv_json(WAIT).await;
        outcomes.push(match f["type"].as_str() {
            Some("message") => format!("#{}", f["seq"]),
            _ => format!("{} {}", f["code"].as_str().unwrap(), f["message"]),
        });
    }
    assert_eq!(
        outcomes,
        [
            "#1",
            r#"rejected "message contains a blocked word""#,
            "#2",
            r#"rejected "too long: 501 characters, at most 500""#,
            "#3",
        ]
    );

    // An announcement sent twice with one idempotency key arrives once.
    let args = [
        "announce",
        "talk",
        "maintenance",
        "at",
        "noon",
        "--key",
        "k1",
    ];
    let first = scene.admin(&args).await;
    assert_eq!(first["status"], 201, "{first}");
    assert_eq!(scene.admin(&args).await["body"], first["body"]);
    let m = next(&mut bob, "message").await;
    assert_eq!(
        (m["seq"].as_u64(), m["from"].as_str(), &m["body"]),
        (
            Some(4),
            Some("server"),
            &json!({"event": "chat", "args": ["maintenance at noon"]})
        )
    );
    send(&mut ann, json!("bye")).await;
    assert_eq!(next(&mut bob, "message").await["seq"], 5);

    // Persisted by the events feed, once each, in order.
    eventually(WAIT, "five messages in messages.jsonl", async || {
        scene.stored().len() >= 5
    })
    .await;
    let stored = scene.stored();
    let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(
        (&stored[0]["from"], &stored[0]["name"], &stored[0]["body"]),
        (&wa["member"], &json!("Ann"), &json!("hello"))
    );
    assert_eq!(stored[3]["from"], "server");
    assert!(
        stored
            .iter()
            .all(|m| m["room"] == "talk" && m["stream"] == first["body"]["stream"])
    );

    // The same batch again (at least once): nothing stored twice.
    let events: Vec<Value> = stored
        .iter()
        .map(|m| {
            let mut e = m.clone();
            e["type"] = json!("message");
            e
        })
        .collect();
    let batch = json!({ "events": events }).to_string();
    let sig = signature(SECRET.as_bytes(), batch.as_bytes());
    let again = scene.post("/events", &batch, Some(&sig)).await;
    assert_eq!(again.status, 204, "{}", again.text);
    assert_eq!(scene.stored().len(), 5);

    // Every hook call of the node was answered (signed, so never a 401).
    let node = scene.cluster.owner("talk").await.http();
    let text = testkit::metrics::scrape(&node).await;
    for failure in ["status", "timeout", "unreachable", "invalid_answer"] {
        let failed =
            testkit::metrics::sum_with(&text, "roomnode_hook_calls_total", &[("outcome", failure)]);
        assert_eq!(
            failed.unwrap_or(0.0),
            0.0,
            "hook calls that failed ({failure})"
        );
    }
    let refused = [("hook", "publish"), ("outcome", "refused")];
    let refused = testkit::metrics::value(&text, "roomnode_hook_calls_total", &refused);
    assert_eq!(refused, 2.0, "the blocked word and the long message");
}

#[tokio::test]
async fn the_example_refuses_unsigned_requests() {
    let scene = Scene::start().await;
    let join = json!({
        "type": "join", "room": "r", "name": "eve", "query": {}, "headers": {},
        "protocol": "native"
    })
    .to_string();
    let forged = signature(b"not-the-secret-0123", join.as_bytes());
    for (sig, status) in [
        (None, 401),
        (Some(forged.as_str()), 401),
        (Some("sha256=00"), 401),
    ] {
        let r = scene.post("/join", &join, sig).await;
        assert_eq!(r.status, status, "{sig:?}: {}", r.text);
        assert_eq!(r.body["error"], "bad signature");
    }
    let r = scene.post("/events", r#"{"events":[]}"#, None).await;
    assert_eq!(r.status, 401);
    let signed = signature(SECRET.as_bytes(), join.as_bytes());
    let r = scene.post("/join", &join, Some(&signed)).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"allow": true, "name": "eve (guest)"}))
    );
}
