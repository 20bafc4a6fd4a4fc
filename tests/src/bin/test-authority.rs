//! The test authority: a small Fachverfahren stand-in that serves HTTPS and
//! requires a client certificate from the configured CA, as a real one would.
//!
//! - `POST <any path>`: 201 with `{"reference": "…"}` and a `Location`; 409
//!   with the same reference when the `Idempotency-Key` was accepted before.
//! - Behaviour by path, so one process can play several authorities:
//!   `/reject/<status>` always answers `<status>`; `/fail/<n>` answers 503
//!   (`Retry-After: 1`) to the first `n` attempts of each submission, then
//!   accepts; `/down` always answers 503 without `Retry-After` (an
//!   outage); `/hostile-reference` accepts with a 64 KiB reference that
//!   holds NUL and escape bytes; `/flaky/<percent>` answers that
//!   share of all requests, at random, 503 without `Retry-After` and accepts
//!   the rest; `/capacity/<n>/<ms>` serves at most `n` requests at a time,
//!   each taking `ms` milliseconds before it is accepted, and answers a
//!   request beyond `n` 503 at once (no `Retry-After`). Paths that are not
//!   `/reject` also follow the global mode, set at runtime on the control
//!   port (`fail` answers every such request with its status).
//! - Control port (plain HTTP, loopback): `PUT /mode` with
//!   `{"mode": "accept"|"fail"|"reject"|"slow", "status": 503, "delay_ms": 200,
//!   "retry_after": 1}`,
//!   `GET /requests` (every request with headers, status, arrival in ms since
//!   the Unix epoch and since the authority started, and the body in base64;
//!   `GET /requests?bodies=0` leaves the bodies out), `GET /stats` (totals;
//!   per path: requests, status counts, created, conflicts, refused, served,
//!   the most requests in flight at once; per Idempotency-Key: how often it
//!   was accepted as new with 201, which must never be more than once),
//!   `DELETE /requests`.
//!
//! Prints one JSON line `{"https": "…", "control": "…"}` once it listens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "HTTPS test authority with required client certificates")]
struct Args {
    /// HTTPS address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Plain HTTP control address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8444")]
    control: SocketAddr,
    /// Server certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Server key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// CA whose client certificates are accepted (PEM).
    #[arg(long)]
    client_ca: PathBuf,
    /// Write each accepted document to `DIR/<submission id>.xml`.
    #[arg(long)]
    inbox: Option<PathBuf>,
    /// Keep request bodies for `GET /requests` (tests need them).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    keep_bodies: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, Default)]
struct Mode {
    mode: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Clone, Serialize)]
struct Logged {
    path: String,
    idempotency_key: Option<String>,
    submission_id: Option<String>,
    service: Option<String>,
    attempt: Option<String>,
    content_type: Option<String>,
    /// W3C trace context, if the request carried one.
    traceparent: Option<String>,
    status: u16,
    body_base64: Option<String>,
    body_len: usize,
    /// Arrival, milliseconds since the Unix epoch.
    received_at_ms: u128,
    /// Arrival, milliseconds since the authority started.
    since_start_ms: u128,
}

/// What happened on one path (one authority, when a process plays several).
#[derive(Clone, Default, Serialize)]
struct PathStats {
    requests: u64,
    /// Answer status → count.
    statuses: std::collections::BTreeMap<u16, u64>,
    /// Accepted as new (201).
    created: u64,
    /// Answered 409: the Idempotency-Key had been accepted before.
    conflicts: u64,
    /// `/capacity`: answered 503 at once because `n` were being served.
    refused: u64,
    /// `/capacity`: given a slot and then accepted (201 or 409).
    served: u64,
    /// Requests of this path being answered right now, and the most at once.
    in_flight: u64,
    max_in_flight: u64,
    /// `/capacity`: requests holding a slot right now, and the most at once.
    in_service: u64,
    max_in_service: u64,
}

#[derive(Default)]
struct State {
    mode: Mode,
    accepted: HashMap<String, String>,
    attempts: HashMap<String, u32>,
    created_per_key: HashMap<String, u32>,
    requests: Vec<Logged>,
    next_reference: u64,
    paths: HashMap<String, PathStats>,
    /// xorshift64 state for `/flaky`.
    rng: u64,
}

impl State {
    /// A number in 0..below (xorshift64: good enough to pick failures).
    fn random_below(&mut self, below: u64) -> u64 {
        let mut x = self.rng.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % below.max(1)
    }

    fn path(&mut self, path: &str) -> &mut PathStats {
        self.paths.entry(path.to_owned()).or_default()
    }
}

/// `/capacity/<n>/<ms>` → (n, ms).
fn capacity_of(path: &str) -> Option<(u64, u64)> {
    let rest = path.strip_prefix("/capacity/")?;
    let (n, ms) = rest.split_once('/')?;
    Some((n.parse().ok()?, ms.trim_end_matches('/').parse().ok()?))
}

