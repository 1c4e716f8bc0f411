//! The join and publish hooks end to end (SPEC "Server API and hooks for
//! the application's backend"), in process with a real backend HTTP
//! server (`backend.rs`): refused and renamed joins, native and Socket.IO;
//! rejected and replaced messages that nobody else sees; per-sender order
//! through a hook with random latency; a hanging backend bounded by the
//! timeout under both failure policies; every request signed; and the
//! events feed (`events.rs`).

mod backend;
mod events;

use std::time::Duration;

use backend::{Backend, SECRET};
use roomnode::config::HookFailure;
use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::ws::{join, refused_join};
use testkit::{WsClient, next};

const WAIT: Duration = Duration::from_secs(10);

async fn cluster(backend: &Backend, failure: HookFailure) -> Cluster {
    let url = backend.url.clone();
    Cluster::start_with(1, 1, move |c| {
        c.hooks.join_hook = Some(format!("{url}/join"));
        c.hooks.publish_hook = Some(format!("{url}/publish"));
        c.hooks.hook_secret = Some(SECRET.parse().unwrap());
        c.hooks.hook_timeout = Duration::from_millis(500);
        c.hooks.hook_failure = failure;
    })
    .await
}

async fn url(cluster: &Cluster, room: &str, name: &str) -> String {
    let rec = cluster.record(room).await;
    format!(
        "{}{}?name={name}",
        cluster.owner(room).await.ws_base(),
        rec["path"].as_str().unwrap()
    )
}

async fn send(c: &mut WsClient, body: Value) {
    c.send_json(&json!({"type": "send", "body": body})).await;
}

#[tokio::test]
async fn joins_are_refused_or_renamed_by_the_backend() {
    let backend = Backend::start().await;
    let cluster = cluster(&backend, HookFailure::Closed).await;
    cluster.create_room("gate").await;

    let (status, body) = refused_join(&url(&cluster, "gate", "mallory").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("join_refused")),
        "{body}"
    );
    assert_eq!(body["message"], "banned");

    let (mut a, _) = join(&url(&cluster, "gate", "ann").await).await;
    let (_b, wb) = join(&url(&cluster, "gate", "alias").await).await;
    let joined = next(&mut a, "joined").await;
    assert_eq!(
        (joined["member"].clone(), joined["name"].as_str()),
        (wb["member"].clone(), Some("Alias"))
    );

    let seen = backend.seen();
    assert_eq!(seen.bad_signatures, 0);
    let req = &seen.joins[0];
    assert_eq!(req["type"], "join");
    assert_eq!(req["room"], "gate");
    assert_eq!(req["protocol"], "native");
    assert_eq!(req["query"]["name"], "mallory");
}

#[tokio::test]
async fn rejected_messages_reach_nobody_and_replaced_ones_arrive_replaced() {
    let backend = Backend::start().await;
    let cluster = cluster(&backend, HookFailure::Closed).await;
    cluster.create_room("mod").await;
    let (mut a, wa) = join(&url(&cluster, "mod", "ann").await).await;
    let (mut b, _) = join(&url(&cluster, "mod", "bob").await).await;
    next(&mut a, "joined").await;

    send(&mut a, json!("a bad word")).await;
    let err = next(&mut a, "error").await;
    assert_eq!(
        (err["code"].as_str(), err["message"].as_str()),
        (Some("rejected"), Some("no bad words"))
    );
    send(&mut a, json!("replace-me")).await;
    send(&mut a, json!("fine")).await;
    // bob sees seq 1 "replaced", then seq 2 "fine": never the rejected one.
    let m1 = next(&mut b, "message").await;
    assert_eq!(
        (m1["seq"].as_u64(), m1["body"].clone()),
        (Some(1), json!("replaced"))
    );
    let m2 = next(&mut b, "message").await;
    assert_eq!(
        (m2["seq"].as_u64(), m2["body"].clone()),
        (Some(2), json!("fine"))
    );

    let seen = backend.seen();
    assert_eq!(seen.bad_signatures, 0);
    assert_eq!(seen.publishes[0]["member"], wa["member"]);
    assert_eq!(seen.publishes[0]["name"], "ann");
    assert_eq!(seen.publishes[0]["body"], "a bad word");
}

