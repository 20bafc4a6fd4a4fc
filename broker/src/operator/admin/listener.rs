//! How the admin endpoint is reached: a TLS listener (rustls through
//! tokio-rustls, on the one aws-lc-rs provider) for `/api` and the console,
//! or plain TCP where the configuration allows it, and the client address
//! that the login throttle counts by.
//!
//! TLS handshakes run in tasks of their own, bounded in number and time, so
//! a client that connects and says nothing holds neither the accept loop nor
//! more than a handshake slot for [`HANDSHAKE_TIMEOUT`]. The certificate and
//! key are reloaded when their files change (checked every 2 s) and on
//! SIGHUP, as the destinations' are: new connections get the new
//! certificate; files that do not load are logged and the previous ones stay.
//!
//! Binds sockets, reads the certificate and key files; touches nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::shutdown::Shutdown;

/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once.
const MAX_HANDSHAKES: usize = 64;

/// The TCP peer of a request (for the login throttle and the log).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Bind `listen`, naming the setting when that fails.
pub async fn bind(setting: &'static str, listen: &str) -> Result<TcpListener, super::AdminError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| super::AdminError::Bind {
            setting,
            listen: listen.to_owned(),
            source,
        })
}

/// Connections that have completed their TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `tcp` until `shutdown`, handshaking with `config` (from
    /// `cert` and `key`, which are watched for changes).
    pub fn new(
        tcp: TcpListener,
        config: rustls::ServerConfig,
        (cert, key): (PathBuf, PathBuf),
        shutdown: Shutdown,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let config = Arc::new(ArcSwap::from_pointee(config));
        tokio::spawn(reload(Arc::clone(&config), cert, key, shutdown.clone()));
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (stream, peer) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: wait, go on.
                            tracing::debug!(error = %e, "admin listener: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (TlsAcceptor::from(config.load_full()), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer, error = %e, "admin TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer, "admin TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

/// Swap in a new server configuration when the certificate or key file
/// changes, or on SIGHUP.
async fn reload(
    config: Arc<ArcSwap<rustls::ServerConfig>>,
    cert: PathBuf,
    key: PathBuf,
    shutdown: Shutdown,
) {
    let files =
        || crate::delivery::certs::files_fingerprint([Some(cert.as_path()), Some(key.as_path())]);
    let mut seen = files();
    let mut ticks = crate::delivery::certs::Ticks::new();
    while let Some(forced) = ticks.next(&shutdown).await {
        let now = files();
        if !forced && now == seen {
            continue;
        }
        seen = now;
        match crate::delivery::tls::server_config(&cert, &key) {
            Ok(new) => {
                config.store(Arc::new(new));
                tracing::info!(cert = %cert.display(), "admin TLS certificate reloaded");
            }
            Err(e) => tracing::error!(
                error = %e,
                "admin TLS certificate not reloaded; the previous one stays in use until the files are fixed"
            ),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop has stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
