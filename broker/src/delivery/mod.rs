//! # Room `delivery`: one attempt to hand a document to its authority
//!
//! Owns the transports (HTTPS with mutual TLS here and in [`tls`], XTA 2 in
//! `xta2`), the certificates they present and check (`certs`), and the
//! classification of every answer into a [`crate::queue::decision::Outcome`].
//! May use `config`, `queue`, `store` (transport message ids), `telemetry`
//! and `domain`; knows nothing of envelopes, pipelines or AMQP.
//!
//! Delivery of a rendered document to its authority over HTTPS with mutual
//! TLS (CONTRACT.md § 2): one attempt at a time, reported as an
//! [`Outcome`].
//!
//! One pooled HTTP client per destination (connections and TLS sessions are
//! reused; no handshake per message). Each attempt passes the destination's
//! circuit and adaptive concurrency limit ([`crate::queue`]), and reports
//! what happened to both; what the outcome means for the submission is
//! decided by [`crate::queue::decision::decide`], not here. Every attempt
//! carries `Idempotency-Key: <submission_id>`, so a retry after a lost answer
//! cannot create a second case at the authority.
//!
//! Talks to the destination's endpoint; logs ids, status codes and causes only.

pub mod answers;
pub(crate) mod certs;
pub mod fit_connect;
pub mod tls;
pub mod xta2;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};

use crate::config::{DestinationConfig, RetryConfig};
use crate::domain::id::{DestinationId, SubmissionId};
use crate::queue::circuit::{Admission, Circuit, CircuitConfig, Health};
use crate::queue::decision::{self, Cause, NotAttempted, Outcome, Policy};
use crate::queue::limit::{Limiter, Signal};
use tls::TlsError;

/// How much of an answer body is read (for the `reference` field).
const MAX_ANSWER_BYTES: usize = 128 * 1024;
/// A paused destination is looked at again after this long.
const PAUSE_RECHECK: Duration = Duration::from_secs(5);

/// The longest authority reference kept, in characters.
pub const MAX_REFERENCE_CHARS: usize = 256;

/// The authority's reference: JSON body field `reference`, else a
/// `Location` that is a valid URI reference. An answer is untrusted input:
/// the reference is cut to [`MAX_REFERENCE_CHARS`] and control characters
/// become U+FFFD ([`reference_was_cut`] tells).
fn reference(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("reference")?.as_str().map(str::to_owned))
        .filter(|r| !r.is_empty());
    let raw = from_body.or_else(|| {
        headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|r| !r.is_empty() && r.parse::<http::Uri>().is_ok())
            .map(str::to_owned)
    })?;
    let mut cut: String = raw
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .take(MAX_REFERENCE_CHARS)
        .collect();
    if raw.chars().count() > MAX_REFERENCE_CHARS {
        cut.pop();
        cut.push('\u{2026}');
    }
    Some(cut)
}

/// Was this reference cut or cleaned by [`reference`]?
pub fn reference_was_cut(reference: &str) -> bool {
    reference.contains('\u{FFFD}')
        || (reference.chars().count() == MAX_REFERENCE_CHARS && reference.ends_with('\u{2026}'))
}

/// Classify an HTTP answer (status, headers, the first bytes of its body).
pub fn classify_answer(status: u16, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let retry_after = retry_after(headers);
    let accepted = matches!(status, 200 | 201 | 202 | 409);
    decision::classify(
        status,
        retry_after,
        if accepted {
            reference(headers, body)
        } else {
            None
        },
    )
}

/// A held message waiting for its next attempt (see [`Deliverer::waiting`]).
pub struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What is sent: the rendered document and the headers' values.
pub struct Request<'a> {
    pub submission_id: &'a SubmissionId,
    pub service: &'a str,
    pub content_type: &'a str,
    pub body: bytes::Bytes,
    /// The portal's W3C `traceparent`, passed on as is (`crate::telemetry::trace`).
    pub traceparent: Option<&'a str>,
    /// The envelope's attachments: FIT-Connect uploads them beside the
    /// document (https and XTA 2 send the document only).
    pub attachments: &'a [kurier_adapters::Attachment<'a>],
}

