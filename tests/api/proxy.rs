//! A TCP proxy a test can cut (and restore), to take PostgreSQL or Redis away from a
//! running node; or black-hole (and heal), to make it stop answering without refusing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// False while black-holed: connections are accepted and kept, nothing is forwarded.
    flowing: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Proxy {
            addr: listener.local_addr().expect("addr"),
            upstream,
            tasks: Arc::default(),
            flowing: watch::Sender::new(true),
        };
        proxy.accept(listener);
        proxy
    }

    /// After [`Proxy::cut`]: listens on the same port again (the service is back).
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind proxy");
        self.accept(listener);
    }

    fn accept(&self, listener: TcpListener) {
        let (upstream, registry) = (self.upstream, self.tasks.clone());
        let flowing = self.flowing.subscribe();
        let acceptor = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let flowing = flowing.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(upstream).await {
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(
                            pump(in_read, out_write, flowing.clone()),
                            pump(out_read, in_write, flowing),
                        );
                    }
                });
                registry.lock().expect("tasks").push(conn);
            }
        });
        self.tasks.lock().expect("tasks").push(acceptor);
    }

    /// Stops accepting and drops every proxied connection: the service is gone.
    pub fn cut(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
    }

    /// The network drops everything, as when packets are lost rather than refused: new
    /// connections are accepted and nothing comes back, on them or on open ones.
    pub fn black_hole(&self) {
        self.flowing.send_replace(false);
    }

    /// After [`Proxy::black_hole`]: the network is back, and what waited on open
    /// connections goes through, as after a partition heals.
    pub fn heal(&self) {
        self.flowing.send_replace(true);
    }
}

/// Copies `from` to `to` while the network flows; holds whatever it read otherwise.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut flowing: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if flowing.wait_for(|f| *f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if flowing.wait_for(|f| *f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
