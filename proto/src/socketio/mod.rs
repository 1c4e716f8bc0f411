//! Socket.IO v5, as `socket.io-client` 4.x speaks it inside Engine.IO
//! message packets, and how its events meet the native protocol in one room.
//!
//! Layout:
//! - [`packet`]: the packet format (`2/room/lobby,17["chat",…]`), decoded
//!   with socket.io-parser's validity rules and encoded once per recipient
//!   group.
//! - [`bridge`]: the one mapping between a Socket.IO event and a native
//!   message `body`, both ways, so native and Socket.IO members of one room
//!   see each other's messages.
//! - [`recovery`]: connection state recovery over the room's stream: `pid`
//!   and the `"<seq>"` offsets.

pub mod bridge;
pub mod packet;
pub mod recovery;

pub use packet::{Kind, Packet, PacketError};
