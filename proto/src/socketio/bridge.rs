//! One Socket.IO event ↔ one native message `body`, so native and
//! Socket.IO members of a room see each other's messages and the room's
//! history (which keeps native frames) can replay to either.
//!
//! - `socket.emit("chat", a, b)` is accepted as the native body
//!   `{"event":"chat","args":[a,b]}`; a binary attachment becomes
//!   `{"_binary":"<base64>"}` in its place.
//! - A native body of exactly that shape is delivered to Socket.IO members
//!   as that event (each `{"_binary":…}` as an attachment); any other body
//!   `B` arrives as the event `"message"` with the one argument `B`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// The event native bodies of another shape are delivered as.
pub const DEFAULT_EVENT: &str = "message";

/// A Socket.IO event: its name (a string, or a number as Socket.IO
/// allows), its arguments with `{"_placeholder":true,"num":N}` where
/// attachment N goes, and the attachments.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's name.
    pub name: Value,
    /// The arguments after the name.
    pub args: Vec<Value>,
    /// Binary attachments, in placeholder order.
    pub attachments: Vec<Vec<u8>>,
}

impl Event {
    /// The native body this event is kept and delivered as.
    pub fn to_body(&self) -> Value {
        let args = self
            .args
            .iter()
            .map(|a| with_binaries(a, &self.attachments))
            .collect();
        json!({ "event": self.name, "args": Value::Array(args) })
    }

    /// The event a native body is delivered to Socket.IO members as.
    pub fn from_body(body: &Value) -> Self {
        if let Some((name, args)) = as_event(body) {
            // Placeholder-like data would be read by socket.io-parser as
            // placeholders of a binary packet (naming attachments that do
            // not exist): such an event goes as a plain EVENT, its
            // `_binary` objects as JSON, where placeholders are data.
            if args.iter().any(has_placeholder_like) {
                return Self {
                    name: name.clone(),
                    args: args.clone(),
                    attachments: Vec::new(),
                };
            }
            let mut attachments = Vec::new();
            let args = args
                .iter()
                .map(|a| with_placeholders(a, &mut attachments))
                .collect();
            return Self {
                name: name.clone(),
                args,
                attachments,
            };
        }
        Self {
            name: Value::String(DEFAULT_EVENT.into()),
            args: vec![body.clone()],
            attachments: Vec::new(),
        }
    }

    /// The packet's JSON array: the name, the arguments, then `extra`
    /// (the recovery offset).
    pub fn to_json_array(&self, extra: Option<&str>) -> String {
        let mut all = Vec::with_capacity(self.args.len() + 2);
        all.push(self.name.clone());
        all.extend(self.args.iter().cloned());
        if let Some(extra) = extra {
            all.push(Value::String(extra.into()));
        }
        Value::Array(all).to_string()
    }
}

/// `{"event": name, "args": [...]}` and nothing else, with a name
/// Socket.IO accepts.
fn as_event(body: &Value) -> Option<(&Value, &Vec<Value>)> {
    let obj = body.as_object()?;
    if obj.len() != 2 {
        return None;
    }
    let name = obj
        .get("event")
        .filter(|n| n.is_string() || n.is_number())?;
    let args = obj.get("args")?.as_array()?;
    Some((name, args))
}

/// Whether `v` holds an object socket.io-parser would take for a
/// placeholder (`_placeholder: true`, whatever else it holds).
fn has_placeholder_like(v: &Value) -> bool {
    match v {
        Value::Object(obj) => {
            obj.get("_placeholder") == Some(&Value::Bool(true))
                || obj.values().any(has_placeholder_like)
        }
        Value::Array(items) => items.iter().any(has_placeholder_like),
        _ => false,
    }
}

fn placeholder_num(v: &Value) -> Option<usize> {
    let obj = v.as_object()?;
    (obj.len() == 2 && obj.get("_placeholder") == Some(&Value::Bool(true)))
        .then(|| obj.get("num")?.as_u64())
        .flatten()
        .map(|n| n as usize)
}

fn binary_of(v: &Value) -> Option<Vec<u8>> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    STANDARD.decode(obj.get("_binary")?.as_str()?).ok()
}

/// `v` with every placeholder replaced by its attachment as `_binary`.
fn with_binaries(v: &Value, attachments: &[Vec<u8>]) -> Value {
    if let Some(bytes) = placeholder_num(v).and_then(|n| attachments.get(n)) {
        return json!({ "_binary": STANDARD.encode(bytes) });
    }
    map_children(v, |c| with_binaries(c, attachments))
}

/// `v` with every `_binary` object moved to `attachments` and replaced by
/// its placeholder.
fn with_placeholders(v: &Value, attachments: &mut Vec<Vec<u8>>) -> Value {
    if let Some(bytes) = binary_of(v) {
        attachments.push(bytes);
        return json!({ "_placeholder": true, "num": attachments.len() - 1 });
    }
    match v {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|c| with_placeholders(c, attachments))
                .collect(),
        ),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, c)| (k.clone(), with_placeholders(c, attachments)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn map_children(v: &Value, f: impl Fn(&Value) -> Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(&f).collect()),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, c)| (k.clone(), f(c)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_a_native_body() {
        let event = Event {
            name: json!("chat"),
            args: vec![
                json!(1),
                json!({"file": {"_placeholder": true, "num": 0}, "n": [true]}),
                json!({"_placeholder": true, "num": 1}),
            ],
            attachments: vec![vec![1, 2, 3], vec![255, 0]],
        };
        let body = event.to_body();
        assert_eq!(
            body,
            json!({"event": "chat", "args": [1, {"file": {"_binary": "AQID"}, "n": [true]}, {"_binary": "/wA="}]})
        );
        assert_eq!(Event::from_body(&body), event);
    }

    #[test]
    fn any_other_body_is_the_message_event() {
        for body in [
            json!("hi"),
            json!({"text": "hi"}),
            json!({"event": "x"}),
            json!(null),
        ] {
            let e = Event::from_body(&body);
            assert_eq!(e.name, json!("message"));
            assert_eq!(e.args, vec![body]);
            assert!(e.attachments.is_empty());
        }
    }

    #[test]
    fn placeholder_like_data_keeps_the_event_plain() {
        let body = json!({"event": "chat", "args": [
            {"_binary": ""},
            {"note": {"_placeholder": true, "num": 1}},
        ]});
        let e = Event::from_body(&body);
        assert!(e.attachments.is_empty());
        assert_eq!(Value::Array(e.args.clone()), body["args"]);
    }

    #[test]
    fn the_packet_array_ends_with_the_offset() {
        let e = Event::from_body(&json!({"event": "chat", "args": ["a", 2]}));
        assert_eq!(e.to_json_array(Some("17")), r#"["chat","a",2,"17"]"#);
        assert_eq!(e.to_json_array(None), r#"["chat","a",2]"#);
    }
}
