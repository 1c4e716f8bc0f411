//! The events feed: every accepted message, join and leave reaches the
//! backend at least once, in seq order per room, through refusals and an
//! outage; when the backend stays down, the overflow is counted.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::inproc::Cluster;
use testkit::ws::join;
use testkit::{eventually, next};

use super::backend::{Backend, SECRET};
use super::{send, url};

async fn cluster(backend: &Backend, buffer: usize) -> Cluster {
    let url = backend.url.clone();
    Cluster::start_with(1, 1, move |c| {
        c.hooks.events_hook = Some(format!("{url}/events"));
        c.hooks.hook_secret = Some(SECRET.parse().unwrap());
        c.hooks.hook_timeout = Duration::from_millis(300);
        c.events_batch = 7;
        c.events_buffer = buffer;
    })
    .await
}

/// The messages the backend took, deduplicated by (room, stream, seq),
/// with the seqs in the order they came.
fn messages(events: &[Value]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter(|e| e["type"] == "message")
        .filter(|e| {
            seen.insert((
                e["room"].to_string(),
                e["stream"].to_string(),
                e["seq"].as_u64(),
            ))
        })
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn every_accepted_message_arrives_in_order_through_refusals_and_an_outage() {
    let backend = Backend::start().await;
    let cluster = cluster(&backend, 10_000).await;
    cluster.create_room("feed").await;
    backend.seen().fail_next = 3;
    let (mut a, wa) = join(&url(&cluster, "feed", "ann").await).await;
    for i in 0..20 {
        send(&mut a, json!({"i": i})).await;
    }
    for _ in 0..20 {
        next(&mut a, "message").await;
    }
    eventually(
        Duration::from_secs(10),
        "the first 20 messages reached the backend",
        async || messages(&backend.seen().events).len() == 20,
    )
    .await;
    assert_eq!(
        messages(&backend.seen().events),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(backend.seen().refused_batches, 3);

    // Down (no answer at all) for 5 s while 20 more are accepted.
    backend.seen().down_until = Some(tokio::time::Instant::now() + Duration::from_secs(5));
    for i in 20..40 {
        send(&mut a, json!({"i": i})).await;
    }
    eventually(
        Duration::from_secs(40),
        "all 40 reached the backend after its outage",
        async || messages(&backend.seen().events).len() == 40,
    )
    .await;
    let seen = backend.seen();
    assert_eq!(messages(&seen.events), (1..=40).collect::<Vec<_>>());
    assert_eq!(seen.bad_signatures, 0);
    let first = seen.events.iter().find(|e| e["type"] == "message").unwrap();
    assert_eq!(first["from"], wa["member"]);
    assert_eq!(first["room"], "feed");
    assert!(first["stream"].is_string());
    assert_eq!(first["body"], json!({"i": 0}));
    let joined = seen
        .events
        .iter()
        .find(|e| e["type"] == "joined")
        .expect("the join");
    assert_eq!(
        (joined["member"].clone(), joined["name"].clone()),
        (wa["member"].clone(), json!("ann"))
    );
}

#[tokio::test]
async fn a_backend_that_stays_down_costs_dropped_events_counted_not_the_room() {
    let backend = Backend::start().await;
    backend.seen().down_until = Some(tokio::time::Instant::now() + Duration::from_secs(600));
    let cluster = cluster(&backend, 10).await;
    cluster.create_room("full").await;
    let (mut a, _) = join(&url(&cluster, "full", "ann").await).await;
    for i in 0..50 {
        send(&mut a, json!(i)).await;
    }
    // The room does not wait for the backend.
    for i in 0..50 {
        assert_eq!(next(&mut a, "message").await["body"], json!(i));
    }
    let node = cluster.owner("full").await.http();
    let text = testkit::metrics::scrape(&node).await;
    let dropped = testkit::metrics::value(&text, "roomnode_hook_events_dropped_total", &[]);
    // 51 events (a join, 50 messages), 10 buffered, a batch of 7 in flight.
    assert!(dropped >= 34.0, "dropped {dropped}");
}
