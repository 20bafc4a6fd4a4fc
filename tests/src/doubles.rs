//! What the test doubles and their tests share: serving a double's HTTPS
//! and control ports, the tiny control client, and waiting for a run of
//! submissions to be delivered (all of them, or timed for a FIGURE).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kurier::store::Store;
use tokio::net::TcpListener;

/// A double's request handler.
pub type Handler<S> =
    fn(Arc<S>, Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// Serve `handler` on every connection of `listener`; with `tls`, after
/// the TLS handshake (a client the acceptor refuses is dropped).
pub async fn serve<S: Send + Sync + 'static>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<S>,
    handler: Handler<S>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let (tls, state) = (tls.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(handler(state, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Err(_) => return,
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
        });
    }
}

/// One request to a double's plain-HTTP control port; the body of a 200.
pub async fn control_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<String> {
    // A tiny HTTP/1.1 client over a raw socket keeps the test free of a
    // second TLS-capable client configuration.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: control\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed control answer")?;
    anyhow::ensure!(
        head.contains(" 200 "),
        "control {method} {path}: {head} {body}"
    );
    // hyper may answer chunked; the control bodies are single chunks.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let (_, rest) = body.split_once("\r\n").context("chunk")?;
        let end = rest.rfind("\r\n0\r\n").unwrap_or(rest.len());
        return Ok(rest[..end].to_owned());
    }
    Ok(body.to_owned())
}

/// Wait until every one of `ids` has a `delivered` receipt; panics on any
/// other status or after `timeout` (a bound, not a measurement).
pub async fn await_all_delivered(store: &Store, ids: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for id in ids {
        loop {
            if let Ok(Some(r)) = store.receipt(&crate::sid(id)).await {
                assert_eq!(r.status, "delivered", "{r:?}");
                break;
            }
            assert!(Instant::now() < deadline, "not all delivered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Receipts per second until `n` receipts exist, timed from the first one
/// (start-up does not count); panics after `timeout`.
pub async fn receipt_rate(store: &Store, n: usize, timeout: Duration) -> f64 {
    let mut started = None;
    let deadline = Instant::now() + timeout;
    loop {
        let done = store
            .receipts(None, 100_000)
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        if done > 0 && started.is_none() {
            started = Some((Instant::now(), done));
        }
        if done >= n {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {n} delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, first) = started.expect("set once a receipt exists");
    (n - first) as f64 / t0.elapsed().as_secs_f64()
}
