//! Delivery of a rendered document to its authority over HTTPS with mutual
//! TLS (CONTRACT.md § 2), with in-place retries.
//!
//! One pooled HTTP client per destination (connections and TLS sessions are
//! reused; no handshake per message). The answer of each attempt is classified
//! in one place, [`classify`], into an [`Outcome`]: delivered, transient (retry
//! with exponential backoff and jitter, honouring `Retry-After`) or refused.
//! Every attempt carries `Idempotency-Key: <submission_id>`, so a retry after a
//! lost answer cannot create a second case at the authority.
//!
//! Talks to the destination's endpoint; logs ids, status codes and causes only.

use std::fmt;
use std::time::Duration;

use backon::BackoffBuilder;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};

use crate::circuit::Circuit;
use crate::config::{DestinationConfig, RetryConfig};
use crate::shutdown::Shutdown;
use crate::tls::{self, TlsError};

/// A `Retry-After` longer than this is shortened: the message is held unacked
/// while it waits.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of an answer body is read (for the `reference` field).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why an attempt may succeed later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// 408, 425, 429, 500, 502, 503, 504.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Connect,
    Tls,
    Timeout,
    /// Any other transport failure (connection reset, protocol error).
    Transport,
    /// The destination's circuit is open: no attempt was made.
    CircuitOpen,
}

impl Cause {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Cause::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Status { status, .. } => write!(f, "status {status}"),
            Cause::Connect => f.write_str("connect error"),
            Cause::Tls => f.write_str("TLS error"),
            Cause::Timeout => f.write_str("timeout"),
            Cause::Transport => f.write_str("transport error"),
            Cause::CircuitOpen => f.write_str("circuit open"),
        }
    }
}

/// The outcome of one attempt, or of a delivery after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200, 201, 202, or 409 (already accepted under this Idempotency-Key).
    Delivered {
        status: u16,
        reference: Option<String>,
    },
    /// Worth another attempt.
    Transient(Cause),
    /// Any other 3xx or 4xx: the authority refused the document.
    Refused { status: u16 },
    /// Shutdown came while waiting for the next attempt: nothing is finished.
    Interrupted(Cause),
}

/// Classify an authority's answer per CONTRACT.md § 2.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Outcome {
    match status {
        200 | 201 | 202 | 409 => Outcome::Delivered {
            status,
            reference: reference(headers, body),
        },
        408 | 425 | 429 | 500 | 502 | 503 | 504 => Outcome::Transient(Cause::Status {
            status,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
        }),
        300..=499 => Outcome::Refused { status },
        // Other 1xx/2xx/5xx answers are outside the contract's table; a
        // server error is the safer reading: try again, never drop.
        _ => Outcome::Transient(Cause::Status {
            status,
            retry_after: None,
        }),
    }
}

/// The authority's reference: JSON body field `reference`, else `Location`.
fn reference(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("reference")?.as_str().map(str::to_owned))
        .filter(|r| !r.is_empty());
    from_body.or_else(|| {
        headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
    })
}

/// `Retry-After` as delta-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// What is sent: the rendered document and the headers' values.
pub struct Request<'a> {
    pub submission_id: &'a str,
    pub service: &'a str,
    pub content_type: &'a str,
    pub body: bytes::Bytes,
}

/// The delivery client of one destination.
pub struct Deliverer {
    destination: String,
    endpoint: reqwest::Url,
    /// Swapped whole when certificates are reloaded ([`Deliverer::reload`]):
    /// requests in flight keep the client (and connections) they started on.
    client: arc_swap::ArcSwap<reqwest::Client>,
    pub retry: RetryConfig,
    pub circuit: Circuit,
    in_flight: tokio::sync::Semaphore,
}

