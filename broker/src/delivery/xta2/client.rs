//! The XTA 2 client of one destination: one delivery attempt is
//! `createMessageId` on the management port (only the first time), then
//! `sendMessage` on the send port, both SOAP 1.2 over the destination's
//! pooled mutual-TLS HTTP client (the same one the `https` transport uses,
//! built by [`crate::delivery::tls`]).
//!
//! The XTA message id is what makes a retry safe: it is created once per
//! submission and destination, stored (`transport_messages`) before the
//! first `sendMessage`, and every later attempt, parked run or restart
//! sends under the same id. A server that already took the message answers
//! 9024 (id already used), which is "already delivered". The id is the
//! receipt's `reference`.
//!
//! Where the destination asks for it (`xta_precheck`), the attempt first
//! asks `checkAccountActive` and/or `lookupService` (management port) and
//! goes no further unless they pass: no message id is created and nothing
//! is sent to an inactive account or a reader that does not offer the
//! service ([`super::classify`] says what their answers mean). A pass is
//! trusted for [`PRECHECK_FRESH`] per destination: accounts and directory
//! entries change over hours, not seconds, and asking before each of
//! hundreds of messages a second would double the management port's load
//! and every delivery's latency. A failed pre-check is not remembered, so
//! the next attempt asks again and sees at once that the account or
//! service is back (backoff and the circuit bound how often that is). A
//! fault 9010–9014 on `createMessageId` or `sendMessage` (what a pre-check
//! would have said) forgets the pass. A retry whose message id is kept
//! passes the pre-checks too before `sendMessage` under that same id: they
//! send nothing, so they cannot make a second message.
//!
//! Logs ids, codes and causes only; the document travels as an MTOM part
//! and is never read here.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::classify::{self, Answer, Availability};
use super::mtom;
use super::soap::{self, MessagePart, MetaData, Party};
use crate::config::{DestinationConfig, XtaPrecheck};
use crate::delivery::Request;
use crate::domain::id::DestinationId;
use crate::queue::decision::{Cause, Outcome};
use crate::store::Store;

/// How much of an answer is read: faults and message ids are small; a
/// transport report with its lists may be longer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The content id of the `Message` part.
const MESSAGE_CID: &str = "message@kurier";
/// The name `transport_messages.transport` records.
pub const TRANSPORT: &str = "xta2";
/// How long the pre-checks' pass is trusted (see the module's text).
pub const PRECHECK_FRESH: Duration = Duration::from_secs(60);

/// The XTA 2 side of a destination (`transport = "xta2"`).
pub struct Xta2 {
    pub(super) destination: DestinationId,
    pub(super) author: Party,
    reader: Party,
    service: String,
    business_scenario: String,
    /// `xta_precheck`: what is asked before a message is created and sent.
    prechecks: Vec<XtaPrecheck>,
    /// When the pre-checks last passed.
    prechecked: Mutex<Option<Instant>>,
    /// Where message ids are kept; attached at start ([`Xta2::attach_store`]).
    store: OnceLock<Store>,
}

