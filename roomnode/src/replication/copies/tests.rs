//! Unit tests of [`super::Copies`]: what a replica applies, refuses, and
//! hands over on promotion.

use std::sync::Arc;

use proto::handoff::{PublishedKey, RoomSnapshot};
use proto::record::RoomRecord;
use proto::replication::{Ack, Batch, Refused};

use super::*;
use crate::config::Config;
use crate::replication::Replication;
use crate::room::limits::RoomLimits;

fn id(s: &str) -> InstanceId {
    s.parse().unwrap()
}

/// Copies and (empty) hosted rooms of node `me`.
fn node(me: &str) -> (Copies, Rooms) {
    let me = id(me);
    let limits = RoomLimits::new(&Config::new(me, "http://node".into()));
    let metrics = Arc::new(Metrics::new(me));
    let copies = Copies::new(limits.history, metrics.clone());
    let replication = Replication::new(me, None, copies.clone(), metrics.clone());
    (
        copies.clone(),
        Rooms::new(limits, metrics, None, replication),
    )
}

fn frame(seq: u64) -> String {
    format!(r#"{{"type":"message","room":"r","seq":{seq},"from":"m1","body":{seq}}}"#)
}

fn snapshot(epoch: u64, seq: u64) -> RoomSnapshot {
    RoomSnapshot {
        room: "r".parse().unwrap(),
        epoch,
        stream: "s1".into(),
        seq,
        history: (1..=seq).map(frame).collect(),
        members: 2,
        published: vec![PublishedKey {
            key: "k0".into(),
            seq: 1,
            age_ms: 1000,
        }],
    }
}

/// Applies `items` (JSON) from `from`; the refusals as (seq, reason).
fn apply(copies: &Copies, hosted: &Rooms, from: &str, items: &str) -> Vec<(u64, Refused)> {
    let number = crate::replication::link::next_number();
    let text = format!(r#"{{"from":"{from}","batch":{number},"items":[{items}]}}"#);
    let batch: Batch<'_> = serde_json::from_str(&text).unwrap();
    copies
        .apply(batch, hosted)
        .refused
        .into_iter()
        .map(|r| (r.seq, r.reason))
        .collect()
}

fn copy(epoch: u64, seq: u64) -> String {
    format!(
        r#"{{"copy":{}}}"#,
        serde_json::to_string(&snapshot(epoch, seq)).unwrap()
    )
}

fn append(epoch: u64, seq: u64, key: Option<&str>) -> String {
    let key = key.map_or(String::new(), |k| format!(r#""key":"{k}","#));
    format!(
        r#"{{"append":{{"room":"r","epoch":{epoch},"seq":{seq},"members":3,{key}"frame":{}}}}}"#,
        frame(seq)
    )
}

#[test]
fn a_copy_then_appends_in_order_are_promoted_whole() {
    let (copies, hosted) = node("i2");
    let items = [copy(4, 2), append(4, 3, Some("k3")), append(4, 4, None)].join(",");
    assert_eq!(apply(&copies, &hosted, "i1", &items), vec![]);
    assert!(
        copies.promote(&"r".parse().unwrap(), 4).is_none(),
        "same epoch"
    );
    let s = copies.promote(&"r".parse().unwrap(), 5).expect("a copy");
    assert_eq!(
        (s.epoch, s.seq, s.stream.as_str(), s.members),
        (5, 4, "s1", 3)
    );
    assert_eq!(s.history, (1..=4).map(frame).collect::<Vec<_>>());
    let keys: Vec<(&str, u64)> = s
        .published
        .iter()
        .map(|k| (k.key.as_str(), k.seq))
        .collect();
    assert_eq!(keys, vec![("k0", 1), ("k3", 3)]);
    assert!(
        s.published[0].age_ms >= 1000,
        "ages go on: {:?}",
        s.published
    );
    assert!(copies.promote(&"r".parse().unwrap(), 5).is_none(), "taken");
}

#[test]
fn an_append_that_does_not_follow_is_missing() {
    let (copies, hosted) = node("i2");
    // No copy yet.
    assert_eq!(
        apply(&copies, &hosted, "i1", &append(1, 1, None)),
        vec![(1, Refused::Missing)]
    );
    apply(&copies, &hosted, "i1", &copy(1, 2));
    // A gap, a copy from another owner at the same epoch, a later epoch.
    let items = [append(1, 4, None), append(2, 3, None)].join(",");
    assert_eq!(
        apply(&copies, &hosted, "i1", &items),
        vec![(4, Refused::Missing), (3, Refused::Missing)]
    );
    assert_eq!(
        apply(&copies, &hosted, "i3", &append(1, 3, None)),
        vec![(3, Refused::Missing)]
    );
    assert_eq!(apply(&copies, &hosted, "i1", &append(1, 3, None)), vec![]);
}

#[test]
fn an_older_epoch_is_fenced_by_a_newer_copy_or_a_hosted_room() {
    let (copies, hosted) = node("i2");
    apply(&copies, &hosted, "i3", &copy(5, 1));
    assert_eq!(
        apply(
            &copies,
            &hosted,
            "i1",
            &[append(4, 2, None), copy(4, 9)].join(",")
        ),
        vec![(2, Refused::Fenced), (9, Refused::Fenced)]
    );
    // Promoted here at epoch 6: the owner of epoch 5 is fenced too.
    let s = copies.promote(&"r".parse().unwrap(), 6).unwrap();
    let rec = RoomRecord {
        id: "r".parse().unwrap(),
        node: id("i2"),
        epoch: 6,
        private: false,
        created_at: 0,
    };
    hosted.host(&rec, Some(s));
    assert_eq!(
        apply(&copies, &hosted, "i3", &append(5, 2, None)),
        vec![(2, Refused::Fenced)]
    );
    assert_eq!(
        apply(&copies, &hosted, "i3", &copy(5, 2)),
        vec![(2, Refused::Fenced)]
    );
}

#[test]
fn forget_drops_only_the_owners_own_epoch() {
    let (copies, hosted) = node("i2");
    let r: RoomId = "r".parse().unwrap();
    apply(&copies, &hosted, "i1", &copy(3, 1));
    apply(
        &copies,
        &hosted,
        "i1",
        r#"{"forget":{"room":"r","epoch":2}}"#,
    );
    apply(
        &copies,
        &hosted,
        "i3",
        r#"{"forget":{"room":"r","epoch":3}}"#,
    );
    assert!(copies.promote(&r, 4).is_some(), "kept");
    apply(&copies, &hosted, "i1", &copy(3, 1));
    apply(
        &copies,
        &hosted,
        "i1",
        r#"{"forget":{"room":"r","epoch":3}}"#,
    );
    assert!(copies.promote(&r, 4).is_none(), "forgotten");
}

#[test]
fn a_batch_sent_again_gets_its_first_answer_and_an_overtaken_one_is_stale() {
    let (copies, hosted) = node("i2");
    let batch = |n: u64, items: &str| -> Ack {
        let text = format!(r#"{{"from":"i1","batch":{n},"items":[{items}]}}"#);
        copies.apply(serde_json::from_str(&text).unwrap(), &hosted)
    };
    assert_eq!(
        batch(10, &append(1, 1, None)).refused.len(),
        1,
        "no copy yet"
    );
    assert_eq!(batch(10, &append(1, 1, None)).refused.len(), 1, "again");
    assert!(batch(11, &copy(1, 2)).refused.is_empty());
    // Batch 11 again: its first answer, and nothing applied now.
    let again = batch(11, &[copy(1, 2), append(1, 3, None)].join(","));
    assert!(again.refused.is_empty() && !again.stale);
    assert!(
        batch(12, &append(1, 3, None)).refused.is_empty(),
        "3 was not applied by 11"
    );
    assert!(batch(11, &copy(1, 2)).stale, "overtaken by 12");
    assert!(batch(10, &copy(1, 1)).stale);
    let s = copies.promote(&"r".parse().unwrap(), 2).unwrap();
    assert_eq!(s.seq, 3, "the stale copy did not go back to seq 2");
}

#[test]
fn copies_of_owners_gone_long_ago_are_swept() {
    let (copies, hosted) = node("i2");
    let r: RoomId = "r".parse().unwrap();
    apply(&copies, &hosted, "i1", &copy(1, 1));
    copies.sweep(|_| false, Duration::from_secs(60));
    assert!(copies.promote(&r, 2).is_some(), "recent: kept for failover");
    apply(&copies, &hosted, "i1", &copy(1, 1));
    copies.sweep(|o| o == id("i1"), Duration::ZERO);
    assert!(copies.promote(&r, 2).is_some(), "owner alive: kept");
    apply(&copies, &hosted, "i1", &copy(1, 1));
    copies.sweep(|_| false, Duration::ZERO);
    assert!(copies.promote(&r, 2).is_none(), "owner gone: swept");
}