/// The delivery client of one destination.
pub struct Deliverer {
    destination: DestinationId,
    endpoint: reqwest::Url,
    /// Swapped whole when certificates are reloaded ([`Deliverer::reload`]):
    /// requests in flight keep the client (and connections) they started on.
    client: arc_swap::ArcSwap<reqwest::Client>,
    pub retry: RetryConfig,
    pub policy: Policy,
    pub circuit: Circuit,
    pub limiter: Limiter,
    /// An operator paused the destination (refreshed by the scheduler).
    paused: AtomicBool,
    /// Held messages waiting for their next attempt in place.
    waiting: AtomicUsize,
    /// `transport = "xta2"`: attempts speak XTA 2 (SOAP) over `client`.
    xta2: Option<crate::delivery::xta2::Xta2>,
    /// `transport = "fit-connect"`: attempts go to the Submission API, and
    /// its event log says what the authority decided.
    fit: Option<(fit_connect::FitConnect, fit_connect::EventReader)>,
}

impl Deliverer {
    pub fn new(config: &DestinationConfig, retry: RetryConfig) -> Result<Deliverer, TlsError> {
        let fit = match (
            fit_connect::FitConnect::for_destination(config)?,
            fit_connect::EventReader::for_destination(config, &retry)?,
        ) {
            (Some(fit), Some(events)) => Some((fit, events)),
            _ => None,
        };
        let endpoint = match &fit {
            Some((fit, _)) => fit.api().clone(),
            None => reqwest::Url::parse(&config.endpoint)
                .map_err(|e| TlsError::Setup(format!("endpoint {}: {e}", config.endpoint)))?,
        };
        let client = build_client(config, &endpoint, &retry)?;
        Ok(Deliverer {
            destination: config.id.clone(),
            endpoint,
            client: arc_swap::ArcSwap::from_pointee(client),
            circuit: Circuit::new(CircuitConfig::from(&retry)),
            limiter: Limiter::new(retry.initial_in_flight, retry.max_in_flight),
            policy: Policy::from(&retry),
            paused: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            xta2: crate::delivery::xta2::Xta2::for_destination(config),
            fit,
            retry,
        })
    }

    /// Read the destination's CA, certificate and key again and use them for
    /// new requests. On error the previous client stays in use.
    pub fn reload(&self, config: &DestinationConfig) -> Result<(), TlsError> {
        let client = build_client(config, &self.endpoint, &self.retry)?;
        self.client.store(std::sync::Arc::new(client));
        Ok(())
    }
}

/// The pooled HTTP client of a destination, with its TLS material.
fn build_client(
    config: &DestinationConfig,
    endpoint: &reqwest::Url,
    retry: &RetryConfig,
) -> Result<reqwest::Client, TlsError> {
    if config.transport.as_deref() == Some(fit_connect::TRANSPORT) {
        return fit_connect::client::http_client(config, retry);
    }
    let builder = reqwest::Client::builder()
        .timeout(retry.request_timeout())
        .connect_timeout(retry.connect_timeout())
        .pool_idle_timeout(Duration::from_secs(90))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    let builder = match endpoint.scheme() {
        "https" => {
            let (Some(ca), Some(cert), Some(key)) = (
                config.ca_file.as_deref(),
                config.client_cert_file.as_deref(),
                config.client_key_file.as_deref(),
            ) else {
                return Err(TlsError::Setup(format!(
                    "destination {}: https needs ca_file, client_cert_file and client_key_file",
                    config.id
                )));
            };
            builder
                .tls_backend_preconfigured(tls::client_config(ca, cert, key)?)
                .https_only(true)
        }
        "http" if config.allow_insecure_http => {
            tracing::warn!(destination = %config.id, "plaintext HTTP delivery enabled (development only)");
            builder
        }
        other => {
            return Err(TlsError::Setup(format!(
                "destination {}: scheme {other} is not allowed",
                config.id
            )));
        }
    };
    builder
        .build()
        .map_err(|e| TlsError::Setup(format!("destination {}: {e}", config.id)))
}