impl std::fmt::Debug for Xta2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xta2")
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl Xta2 {
    /// The XTA 2 client of `config`, if its transport is `xta2`. The keys
    /// were checked by `Config::check`; missing ones become empty strings
    /// here and the server refuses them.
    pub fn for_destination(config: &DestinationConfig) -> Option<Xta2> {
        if config.transport.as_deref() != Some(TRANSPORT) {
            return None;
        }
        let kind = config
            .xta_identifier_type
            .clone()
            .unwrap_or_else(|| "xoev".into());
        let party = |id: &Option<String>| Party {
            identifier: id.clone().unwrap_or_default(),
            kind: kind.clone(),
        };
        let service = config.xta_service.clone().unwrap_or_default();
        Some(Xta2 {
            destination: config.id.clone(),
            author: party(&config.xta_author),
            reader: party(&config.xta_reader),
            business_scenario: config
                .xta_business_scenario
                .clone()
                .unwrap_or_else(|| service.clone()),
            service,
            prechecks: config.xta_precheck.clone(),
            prechecked: Mutex::new(None),
            store: OnceLock::new(),
        })
    }

    /// The database that keeps the XTA message ids. Without it no message is
    /// sent (an attempt is then a transient failure).
    pub fn attach_store(&self, store: &Store) {
        let _ = self.store.set(store.clone());
    }

    /// One delivery attempt: the pre-checks (if asked for), the message id
    /// (kept, or created and kept), then `sendMessage`.
    pub async fn attempt(
        &self,
        client: &reqwest::Client,
        endpoint: &reqwest::Url,
        request: &Request<'_>,
    ) -> Outcome {
        let outcome = self.checked_attempt(client, endpoint, request).await;
        if let Outcome::Unavailable(Cause::XtaFault(9010..=9014)) = outcome {
            // The server said what a pre-check would have: ask again.
            *self.last_pass() = None;
        }
        outcome
    }

    fn last_pass(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.prechecked.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn checked_attempt(
        &self,
        client: &reqwest::Client,
        endpoint: &reqwest::Url,
        request: &Request<'_>,
    ) -> Outcome {
        let Some(store) = self.store.get() else {
            tracing::error!(destination = %self.destination, "xta2 destination has no database for its message ids; nothing sent");
            return Outcome::Unavailable(Cause::Transport);
        };
        if let Err(outcome) = self.precheck(client, endpoint).await {
            tracing::info!(submission_id = %request.submission_id, destination = %self.destination, cause = %outcome.cause(), "XTA pre-check did not pass; nothing created or sent");
            return outcome;
        }
        let kept = store
            .transport_message_id(request.submission_id, &self.destination)
            .await;
        let message_id = match kept {
            Ok(Some(id)) => id,
            Ok(None) => {
                let created = match self.create_message_id(client, endpoint).await {
                    Ok(id) => id,
                    Err(outcome) => return outcome,
                };
                // Kept before anything is sent: a message must never go out
                // under an id that a retry would not know.
                match store
                    .keep_transport_message_id(
                        request.submission_id,
                        &self.destination,
                        TRANSPORT,
                        &created,
                        crate::domain::time::now(),
                    )
                    .await
                {
                    Ok(id) => {
                        tracing::debug!(submission_id = %request.submission_id, destination = %self.destination, xta_message_id = %id, "XTA message id kept");
                        id
                    }
                    Err(e) => {
                        tracing::warn!(submission_id = %request.submission_id, error = %e, "cannot keep the XTA message id; nothing sent");
                        return Outcome::Unavailable(Cause::Transport);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(submission_id = %request.submission_id, error = %e, "cannot read the XTA message id; nothing sent");
                return Outcome::Unavailable(Cause::Transport);
            }
        };
        let outcome = self
            .send_message(client, endpoint, request, &message_id)
            .await;
        match outcome {
            Outcome::Accepted { status, .. } => Outcome::Accepted {
                status,
                reference: Some(message_id),
            },
            Outcome::AlreadyAccepted { .. } => Outcome::AlreadyAccepted {
                reference: Some(message_id),
            },
            other => other,
        }
    }

    /// The destination's pre-checks, unless they passed within
    /// [`PRECHECK_FRESH`]: `Ok`, or the outcome that ends the attempt.
    async fn precheck(
        &self,
        client: &reqwest::Client,
        endpoint: &reqwest::Url,
    ) -> Result<(), Outcome> {
        let fresh = self
            .last_pass()
            .is_some_and(|at| at.elapsed() < PRECHECK_FRESH);
        if self.prechecks.is_empty() || fresh {
            return Ok(());
        }
        for check in &self.prechecks {
            match check {
                XtaPrecheck::CheckAccountActive => {
                    let body = soap::check_account_active(
                        endpoint.as_str(),
                        &soap::request_id(),
                        &self.author,
                    );
                    let content_type = soap_content_type(soap::action::CHECK_ACCOUNT_ACTIVE);
                    let (status, answer, retry_after) =
                        exchange(client, endpoint, &content_type, body).await?;
                    classify::precheck_outcome(status, answer, retry_after)?;
                }
                XtaPrecheck::LookupService => self.lookup_service(client, endpoint).await?,
            }
        }
        *self.last_pass() = Some(Instant::now());
        Ok(())
    }

    /// `lookupService` for the destination's reader and service: offered
    /// (or the server does not know: `sendMessage` will tell) passes.
    async fn lookup_service(
        &self,
        client: &reqwest::Client,
        endpoint: &reqwest::Url,
    ) -> Result<(), Outcome> {
        let body = soap::lookup_service(
            endpoint.as_str(),
            &soap::request_id(),
            &self.author,
            &self.reader,
            &self.service,
        );
        let content_type = soap_content_type(soap::action::LOOKUP_SERVICE);
        let (status, envelope, retry_after) = post(client, endpoint, &content_type, body).await?;
        let answer = envelope
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|e| classify::read(e));
        classify::precheck_outcome(status, answer, retry_after)?;
        let results = envelope
            .as_deref()
            .ok()
            .and_then(|e| classify::read_lookup(e).ok())
            .unwrap_or_default();
        match classify::availability(&results, &self.service) {
            Some(Availability::Offered | Availability::Unknown) => Ok(()),
            Some(Availability::NotOffered) => {
                Err(Outcome::Unavailable(Cause::XtaServiceNotOffered))
            }
            // An answer that says nothing about the service.
            None => Err(Outcome::Unavailable(Cause::Transport)),
        }
    }

    /// `createMessageId`: the new id, or the outcome that stops the attempt.
    async fn create_message_id(
        &self,
        client: &reqwest::Client,
        endpoint: &reqwest::Url,
    ) -> Result<String, Outcome> {
        let body = soap::create_message_id(endpoint.as_str(), &soap::request_id(), &self.author);
        let content_type = soap_content_type(soap::action::CREATE_MESSAGE_ID);
        let (status, answer, retry_after) = exchange(client, endpoint, &content_type, body).await?;
        match answer {
            Ok(Answer::Ok {
                message_id: Some(id),
                ..
            }) if (200..300).contains(&status) => Ok(id),
            // A fault, or an answer without an id.
            Ok(Answer::Ok { .. }) if (200..300).contains(&status) => {
                Err(Outcome::Unavailable(Cause::Transport))
            }
            // 9024 cannot answer createMessageId; if a server says so anyway
            // nothing was sent yet: try again.
            answer => match classify::outcome(status, answer, retry_after) {
                Outcome::AlreadyAccepted { .. } | Outcome::Accepted { .. } => {
                    Err(Outcome::Unavailable(Cause::XtaFault(9024)))
                }
                other => Err(other),
            },
        }
    }

    async fn send_message(
        &self,
        client: &reqwest::Client,
        endpoint: &reqwest::Url,
        request: &Request<'_>,
        message_id: &str,
    ) -> Outcome {
        let (message_type, payload_schema) = payload_root(&request.body)
            .unwrap_or_else(|| ("document".into(), "urn:unknown".into()));
        let encoding = charset(request.content_type).unwrap_or_else(|| "UTF-8".into());
        let origin = crate::domain::time::now().to_string();
        let meta = MetaData {
            author: &self.author,
            reader: &self.reader,
            service: &self.service,
            business_scenario: &self.business_scenario,
            message_type: &message_type,
            payload_schema: &payload_schema,
            message_id,
            submission_id: request.submission_id,
            origin: &origin,
            size: request.body.len(),
        };
        let part = MessagePart {
            content_type: "application/xml",
            encoding: &encoding,
            filename: "nachricht.xml",
            size: request.body.len(),
            content_id: MESSAGE_CID,
        };
        let envelope = soap::send_message(endpoint.as_str(), &soap::request_id(), &meta, &part);
        let (content_type, body) = mtom::package(
            &envelope,
            soap::action::SEND_MESSAGE,
            &[mtom::Part {
                content_id: MESSAGE_CID,
                content_type: "application/xml",
                bytes: &request.body,
            }],
        );
        match exchange(client, endpoint, &content_type, body).await {
            Ok((status, answer, retry_after)) => classify::outcome(status, answer, retry_after),
            Err(outcome) => outcome,
        }
    }
}

/// `application/soap+xml` with the SOAP 1.2 `action` parameter.
pub(super) fn soap_content_type(action: &str) -> String {
    format!("application/soap+xml; charset=utf-8; action=\"{action}\"")
}

type Exchange = (
    u16,
    Result<Answer, classify::NotSoap>,
    Option<std::time::Duration>,
);

/// POST one SOAP request; the answer's status, envelope and `Retry-After`,
/// or the outcome of a request that got no answer.
async fn exchange(
    client: &reqwest::Client,
    endpoint: &reqwest::Url,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Exchange, Outcome> {
    let (status, envelope, retry_after) = post(client, endpoint, content_type, body).await?;
    let answer = envelope.and_then(|envelope| classify::read(&envelope));
    Ok((status, answer, retry_after))
}

/// What [`post`] returns: the status, the answer's SOAP envelope (XOP
/// resolved) and `Retry-After`.
pub(super) type Posted = (
    u16,
    Result<Vec<u8>, classify::NotSoap>,
    Option<std::time::Duration>,
);

/// POST one SOAP request and read its answer (at most
/// [`MAX_ANSWER_BYTES`]), or the outcome of a request that got no answer.
pub(super) async fn post(
    client: &reqwest::Client,
    endpoint: &reqwest::Url,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Posted, Outcome> {
    let content_type =
        HeaderValue::from_str(content_type).map_err(|_| Outcome::Unavailable(Cause::Transport))?;
    let sent = client
        .post(endpoint.clone())
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return Err(Outcome::Unavailable(crate::delivery::transport_cause(&e))),
    };
    let status = response.status().as_u16();
    let retry_after = crate::delivery::retry_after(response.headers());
    let answer_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // A broken-off answer is judged by what arrived (then not SOAP).
    let (bytes, _) = crate::delivery::read_limited(response, MAX_ANSWER_BYTES).await;
    let envelope = mtom::unpack(&answer_type, &bytes).map_err(|_| classify::NotSoap);
    Ok((status, envelope, retry_after))
}

/// The local name and namespace of the document's root element: the XTA
/// message type and its payload schema.
pub fn payload_root(document: &[u8]) -> Option<(String, String)> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::reader::NsReader::from_reader(document);
    let mut buf = Vec::new();
    loop {
        match reader.read_resolved_event_into(&mut buf).ok()? {
            (ns, Event::Start(e) | Event::Empty(e)) => {
                let local = e.local_name().as_ref().to_owned();
                let ns = match ns {
                    ResolveResult::Bound(n) => n.as_ref().to_owned(),
                    _ => "urn:unknown".to_owned(),
                };
                return Some((local, ns));
            }
            (_, Event::Eof) => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// The `charset` parameter of a content type.
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_root_names_the_message_type() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?><!-- c --><xsb:vorgang.transportieren.1000001 xmlns:xsb="https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"><a/></xsb:vorgang.transportieren.1000001>"#;
        assert_eq!(
            payload_root(doc),
            Some((
                "vorgang.transportieren.1000001".into(),
                "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0".into()
            ))
        );
        assert_eq!(payload_root(b""), None);
        assert_eq!(
            charset("application/xml; charset=ISO-8859-15").as_deref(),
            Some("ISO-8859-15")
        );
    }
}
