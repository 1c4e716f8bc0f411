//! The exactly-once verdict on live traffic ([`crate::traffic`]): whatever
//! a scenario did to the cluster (moves, faults, failovers), every body a
//! member saw accepted reached every member of its room once, in one order,
//! at seqs 1, 2, 3, … of its stream, and nothing else did. Scenarios add
//! their own checks (where a room moved, which node fenced) next to it.
//!
//! - [`room`]: every problem with one room's logs.
//! - [`Tally`]: what the clients went through, for a scenario's report.

use std::collections::BTreeMap;

use crate::traffic::ClientLog;

/// Every problem with the traffic of `room` as its `members` logged it, one
/// line each, naming the room and the client; empty when the room is whole.
/// `streams`: how many streams each member must have been in (1; 2 when the
/// room failed over and lost its history, with one `history_gap` each).
///
/// Checked: no client recorded an anomaly; every member was in the same
/// `streams` streams; in each stream the members saw the same messages in
/// the same order at seqs 1..=N, no seq carries two bodies, and no body was
/// accepted twice; no body was accepted in two streams; every body a member
/// sent was accepted; no body came from anyone else.
pub fn room(room: &str, members: &[ClientLog], streams: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let want_gaps = streams.saturating_sub(1);
    let mut wrong_streams = false;
    for c in members {
        if !c.anomalies.is_empty() {
            problems.push(format!("{room} client {}: {:?}", c.id, c.anomalies));
        }
        if c.segments.len() != streams {
            wrong_streams = true;
            problems.push(format!(
                "{room} client {}: {} stream(s) {:?}, expected {streams}; connections {:?}",
                c.id,
                c.segments.len(),
                c.streams(),
                c.ends()
            ));
        }
        if c.stream_changes != want_gaps || c.history_gaps != want_gaps {
            problems.push(format!(
                "{room} client {}: {} stream change(s), {} history_gap(s), expected {want_gaps}",
                c.id, c.stream_changes, c.history_gaps
            ));
        }
    }
    // Stream by stream comparisons need every member in the same number of
    // streams; what is wrong is said above.
    let Some(first) = members.first() else {
        return problems;
    };
    if wrong_streams {
        return problems;
    }
    // (client, n) of every body accepted, and the streams it was accepted in.
    let mut seen: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    for (i, s) in first.segments.iter().enumerate() {
        problems.extend(one_stream(room, i, members));
        let mut count: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for g in &s.got {
            *count.entry((g.c, g.n)).or_default() += 1;
        }
        let dup: Vec<_> = count.iter().filter(|(_, k)| **k > 1).collect();
        if !dup.is_empty() {
            problems.push(format!(
                "{room} stream {i}: bodies accepted more than once ((client, n): times): {dup:?}"
            ));
        }
        for key in count.keys() {
            seen.entry(*key).or_default().push(i);
        }
    }
    let across: Vec<_> = seen.iter().filter(|(_, s)| s.len() > 1).collect();
    if !across.is_empty() {
        problems.push(format!(
            "{room}: bodies accepted in more than one stream ((client, n): streams): {across:?}"
        ));
    }
    for c in members {
        let lost: Vec<u64> = (0..c.sent)
            .filter(|n| !seen.contains_key(&(c.id, *n)))
            .collect();
        if !lost.is_empty() {
            problems.push(format!(
                "{room} client {}: {} of {} bodies never accepted: {lost:?} (resent {:?})",
                c.id,
                lost.len(),
                c.sent,
                c.resent
            ));
        }
    }
    let strangers: Vec<_> = seen
        .keys()
        .filter(|(c, n)| !members.iter().any(|m| m.id == *c && *n < m.sent))
        .collect();
    if !strangers.is_empty() {
        problems.push(format!("{room}: bodies nobody here sent: {strangers:?}"));
    }
    problems
}

/// Stream `i` of `room`: one stream for all members, one sequence, seqs
/// 1..=N, one body per seq.
fn one_stream(room: &str, i: usize, members: &[ClientLog]) -> Vec<String> {
    let mut problems = Vec::new();
    let first = &members[0].segments[i];
    let mut bodies: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for c in members {
        let s = &c.segments[i];
        if s.stream != first.stream {
            problems.push(format!(
                "{room}: stream {i} is {} for client {}, {} for client {}",
                first.stream, members[0].id, s.stream, c.id
            ));
        }
        if s.got != first.got {
            let at = first.got.iter().zip(&s.got).position(|(x, y)| x != y);
            problems.push(format!(
                "{room} stream {i}: clients {} and {} saw different sequences ({} vs {} messages, first difference at index {at:?})",
                members[0].id,
                c.id,
                first.got.len(),
                s.got.len()
            ));
        }
        let seqs: Vec<u64> = s.got.iter().map(|g| g.seq).collect();
        if seqs.iter().copied().ne(1..=seqs.len() as u64) {
            problems.push(format!(
                "{room} stream {i} client {}: seqs are not 1..={}: {seqs:?}",
                c.id,
                seqs.len()
            ));
        }
        for g in &s.got {
            let body = *bodies.entry(g.seq).or_insert((g.c, g.n));
            if body != (g.c, g.n) {
                problems.push(format!(
                    "{room} stream {i}: seq {} carries two bodies, (client, n) {body:?} and {:?}",
                    g.seq,
                    (g.c, g.n)
                ));
            }
        }
    }
    problems
}

