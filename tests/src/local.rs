//! Where a room node or router the kit started listens (127.0.0.1 and a
//! port) and the clients for it, the same for processes ([`crate::cluster`])
//! and services in this process ([`crate::inproc`]): both hold a
//! [`Listening`] or [`ListeningNode`] and dereference to it.

use crate::Http;

/// A router (or any service) on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// Its port.
    pub port: u16,
}

impl Listening {
    /// HTTP client for it.
    pub fn http(&self) -> Http {
        Http::new(self.url("http"))
    }

    /// `ws://127.0.0.1:port`.
    pub fn ws_base(&self) -> String {
        self.url("ws")
    }

    /// `scheme://127.0.0.1:port`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

/// A room node on 127.0.0.1: its instance number and where it listens.
#[derive(Debug, Clone, Copy)]
pub struct ListeningNode {
    /// Its instance number N (`iN`).
    pub n: u16,
    /// Its port.
    pub port: u16,
}

impl ListeningNode {
    /// `iN`.
    pub fn id(&self) -> String {
        format!("i{}", self.n)
    }

    /// HTTP client for the node.
    pub fn http(&self) -> Http {
        self.listening().http()
    }

    /// `ws://127.0.0.1:port`.
    pub fn ws_base(&self) -> String {
        self.listening().ws_base()
    }

    fn listening(&self) -> Listening {
        Listening { port: self.port }
    }
}
