//! A member: one client's connection to one room, from its admission to
//! the goodbye.
//!
//! Layout:
//! - `admission`: whether a client may join a room here, for every
//!   protocol: the checks, their order, the slots they reserve.
//! - `join_hook`, `publish_hook`: the application's say on a join and on
//!   a message, for every protocol.
//! - `upgrade`: the WebSocket handshake, keeping the raw connection.
//! - `session`: one native member's WebSocket: joins it to the room, reads
//!   its frames, runs its writes.
//! - `outlet`: a member's outgoing bytes: frames written straight by the
//!   broadcasting thread, or queued when the socket is full.
//! - `conn`: the connection under tungstenite, writing through the outlet.
//! - `close`: how a connection ends (close codes, reasons, last frames).
//! - `limits`: connections and handshakes per node, joins per room and
//!   messages per connection.

pub(crate) mod admission;
pub(crate) mod close;
pub(crate) mod conn;
pub(crate) mod join_hook;
pub(crate) mod limits;
pub(crate) mod outlet;
pub(crate) mod publish_hook;
pub(crate) mod session;
pub(crate) mod upgrade;