/// What the clients of a run went through, summed over every client.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages per room, per stream, as its first member saw them.
    pub messages: BTreeMap<String, Vec<usize>>,
    /// Connections after the first join.
    pub reconnects: usize,
    /// Join attempts that failed.
    pub join_failures: usize,
    /// Bodies sent again after a replay showed them not accepted.
    pub resent: usize,
    /// `room_moving` refusals.
    pub room_moving: usize,
    /// `not_accepted` refusals.
    pub not_accepted: usize,
    /// Bodies neither accepted nor refused when a connection ended.
    pub unanswered: usize,
    /// Welcomes into a new stream.
    pub stream_changes: usize,
    /// `history_gap` errors.
    pub history_gaps: usize,
    /// How connections ended (`close 1012`, `moved /i4/room/x`, `transport
    /// error`, …), counted.
    pub ends: BTreeMap<String, usize>,
}

impl Tally {
    /// The tally of every room's logs.
    pub fn of(logs: &BTreeMap<String, Vec<ClientLog>>) -> Self {
        let mut t = Self::default();
        for (room, members) in logs {
            if let Some(first) = members.first() {
                let per_stream = first.segments.iter().map(|s| s.got.len()).collect();
                t.messages.insert(room.clone(), per_stream);
            }
            for c in members {
                t.reconnects += c.conns.len().saturating_sub(1);
                t.join_failures += c.join_failures;
                t.resent += c.resent.len();
                t.room_moving += c.room_moving;
                t.not_accepted += c.not_accepted;
                t.unanswered += c.unanswered;
                t.stream_changes += c.stream_changes;
                t.history_gaps += c.history_gaps;
                for e in c.ends() {
                    let kind = if e.starts_with("transport error") {
                        "transport error"
                    } else {
                        e
                    };
                    *t.ends.entry(kind.to_owned()).or_default() += 1;
                }
            }
        }
        t
    }

    /// Messages in all rooms.
    pub fn total(&self) -> usize {
        self.messages.values().flatten().sum()
    }

    /// The fewest and the most messages in one room.
    pub fn least_and_most(&self) -> (usize, usize) {
        self.messages
            .values()
            .map(|m| m.iter().sum::<usize>())
            .fold((usize::MAX, 0), |(lo, hi), k| (lo.min(k), hi.max(k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{Got, Segment};

    fn member(id: u64, sent: u64, got: &[(u64, u64, u64)]) -> ClientLog {
        ClientLog {
            id,
            sent,
            segments: vec![Segment {
                stream: "s1".into(),
                got: got.iter().map(|&(seq, c, n)| Got { seq, c, n }).collect(),
                ..Segment::default()
            }],
            ..ClientLog::default()
        }
    }

    #[test]
    fn a_whole_room_has_no_problem() {
        let got = [(1, 0, 0), (2, 1, 0), (3, 0, 1)];
        let members = [member(0, 2, &got), member(1, 1, &got)];
        assert_eq!(room("r", &members, 1), Vec::<String>::new());
    }

    #[test]
    fn lost_duplicated_and_foreign_bodies_are_problems() {
        let got = [(1, 0, 0), (2, 0, 0), (3, 7, 0)];
        let members = [member(0, 2, &got), member(1, 1, &got)];
        let problems = room("r", &members, 1).join("\n");
        assert!(problems.contains("accepted more than once"), "{problems}");
        assert!(
            problems.contains("client 0: 1 of 2 bodies never accepted: [1]"),
            "{problems}"
        );
        assert!(
            problems.contains("client 1: 1 of 1 bodies never accepted"),
            "{problems}"
        );
        assert!(
            problems.contains("bodies nobody here sent: [(7, 0)]"),
            "{problems}"
        );
    }

    #[test]
    fn members_that_disagree_are_problems() {
        let members = [
            member(0, 1, &[(1, 0, 0), (2, 1, 0)]),
            member(1, 1, &[(1, 1, 0), (3, 0, 0)]),
        ];
        let problems = room("r", &members, 1).join("\n");
        assert!(problems.contains("different sequences"), "{problems}");
        assert!(
            problems.contains("seqs are not 1..=2: [1, 3]"),
            "{problems}"
        );
        assert!(problems.contains("seq 1 carries two bodies"), "{problems}");
        assert!(room("r", &members, 2).join("\n").contains("expected 2"));
    }
}