/// Gives back a path's in-flight count (and `/capacity` slot) however the
/// request ends, also when the client goes away and the answer is dropped.
struct InFlight {
    authority: Arc<Authority>,
    path: String,
    slot: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.authority.state.lock() {
            let stats = s.path(&self.path);
            stats.in_flight = stats.in_flight.saturating_sub(1);
            if self.slot {
                stats.in_service = stats.in_service.saturating_sub(1);
            }
        }
    }
}

struct Authority {
    started: std::time::Instant,
    state: Mutex<State>,
    inbox: Option<PathBuf>,
    keep_bodies: bool,
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn answer(status: u16, body: String, extra: &[(&str, String)]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    for (k, v) in extra {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

impl Authority {
    async fn receive(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let key = header(&req, "idempotency-key");
        let mut logged = Logged {
            path: path.clone(),
            idempotency_key: key.clone(),
            submission_id: header(&req, "kurier-submission-id"),
            service: header(&req, "kurier-service"),
            attempt: header(&req, "kurier-attempt"),
            content_type: header(&req, "content-type"),
            traceparent: header(&req, "traceparent"),
            status: 0,
            body_base64: None,
            body_len: 0,
            received_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            since_start_ms: self.started.elapsed().as_millis(),
        };
        let mut in_flight = InFlight {
            authority: Arc::clone(&self),
            path: path.clone(),
            slot: false,
        };
        if let Ok(mut s) = self.state.lock() {
            let stats = s.path(&path);
            stats.in_flight += 1;
            stats.max_in_flight = stats.max_in_flight.max(stats.in_flight);
        }
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return answer(400, "{}".into(), &[]),
        };
        logged.body_len = body.len();
        if self.keep_bodies {
            logged.body_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&body));
        }
        let mode = self
            .state
            .lock()
            .map(|s| s.mode.clone())
            .unwrap_or_default();
        let response = match capacity_of(&path) {
            Some((n, ms)) => {
                let admitted = self.state.lock().is_ok_and(|mut s| {
                    let stats = s.path(&path);
                    if stats.in_service < n {
                        stats.in_service += 1;
                        stats.max_in_service = stats.max_in_service.max(stats.in_service);
                        true
                    } else {
                        false
                    }
                });
                if admitted {
                    in_flight.slot = true;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    self.decide(&path, &mode, key.as_deref(), &logged, &body)
                } else {
                    answer(503, r#"{"error":"busy"}"#.into(), &[])
                }
            }
            None => {
                if mode.mode == "slow"
                    && let Some(ms) = mode.delay_ms
                {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                self.decide(&path, &mode, key.as_deref(), &logged, &body)
            }
        };
        logged.status = response.status().as_u16();
        if let Ok(mut s) = self.state.lock() {
            let status = logged.status;
            let stats = s.path(&path);
            stats.requests += 1;
            *stats.statuses.entry(status).or_insert(0) += 1;
            match status {
                201 => stats.created += 1,
                409 => stats.conflicts += 1,
                _ => {}
            }
            if capacity_of(&path).is_some() {
                if in_flight.slot {
                    if matches!(status, 201 | 409) {
                        stats.served += 1;
                    }
                } else {
                    stats.refused += 1;
                }
            }
            s.requests.push(logged);
        }
        drop(in_flight);
        response
    }

    fn decide(
        &self,
        path: &str,
        mode: &Mode,
        key: Option<&str>,
        logged: &Logged,
        body: &Bytes,
    ) -> Response<Full<Bytes>> {
        let Some(key) = key else {
            return answer(400, r#"{"error":"Idempotency-Key missing"}"#.into(), &[]);
        };
        let Ok(mut s) = self.state.lock() else {
            return answer(500, "{}".into(), &[]);
        };
        let attempt = {
            let n = s.attempts.entry(key.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        // An authority whose reference is hostile: 64 KiB with NUL and
        // escape bytes (a receipt must survive it on both databases).
        if path == "/hostile-reference" {
            let reference = format!("\u{0}\u{1b}[31m{}", "R".repeat(64 * 1024));
            let body = serde_json::json!({ "reference": reference }).to_string();
            return answer(201, body, &[]);
        }
        if let Some(status) = path.strip_prefix("/reject/").and_then(|s| s.parse().ok()) {
            return answer(status, r#"{"error":"rejected"}"#.into(), &[]);
        }
        // Down: an outage (no Retry-After), unlike a busy authority.
        if path == "/down" {
            return answer(503, "{}".into(), &[]);
        }
        if let Some(n) = path
            .strip_prefix("/fail/")
            .and_then(|s| s.parse::<u32>().ok())
            && attempt <= n
        {
            return answer(503, "{}".into(), &[("retry-after", "1".into())]);
        }
        if let Some(percent) = path
            .strip_prefix("/flaky/")
            .and_then(|s| s.trim_end_matches('/').parse::<u64>().ok())
            && s.random_below(100) < percent
        {
            return answer(503, r#"{"error":"flaky"}"#.into(), &[]);
        }
        match mode.mode.as_str() {
            "fail" => {
                let mut extra = Vec::new();
                if let Some(ra) = mode.retry_after {
                    extra.push(("retry-after", ra.to_string()));
                }
                return answer(mode.status.unwrap_or(503), "{}".into(), &extra);
            }
            "reject" => return answer(mode.status.unwrap_or(422), "{}".into(), &[]),
            _ => {}
        }
        if let Some(reference) = s.accepted.get(key) {
            let body = serde_json::json!({ "reference": reference }).to_string();
            return answer(409, body, &[]);
        }
        s.next_reference += 1;
        let service = logged.service.clone().unwrap_or_else(|| "x".into());
        let reference = format!("2026-{service}-{}", s.next_reference);
        s.accepted.insert(key.to_owned(), reference.clone());
        *s.created_per_key.entry(key.to_owned()).or_insert(0) += 1;
        if let Some(dir) = &self.inbox {
            let name = logged
                .submission_id
                .clone()
                .filter(|id| id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
                .unwrap_or_else(|| format!("unnamed-{}", s.next_reference));
            let _ = std::fs::write(dir.join(format!("{name}.xml")), body);
        }
        let body = serde_json::json!({ "reference": reference }).to_string();
        answer(
            201,
            body,
            &[("location", format!("/antraege/{}", s.next_reference))],
        )
    }

    async fn control(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let Ok(mut s) = self.state.lock() else {
            return answer(500, "{}".into(), &[]);
        };
        match (method.as_str(), path.as_str()) {
            ("PUT", "/mode") => match serde_json::from_slice::<Mode>(&body) {
                Ok(mode) => {
                    s.mode = mode;
                    answer(200, "{}".into(), &[])
                }
                Err(e) => answer(
                    400,
                    serde_json::json!({"error": e.to_string()}).to_string(),
                    &[],
                ),
            },
            ("GET", "/requests") if query.split('&').any(|p| p == "bodies=0") => {
                let without: Vec<Logged> = s
                    .requests
                    .iter()
                    .map(|r| Logged {
                        body_base64: None,
                        ..r.clone()
                    })
                    .collect();
                answer(
                    200,
                    serde_json::to_string(&without).unwrap_or_default(),
                    &[],
                )
            }
            ("GET", "/requests") => answer(
                200,
                serde_json::to_string(&s.requests).unwrap_or_default(),
                &[],
            ),
            ("DELETE", "/requests") => {
                s.requests.clear();
                answer(200, "{}".into(), &[])
            }
            ("GET", "/stats") => {
                let created: u32 = s.created_per_key.values().sum();
                let body = serde_json::json!({
                    "requests": s.requests.len(),
                    "created": created,
                    "conflicts": s.requests.iter().filter(|r| r.status == 409).count(),
                    "distinct_keys_created": s.created_per_key.len(),
                    "created_per_key_max": s.created_per_key.values().max().copied().unwrap_or(0),
                    // Exactly-once evidence: how often each Idempotency-Key
                    // was accepted as new (201); never more than once.
                    "created_per_key": &s.created_per_key,
                    "accepted_twice": s
                        .created_per_key
                        .iter()
                        .filter(|(_, n)| **n > 1)
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>(),
                    "paths": &s.paths,
                });
                answer(200, body.to_string(), &[])
            }
            _ => answer(404, "{}".into(), &[]),
        }
    }
}

fn tls_config(args: &Args) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.client_ca)? {
        roots.add(cert?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let chain = CertificateDer::pem_file_iter(&args.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&args)?));
    if let Some(dir) = &args.inbox {
        std::fs::create_dir_all(dir)?;
    }
    let authority = Arc::new(Authority {
        started: std::time::Instant::now(),
        state: Mutex::new(State {
            rng: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15)
                | 1,
            mode: Mode {
                mode: "accept".into(),
                ..Mode::default()
            },
            ..State::default()
        }),
        inbox: args.inbox.clone(),
        keep_bodies: args.keep_bodies,
    });
    let https = TcpListener::bind(args.listen).await?;
    let control = TcpListener::bind(args.control).await?;
    println!(
        "{}",
        serde_json::json!({
            "https": https.local_addr()?.to_string(),
            "control": control.local_addr()?.to_string(),
        })
    );

    let control_authority = Arc::clone(&authority);
    tokio::spawn(async move {
        while let Ok((stream, _)) = control.accept().await {
            let a = Arc::clone(&control_authority);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let a = Arc::clone(&a);
                    async move { Ok::<_, std::convert::Infallible>(a.control(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    loop {
        let (stream, _) = https.accept().await?;
        let acceptor = acceptor.clone();
        let a = Arc::clone(&authority);
        tokio::spawn(async move {
            // A client without an acceptable certificate fails here.
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let a = Arc::clone(&a);
                async move { Ok::<_, std::convert::Infallible>(a.receive(req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