#[tokio::test]
async fn each_senders_order_is_kept_through_a_hook_with_random_latency() {
    let backend = Backend::start().await;
    let cluster = cluster(&backend, HookFailure::Closed).await;
    cluster.create_room("order").await;
    let (mut reader, _) = join(&url(&cluster, "order", "reader").await).await;
    let mut senders = Vec::new();
    for s in 0..3 {
        let (c, w) = join(&url(&cluster, "order", &format!("s{s}")).await).await;
        senders.push((c, w["member"].as_str().unwrap().to_owned()));
    }
    let per_sender = [67, 67, 66];
    for ((c, _), n) in senders.iter_mut().zip(per_sender) {
        for i in 0..n {
            send(c, json!({"i": i})).await;
        }
    }
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    let mut seqs = Vec::new();
    while seqs.len() < 200 {
        let v = reader.recv_json(WAIT).await;
        if v["type"] != "message" {
            continue;
        }
        seqs.push(v["seq"].as_u64().unwrap());
        let from = v["from"].as_str().unwrap().to_owned();
        let i = v["body"]["i"].as_i64().unwrap();
        let prev = last.insert(from.clone(), i).unwrap_or(-1);
        assert_eq!(i, prev + 1, "{from}'s messages in order");
    }
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    assert_eq!(backend.seen().publishes.len(), 200);
}

#[tokio::test]
async fn a_hanging_backend_costs_a_join_the_timeout_and_the_policy_decides() {
    let backend = Backend::start().await;
    let closed = cluster(&backend, HookFailure::Closed).await;
    closed.create_room("hang").await;
    let started = tokio::time::Instant::now();
    let (status, body) = refused_join(&url(&closed, "hang", "slowpoke").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("hook_unavailable")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by --hook-timeout"
    );
    // Meanwhile the room goes on.
    let (mut a, _) = join(&url(&closed, "hang", "ann").await).await;
    send(&mut a, json!("still here")).await;
    assert_eq!(next(&mut a, "message").await["body"], "still here");

    let open = cluster(&backend, HookFailure::Open).await;
    open.create_room("hang").await;
    let (_c, welcome) = join(&url(&open, "hang", "slowpoke").await).await;
    assert!(
        welcome["member"].is_string(),
        "admitted when the hook fails open"
    );
}

#[tokio::test]
async fn socketio_joins_and_events_go_through_the_hooks() {
    let backend = Backend::start().await;
    let cluster = cluster(&backend, HookFailure::Closed).await;
    let rec = cluster.create_room("sio").await;
    let sio = format!(
        "{}{}/socket.io/?EIO=4&transport=websocket",
        cluster.owner("sio").await.ws_base(),
        rec["path"].as_str().unwrap()
    );
    let open = async || {
        let mut c = WsClient::connect(&sio).await.unwrap();
        c.recv_message(WAIT).await.expect("open packet");
        c
    };
    let text = async |c: &mut WsClient| loop {
        match c.recv_message(WAIT).await {
            Some(testkit::ws::tungstenite::Message::Text(t)) if t.as_str() == "2" => {
                c.send_text("3").await
            }
            Some(testkit::ws::tungstenite::Message::Text(t)) => return t.to_string(),
            other => panic!("{other:?}"),
        }
    };
    let mut m = open().await;
    m.send_text(r#"40{"name":"mallory"}"#).await;
    let refusal = text(&mut m).await;
    let refusal: Value = serde_json::from_str(refusal.strip_prefix("44").unwrap()).unwrap();
    assert_eq!(
        refusal,
        json!({"message": "banned", "data": {"code": "join_refused"}})
    );

    let mut a = open().await;
    a.send_text(r#"40{"name":"alias"}"#).await;
    assert!(text(&mut a).await.starts_with("40{"));
    let mut b = open().await;
    b.send_text(r#"40{"name":"bob"}"#).await;
    assert!(text(&mut b).await.starts_with("40{"));

    a.send_text(r#"421["chat","bad"]"#).await;
    assert_eq!(
        text(&mut a).await,
        r#"431[{"error":"rejected","reason":"no bad words"}]"#
    );
    a.send_text(r#"422["chat","good"]"#).await;
    assert_eq!(text(&mut a).await, r#"432[{"seq":1}]"#);
    assert_eq!(text(&mut b).await, r#"42["chat","good","1"]"#);
    let seen = backend.seen();
    assert_eq!(seen.bad_signatures, 0);
    assert!(
        seen.joins
            .iter()
            .any(|j| j["protocol"] == "socketio" && j["name"] == "alias")
    );
    let ev = seen
        .publishes
        .iter()
        .find(|p| p["event"] == "chat")
        .expect("an event");
    assert_eq!(ev["body"], json!({"event": "chat", "args": ["bad"]}));
}
