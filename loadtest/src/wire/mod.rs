//! What goes over an agent socket, for both servers: the WebSocket type and
//! its buffer sizes, and (in [`socketio`]) the Engine.IO / Socket.IO framing
//! the baseline speaks. No I/O here: the clients in `agents` use it.

pub mod socketio;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Small buffers: the default 128 KiB read buffer would cost ~2 GiB of client
/// memory for 15,000 sockets. Frames here are tiny.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}
