//! Connection state recovery over the room's stream: `pid` names the
//! stream and the member, offsets are seqs; a recovered member gets its
//! own `pid` back and what it missed, not what it sent.

use serde_json::{Value, json};
use testkit::inproc::Cluster;

use super::{Sio, sio_url};

/// `{pid, offset}` as socket.io-client sends them when it reconnects.
fn resume(pid: &Value, offset: u64) -> Value {
    json!({"pid": pid, "offset": offset.to_string()})
}

#[tokio::test]
async fn a_reconnect_with_pid_and_offset_gets_what_it_missed_before_live_traffic() {
    let cluster = Cluster::start(1, 1).await;
    let url = sio_url(&cluster, "rec").await;
    let (mut a, first) = Sio::joined(&url, None).await;
    let (mut b, _) = Sio::joined(&url, None).await;

    b.send(r#"2["seen",1]"#).await;
    assert_eq!(a.text().await, r#"2["seen",1,"1"]"#);
    a.send(r#"2["mine"]"#).await;
    assert_eq!(b.text().await, r#"2["mine","2"]"#);
    drop(a);
    // Seen by b: a's member has left once its transport is gone.
    let (mut probe, _) = Sio::joined(&url, None).await;
    for i in 0..3 {
        b.send(&format!(r#"2["missed",{i}]"#)).await;
    }
    for i in 0..3 {
        assert_eq!(
            probe.text().await,
            format!(r#"2["missed",{i},"{}"]"#, i + 3)
        );
    }

    let mut again = Sio::open(&url).await;
    let answer = again.connect("", Some(&resume(&first["pid"], 1))).await;
    let answer: Value = serde_json::from_str(answer.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(answer["pid"], first["pid"], "recovered: the same pid");
    assert_eq!(answer["sid"], first["sid"], "and the same member id");
    // Its own event (seq 2) is left out, as it never got it live either.
    for i in 0..3 {
        assert_eq!(
            again.text().await,
            format!(r#"2["missed",{i},"{}"]"#, i + 3)
        );
    }
    b.send(r#"2["live"]"#).await;
    assert_eq!(again.text().await, r#"2["live","6"]"#);
    // Its new events carry the same member id.
    again.send(r#"2["back"]"#).await;
    assert_eq!(b.text().await, r#"2["back","7"]"#);
}

#[tokio::test]
async fn a_recovery_that_cannot_happen_answers_a_new_pid_and_replays_nothing() {
    let cluster = Cluster::start_with(1, 1, |c| c.history = 2).await;
    let url = sio_url(&cluster, "norec").await;
    let (mut a, first) = Sio::joined(&url, None).await;
    let (mut b, _) = Sio::joined(&url, None).await;
    for i in 0..4 {
        b.send(&format!(r#"2["n",{i}]"#)).await;
        assert_eq!(a.text().await, format!(r#"2["n",{i},"{}"]"#, i + 1));
    }
    let stream = first["pid"].as_str().unwrap().split('~').next().unwrap();
    let cases = [
        // History no longer reaches back to the offset (2 kept of 4).
        resume(&first["pid"], 1),
        // Another stream.
        resume(
            &json!(format!(
                "0000000000000000~{}",
                first["sid"].as_str().unwrap()
            )),
            3,
        ),
        // A member id that is in the room now (b's is m2).
        resume(&json!(format!("{stream}~m2")), 3),
        // Not a pid of ours.
        json!({"pid": "garbage", "offset": "3"}),
    ];
    for auth in cases {
        let mut s = Sio::open(&url).await;
        let answer = s.connect("", Some(&auth)).await;
        let answer: Value = serde_json::from_str(answer.strip_prefix('0').unwrap()).unwrap();
        assert_ne!(answer["pid"], auth["pid"], "not recovered for {auth}");
        b.send(r#"2["next"]"#).await;
        let got = s.text().await;
        assert!(
            got.starts_with(r#"2["next","#),
            "no replay for {auth}: {got}"
        );
        a.text().await;
    }
}