impl Deliverer {
    pub fn set_paused(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::Relaxed) != paused {
            tracing::info!(destination = %self.destination, paused, "destination pause changed");
        }
    }

    /// Is there room for one more held message to wait for a retry?
    pub fn room_to_wait(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) < self.retry.max_waiting_in_place
    }

    /// Count a held message as waiting until the guard is dropped.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiting)
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Without making an attempt: how long until one may be made, if it may
    /// not be made now (paused, or the circuit open).
    pub fn blocked_for(&self) -> Option<(NotAttempted, Duration)> {
        if self.is_paused() {
            return Some((NotAttempted::Paused, PAUSE_RECHECK));
        }
        self.circuit
            .wait()
            .map(|wait| (NotAttempted::CircuitOpen, wait))
    }

    /// One attempt, numbered `attempt` over the submission's whole life
    /// (`Kurier-Attempt`), unless the destination is paused or its circuit
    /// open. Waits for a place under the destination's concurrency limit.
    pub async fn attempt(&self, request: &Request<'_>, attempt: u32) -> Outcome {
        if self.is_paused() {
            return Outcome::NotAttempted {
                why: NotAttempted::Paused,
                wait: PAUSE_RECHECK,
            };
        }
        let probe = match self.circuit.admit() {
            Admission::Go { probe } => probe,
            Admission::Wait(wait) => {
                return Outcome::NotAttempted {
                    why: NotAttempted::CircuitOpen,
                    wait,
                };
            }
        };
        let permit = self.limiter.acquire().await;
        let started = Instant::now();
        let outcome = self.send(request, attempt).await;
        let elapsed = started.elapsed();
        let (signal, health, label) = match &outcome {
            Outcome::Accepted { .. } | Outcome::AlreadyAccepted { .. } => {
                (Signal::Good, Health::Answered, "accepted")
            }
            Outcome::Refused { .. } => (Signal::Good, Health::Answered, "refused"),
            Outcome::Busy { .. } => (Signal::Overload, Health::Answered, "busy"),
            // A bare 503 is "busy" or "down" depending on whether the
            // authority answers otherwise: the circuit decides.
            Outcome::Unavailable(Cause::Status(503)) => {
                (Signal::Overload, Health::Overloaded, "unavailable")
            }
            Outcome::Unavailable(_) => (Signal::Overload, Health::Failed, "unavailable"),
            Outcome::NotAttempted { .. } => (Signal::Neutral, Health::Answered, "not_attempted"),
        };
        self.limiter.observe(signal, elapsed);
        drop(permit);
        self.circuit.record(health, probe);
        crate::telemetry::metrics::delivery(&self.destination, label, elapsed);
        outcome
    }

    /// Give the destination's transport the database (XTA 2 keeps its
    /// message ids there); nothing for https.
    pub fn attach_store(&self, store: &crate::store::Store) {
        if let Some(xta2) = &self.xta2 {
            xta2.attach_store(store);
        }
        if let Some((fit, _)) = &self.fit {
            fit.attach_store(store);
        }
    }

    /// Where the transport reports the authority's decision later
    /// (two-stage receipts, [`crate::delivery::answers`]): XTA 2 transport reports;
    /// `None` for https. Uses the destination's current client.
    pub fn report_source(&self) -> Option<Box<dyn crate::delivery::answers::ReportSource + '_>> {
        if let Some((_, events)) = &self.fit {
            return Some(Box::new(events));
        }
        let xta2 = self.xta2.as_ref()?;
        Some(Box::new(
            xta2.reports(self.client.load_full(), &self.endpoint),
        ))
    }

    /// How a refusal's code reads in a dead letter's detail: an HTTP status,
    /// or for XTA 2 the XTA error code.
    pub fn refusal(&self, code: u16) -> String {
        match &self.xta2 {
            Some(_) if code >= 9000 => format!(
                "XTA error code {code} ({})",
                crate::delivery::xta2::classify::describe(code)
            ),
            _ => format!("HTTP {code}"),
        }
    }

    /// The HTTP request and its classified answer.
    async fn send(&self, request: &Request<'_>, attempt: u32) -> Outcome {
        if let Some(xta2) = &self.xta2 {
            return xta2
                .attempt(&self.client.load(), &self.endpoint, request)
                .await;
        }
        if let Some((fit, _)) = &self.fit {
            return fit.attempt(&self.client.load(), request).await;
        }
        let mut headers = HeaderMap::new();
        let Ok(content_type) = HeaderValue::from_str(request.content_type) else {
            return Outcome::Unavailable(Cause::Transport);
        };
        headers.insert(CONTENT_TYPE, content_type);
        // Submission ids and services are schema-checked identifiers.
        for (name, value) in [
            ("idempotency-key", request.submission_id.as_str()),
            ("kurier-submission-id", request.submission_id.as_str()),
            ("kurier-service", request.service),
        ] {
            match HeaderValue::from_str(value) {
                Ok(v) => {
                    headers.insert(name, v);
                }
                Err(_) => return Outcome::Refused { status: 0 },
            }
        }
        headers.insert("kurier-attempt", HeaderValue::from(attempt));
        if let Some(value) = request.traceparent
            && let Ok(value) = HeaderValue::from_str(value)
        {
            headers.insert("traceparent", value);
        }
        let sent = self
            .client
            .load()
            .post(self.endpoint.clone())
            .headers(headers)
            // A cheap `Bytes` clone, not a copy.
            .body(request.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Outcome::Unavailable(transport_cause(&e)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // A body that breaks off is classified by what arrived.
        let (body, _) = read_limited(response, MAX_ANSWER_BYTES).await;
        classify_answer(status, &headers, &body)
    }
}

pub(crate) fn transport_cause(e: &reqwest::Error) -> Cause {
    tracing::debug!(error = ?e, "transport error");
    if e.is_timeout() {
        return Cause::Timeout;
    }
    // A refused handshake (unknown CA, wrong name) is a rustls error somewhere
    // in the chain, often inside nested io::Errors, whose `source()` skips
    // the error they wrap: descend into those explicitly.
    if chain_has_rustls_error(e) {
        return Cause::Tls;
    }
    if e.is_connect() {
        Cause::Connect
    } else {
        Cause::Transport
    }
}

fn chain_has_rustls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && chain_has_rustls_error(inner)
    {
        return true;
    }
    e.source().is_some_and(chain_has_rustls_error)
}

