//! Which system is under test: a Nexus node or the Socket.IO baseline. The
//! clients, the server handle and the reports all branch on it, so it sits
//! below them.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Nexus,
    Socketio,
}

impl Target {
    /// The `--target` value, as reports and worker arguments spell it.
    pub fn name(self) -> &'static str {
        match self {
            Target::Nexus => "nexus",
            Target::Socketio => "socketio",
        }
    }
}
