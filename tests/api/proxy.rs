//! A TCP proxy a test can cut (and restore), to take PostgreSQL or Redis away from a
//! running node.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Proxy {
            addr: listener.local_addr().expect("addr"),
            upstream,
            tasks: Arc::default(),
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
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