/// An answer's `Retry-After` (seconds or an HTTP date), as every transport
/// reads it.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| decision::parse_retry_after(v, std::time::SystemTime::now()))
}

/// The first `max` bytes of an answer's body (the rest is not read), and
/// the error that broke it off, if one did: each transport decides what a
/// broken-off answer means.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= max {
                    return (body, None);
                }
            }
            Ok(None) => return (body, None),
            Err(e) => return (body, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accepted_answers_carry_their_reference_from_the_body() {
        for status in [200, 201, 202] {
            assert_eq!(
                classify_answer(
                    status,
                    &HeaderMap::new(),
                    br#"{"reference":"2026-HzL-4711"}"#
                ),
                Outcome::Accepted {
                    status,
                    reference: Some("2026-HzL-4711".into())
                }
            );
        }
        assert_eq!(
            classify_answer(409, &HeaderMap::new(), br#"{"reference":"2026-HzL-4711"}"#),
            Outcome::AlreadyAccepted {
                reference: Some("2026-HzL-4711".into())
            }
        );
    }

    #[test]
    fn the_reference_falls_back_to_location_then_none() {
        let h = headers(&[("location", "/antraege/77")]);
        assert_eq!(
            classify_answer(201, &h, b"not json"),
            Outcome::Accepted {
                status: 201,
                reference: Some("/antraege/77".into())
            }
        );
        assert_eq!(
            classify_answer(202, &HeaderMap::new(), b""),
            Outcome::Accepted {
                status: 202,
                reference: None
            }
        );
    }

    #[test]
    fn a_hostile_reference_is_cut_and_cleaned() {
        let long = format!(r#"{{"reference":"{}"}}"#, "x".repeat(70_000));
        let Outcome::Accepted {
            reference: Some(r), ..
        } = classify_answer(201, &HeaderMap::new(), long.as_bytes())
        else {
            panic!("accepted with a reference")
        };
        assert_eq!(r.chars().count(), MAX_REFERENCE_CHARS);
        assert!(reference_was_cut(&r));
        let Outcome::Accepted {
            reference: Some(r), ..
        } = classify_answer(
            201,
            &HeaderMap::new(),
            br#"{"reference":"A\u0000B\u001b[31m"}"#,
        )
        else {
            panic!("accepted with a reference")
        };
        assert_eq!(r, "A\u{FFFD}B\u{FFFD}[31m");
        assert!(reference_was_cut(&r));
        assert!(!reference_was_cut("2026-HzL-4711"));
        // A Location that is not a URI reference is no reference.
        assert_eq!(
            classify_answer(201, &headers(&[("location", "a b")]), b""),
            Outcome::Accepted {
                status: 201,
                reference: None
            }
        );
    }

    #[test]
    fn retry_after_is_read_from_the_header() {
        assert_eq!(
            classify_answer(503, &headers(&[("retry-after", "7")]), b""),
            Outcome::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify_answer(503, &headers(&[("retry-after", "soon")]), b""),
            Outcome::Unavailable(Cause::Status(503))
        );
    }
}
