//! The publish hook for every protocol: before a member's message is
//! accepted, the backend accepts it, replaces its body, or rejects it with
//! a reason (and nobody else sees it). Callers keep each sender's messages
//! in order by asking about one message of a sender at a time; senders do
//! not wait for each other (up to `--publish-hook-concurrency` calls).

use proto::hooks::PublishRequest;
use serde_json::value::RawValue;

use crate::hooks::Verdict;
use crate::node::Node;
use crate::room::Room;

/// What becomes of a message.
pub(crate) enum Decision {
    /// Accept it, with this body instead when the backend gave one.
    Accept(Option<Box<RawValue>>),
    /// Rejected by the backend, for this reason.
    Reject(String),
    /// The hook failed and `--hook-failure closed`: not accepted; why.
    Unavailable(String),
}

/// Asks the publish hook about member `key`'s `body` (a Socket.IO
/// `event`'s native body); accepted as it is without a publish hook.
pub(crate) async fn ask(
    node: &Node,
    room: &Room,
    key: u64,
    body: &RawValue,
    event: Option<String>,
) -> Decision {
    let Some(hooks) = node.hooks().filter(|h| h.has_publish()) else {
        return Decision::Accept(None);
    };
    let Some((member, name)) = room.identity(key) else {
        // Gone meanwhile: the room refuses the message itself.
        return Decision::Accept(None);
    };
    let req = PublishRequest {
        kind: "publish".into(),
        room: room.id().to_string(),
        member: member.to_string(),
        name: name.map(|n| n.to_string()),
        body: body.to_owned(),
        event,
    };
    match hooks.publish(&req).await {
        Verdict::Answer(a) if a.allow => Decision::Accept(a.body),
        Verdict::Answer(a) => Decision::Reject(
            a.reason
                .unwrap_or_else(|| "the application rejected this message".into()),
        ),
        Verdict::FailedOpen => Decision::Accept(None),
        Verdict::FailedClosed(why) => Decision::Unavailable(why),
    }
}

/// Whether `node` asks about messages before accepting them.
pub(crate) fn on(node: &Node) -> bool {
    node.hooks().is_some_and(|h| h.has_publish())
}