impl Deliverer {
    pub fn new(config: &DestinationConfig, retry: RetryConfig) -> Result<Deliverer, TlsError> {
        let endpoint = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| TlsError::Setup(format!("endpoint {}: {e}", config.endpoint)))?;
        let client = build_client(config, &endpoint, &retry)?;
        Ok(Deliverer {
            destination: config.id.clone(),
            endpoint,
            client: arc_swap::ArcSwap::from_pointee(client),
            circuit: Circuit::new(
                retry.circuit_failure_threshold,
                Duration::from_secs(retry.circuit_open_secs),
            ),
            in_flight: tokio::sync::Semaphore::new(retry.max_in_flight.max(1)),
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
    /// One attempt (1-based `attempt`).
    pub async fn attempt(&self, request: &Request<'_>, attempt: u32) -> Outcome {
        let mut headers = HeaderMap::new();
        let Ok(content_type) = HeaderValue::from_str(request.content_type) else {
            return Outcome::Transient(Cause::Transport);
        };
        headers.insert(CONTENT_TYPE, content_type);
        // Submission ids and services are schema-checked identifiers.
        for (name, value) in [
            ("idempotency-key", request.submission_id),
            ("kurier-submission-id", request.submission_id),
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
        let sent = self
            .client
            .load()
            .post(self.endpoint.clone())
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Outcome::Transient(transport_cause(&e)),
            // (the request body is a cheap `Bytes` clone, not a copy)
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_limited(response).await;
        classify(status, &headers, &body)
    }

    /// Up to `max_attempts` attempts until delivered or refused; between
    /// transient failures waits with exponential backoff and jitter (at least
    /// `Retry-After`). Returns the last outcome and the attempts made; a
    /// transient outcome means "park it". No attempt while the circuit is open.
    /// `prior_attempts`: attempts made in earlier runs (a parked submission),
    /// so that `Kurier-Attempt` counts over the submission's whole life.
    pub async fn deliver(
        &self,
        request: &Request<'_>,
        prior_attempts: u32,
        max_attempts: u32,
        shutdown: &Shutdown,
    ) -> (Outcome, u32) {
        let mut builder = backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(self.retry.initial_delay_ms))
            .with_max_delay(Duration::from_millis(self.retry.max_delay_ms))
            .with_factor(self.retry.multiplier)
            .without_max_times();
        if self.retry.jitter {
            builder = builder.with_jitter();
        }
        let mut delays = builder.build();
        let mut attempt = 0u32;
        loop {
            if !self.circuit.allows() {
                return (Outcome::Transient(Cause::CircuitOpen), attempt);
            }
            attempt += 1;
            let started = std::time::Instant::now();
            let outcome = match self.in_flight.acquire().await {
                Ok(_permit) => {
                    self.attempt(request, prior_attempts.saturating_add(attempt))
                        .await
                }
                Err(_) => Outcome::Transient(Cause::Transport),
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            crate::metrics::delivery(&self.destination, started.elapsed());
            let Outcome::Transient(cause) = outcome else {
                // The authority answered: it is up, whatever it said.
                self.circuit.success();
                return (outcome, attempt);
            };
            self.circuit.failure();
            // No wait after the last attempt in place: the caller parks it.
            let wait = (attempt < max_attempts.max(1)).then(|| {
                let backoff = delays
                    .next()
                    .unwrap_or(Duration::from_millis(self.retry.max_delay_ms));
                match cause.retry_after() {
                    Some(ra) => backoff.max(ra.min(MAX_RETRY_AFTER)),
                    None => backoff,
                }
            });
            tracing::warn!(
                submission_id = request.submission_id,
                destination = %self.destination,
                attempt,
                cause = %cause,
                elapsed_ms,
                retry_in_ms = wait.map(|w| w.as_millis() as u64),
                "delivery attempt failed"
            );
            let Some(wait) = wait else {
                return (Outcome::Transient(cause), attempt);
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return (Outcome::Interrupted(cause), attempt),
            }
        }
    }
}

fn transport_cause(e: &reqwest::Error) -> Cause {
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

async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    body
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
    fn accepted_answers_are_delivered_with_their_reference() {
        for status in [200, 201, 202, 409] {
            let o = classify(
                status,
                &HeaderMap::new(),
                br#"{"reference":"2026-HzL-4711"}"#,
            );
            assert_eq!(
                o,
                Outcome::Delivered {
                    status,
                    reference: Some("2026-HzL-4711".into())
                }
            );
        }
    }

    #[test]
    fn the_reference_falls_back_to_location_then_none() {
        let h = headers(&[("location", "/antraege/77")]);
        assert_eq!(
            classify(201, &h, b"not json"),
            Outcome::Delivered {
                status: 201,
                reference: Some("/antraege/77".into())
            }
        );
        assert_eq!(
            classify(202, &HeaderMap::new(), b""),
            Outcome::Delivered {
                status: 202,
                reference: None
            }
        );
    }

    #[test]
    fn transient_statuses_retry_and_carry_retry_after() {
        for status in [408, 425, 429, 500, 502, 503, 504] {
            assert!(matches!(
                classify(status, &HeaderMap::new(), b""),
                Outcome::Transient(Cause::Status { .. })
            ));
        }
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            classify(503, &h, b""),
            Outcome::Transient(Cause::Status {
                status: 503,
                retry_after: Some(Duration::from_secs(7))
            })
        );
    }

    #[test]
    fn other_3xx_and_4xx_are_refused() {
        for status in [301, 302, 400, 401, 403, 404, 410, 413, 415, 422] {
            assert_eq!(
                classify(status, &HeaderMap::new(), b""),
                Outcome::Refused { status }
            );
        }
    }

    #[test]
    fn retry_after_as_http_date_in_the_past_is_zero() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
