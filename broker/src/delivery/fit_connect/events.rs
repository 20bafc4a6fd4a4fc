//! The authority's answer, read from the case's event log
//! (`GET /v1/cases/{caseId}/events`): a list of security event tokens
//! (SET, RFC 8417), each a JWS signed PS512. A SET counts only if its
//! signature verifies against a published key — the Submission API's JWKS
//! (`{fit_submission_api}/.well-known/jwks.json`) or, for a `kid` not in it,
//! the destination's own signature key (`GET
//! /v1/destinations/{id}/keys/{kid}`), since the subscriber signs
//! `accept-submission` and `reject-submission` — its `typ` is
//! `secevent+jwt`, its issuer is the Submission API or the destination, and
//! its `sub` and `txn` name exactly the awaited submission and case.
//!
//! `accept-submission` → accepted; `reject-submission` → rejected with the
//! `type`s of its problems as reason codes (the last segment of the problem
//! URI, e.g. `hash-mismatch`; titles and details are never read, they may
//! quote the submission). Other events (`submit-submission`, …) and SETs
//! that fail a check are skipped (the latter logged by kid and reason).
//!
//! [`EventReader::poll`] is what the two-stage receipt poller calls.

use base64::Engine;

use super::client::{Kept, api_url, base_url};
use super::http::{self, Body};
use super::jose::{self, Jwk};
use super::token::TokenSource;
use crate::config::{DestinationConfig, RetryConfig};
use crate::delivery::tls::TlsError;
use crate::domain::id::SubmissionId;

const EVENTS: &str = "https://schema.fitko.de/fit-connect/events/";
/// Longest reason code kept, in characters.
const MAX_CODE_CHARS: usize = 64;

/// A submission that waits for the authority's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaiting {
    /// Kurier's submission id.
    pub submission_id: SubmissionId,
    pub fit_submission_id: String,
    pub case_id: String,
}

impl Awaiting {
    /// From a `transport_messages` row of transport `fit-connect`.
    pub fn from_kept(submission_id: &SubmissionId, message_id: &str) -> Option<Awaiting> {
        let kept = Kept::parse(message_id)?;
        Some(Awaiting {
            submission_id: submission_id.clone(),
            fit_submission_id: kept.submission_id,
            case_id: kept.case_id,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the Submission API could not be read ({0}); poll again later")]
    Unavailable(String),
    #[error("the Submission API's JWKS is unusable; no event can be verified")]
    Jwks,
}

/// Reads the event logs of one FIT-Connect destination.
pub struct EventReader {
    client: reqwest::Client,
    api: reqwest::Url,
    fit_destination_id: String,
    token: TokenSource,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("api", &self.api.as_str())
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// The reader of a `fit-connect` destination (`None` for others), with
    /// an HTTP client and token of its own.
    pub fn for_destination(
        config: &DestinationConfig,
        retry: &RetryConfig,
    ) -> Result<Option<EventReader>, TlsError> {
        if config.transport.as_deref() != Some(super::TRANSPORT) {
            return Ok(None);
        }
        let setup = |m: String| TlsError::Setup(format!("destination {}: {m}", config.id));
        Ok(Some(EventReader {
            client: super::client::http_client(config, retry)?,
            api: base_url(config.fit_submission_api.as_deref().unwrap_or_default())
                .map_err(setup)?,
            fit_destination_id: config.fit_destination_id.clone().unwrap_or_default(),
            token: TokenSource::new(
                reqwest::Url::parse(config.fit_token_url.as_deref().unwrap_or_default())
                    .map_err(|e| setup(e.to_string()))?,
                config.fit_client_id.clone().unwrap_or_default(),
                config.fit_client_secret_file.clone().unwrap_or_default(),
            ),
        }))
    }

    /// The answers among `awaiting`: `(submission_id, accepted,
    /// reason_codes)` for each submission whose log has a verified
    /// `accept-submission` or `reject-submission`; the others are left out
    /// (still waiting).
    pub async fn poll(
        &self,
        awaiting: &[Awaiting],
    ) -> Result<Vec<(SubmissionId, bool, Vec<String>)>, EventError> {
        if awaiting.is_empty() {
            return Ok(Vec::new());
        }
        let unavailable = |o: crate::queue::decision::Outcome| EventError::Unavailable(o.cause());
        let token = self.token.get(&self.client).await.map_err(unavailable)?;
        let mut keys = self.jwks().await?;
        let mut answers = Vec::new();
        for a in awaiting {
            let url = api_url(&self.api, &["v1", "cases", &a.case_id, "events"]);
            let answer = self.get(url, &token).await?;
            let Some(log) = event_log(&answer) else {
                tracing::warn!(submission_id = %a.submission_id, "the event log is not a list of tokens");
                continue;
            };
            for set in log {
                let kid = kid_of(&set);
                if let Some(kid) = kid.filter(|k| !keys.iter().any(|j| &j.kid == k)) {
                    // A subscriber-signed event: the destination's signature key.
                    if let Some(jwk) = self.destination_key(&kid, &token).await? {
                        keys.push(jwk);
                    }
                }
                match self.read(&set, &keys, a) {
                    Ok(Some(decision)) => {
                        answers.push((a.submission_id.clone(), decision.0, decision.1));
                        break;
                    }
                    Ok(None) => {}
                    Err(why) => {
                        tracing::warn!(submission_id = %a.submission_id, why, "security event token skipped");
                    }
                }
            }
        }
        Ok(answers)
    }

    async fn get(&self, url: reqwest::Url, token: &str) -> Result<Vec<u8>, EventError> {
        let answer = http::call(
            &self.client,
            reqwest::Method::GET,
            url,
            Some(token),
            Body::None,
        )
        .await
        .map_err(|o| EventError::Unavailable(o.cause()))?;
        if answer.status == 401 {
            self.token.forget().await;
        }
        if !(200..300).contains(&answer.status) {
            return Err(EventError::Unavailable(format!("status {}", answer.status)));
        }
        Ok(answer.body)
    }

    async fn jwks(&self) -> Result<Vec<Jwk>, EventError> {
        let url = api_url(&self.api, &[".well-known", "jwks.json"]);
        let answer = http::call(&self.client, reqwest::Method::GET, url, None, Body::None)
            .await
            .map_err(|o| EventError::Unavailable(o.cause()))?;
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<serde_json::Value>,
        }
        let jwks: Jwks = (200..300)
            .contains(&answer.status)
            .then(|| serde_json::from_slice(&answer.body).ok())
            .flatten()
            .ok_or(EventError::Jwks)?;
        // Keys that are not RSA signature keys are left out.
        Ok(jwks
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter(is_signature_key)
            .collect())
    }

    async fn destination_key(&self, kid: &str, token: &str) -> Result<Option<Jwk>, EventError> {
        let url = api_url(
            &self.api,
            &["v1", "destinations", &self.fit_destination_id, "keys", kid],
        );
        let answer = http::call(
            &self.client,
            reqwest::Method::GET,
            url,
            Some(token),
            Body::None,
        )
        .await
        .map_err(|o| EventError::Unavailable(o.cause()))?;
        Ok((200..300)
            .contains(&answer.status)
            .then(|| serde_json::from_slice::<Jwk>(&answer.body).ok())
            .flatten()
            .filter(|k| k.kid == kid && is_signature_key(k)))
    }

    /// A verified decision of `set` about `a`, `None` for other events.
    fn read(
        &self,
        set: &str,
        keys: &[Jwk],
        a: &Awaiting,
    ) -> Result<Option<(bool, Vec<String>)>, &'static str> {
        let (header, payload) = jose::verify_ps512(set, keys).map_err(|e| match e {
            jose::JoseError::UnknownKid => "unknown kid",
            jose::JoseError::Signature => "signature does not verify",
            _ => "not a PS512 JWS",
        })?;
        if header.typ.as_deref() != Some("secevent+jwt") {
            return Err("typ is not secevent+jwt");
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|_| "payload is not JSON")?;
        let iss = claims["iss"].as_str().unwrap_or_default();
        let api = self.api.as_str();
        if iss != self.fit_destination_id && iss != api && iss != api.trim_end_matches('/') {
            return Err("issuer is neither the Submission API nor the destination");
        }
        if claims["sub"].as_str() != Some(&format!("submission:{}", a.fit_submission_id))
            || claims["txn"].as_str() != Some(&format!("case:{}", a.case_id))
        {
            return Err("sub or txn name another submission");
        }
        let Some(events) = claims["events"].as_object().filter(|e| e.len() == 1) else {
            return Err("not exactly one event");
        };
        let (name, event) = events.iter().next().ok_or("no event")?;
        Ok(match name.strip_prefix(EVENTS) {
            Some("accept-submission") => Some((true, Vec::new())),
            Some("reject-submission") => Some((false, reason_codes(event))),
            _ => None,
        })
    }
}

fn is_signature_key(k: &Jwk) -> bool {
    k.kty == "RSA"
        && k.alg.as_deref().is_none_or(|a| a == "PS512")
        && (k.key_ops.is_empty() || k.key_ops.iter().any(|o| o == "verify"))
}

/// The tokens of an event log answer: `{"eventLog": [...]}` or a bare list.
fn event_log(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = v.get("eventLog").unwrap_or(&v).as_array()?;
    Some(
        list.iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
    )
}

/// The `kid` of a JWS header, unverified (to pick the key).
fn kid_of(jws: &str) -> Option<String> {
    let header = jws.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["kid"]
        .as_str()
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .map(str::to_owned)
}

/// The problems' `type`s as codes: the URI's last segment, only
/// `[a-z0-9._-]`, at most [`MAX_CODE_CHARS`]; one that is not becomes
/// `unknown`. Nothing else of a problem is read.
fn reason_codes(event: &serde_json::Value) -> Vec<String> {
    let mut codes: Vec<String> = event["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let t = p["type"].as_str().unwrap_or_default();
                    let last = t
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or_default();
                    let ok = !last.is_empty()
                        && last.len() <= MAX_CODE_CHARS
                        && last.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
                        });
                    if ok {
                        last.to_owned()
                    } else {
                        "unknown".to_owned()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    codes.dedup();
    if codes.is_empty() {
        codes.push("unknown".into());
    }
    codes
}

/// The event log as a source of two-stage receipts: the kept transport
/// message id names the FIT submission and case; `accept-submission` and
/// `reject-submission` become the authority's answer.
impl crate::delivery::answers::ReportSource for &EventReader {
    fn poll<'a>(
        &'a self,
        awaiting: &'a [crate::delivery::answers::Awaiting],
    ) -> crate::delivery::answers::PollFuture<'a> {
        use crate::delivery::answers::{AuthorityAnswer, TransportError};
        Box::pin(async move {
            let kept: Vec<Awaiting> = awaiting
                .iter()
                .filter_map(|a| Awaiting::from_kept(&a.submission_id, &a.message_id))
                .collect();
            let answers = EventReader::poll(self, &kept).await.map_err(|e| match e {
                EventError::Unavailable(_) => {
                    TransportError::Unavailable(crate::queue::decision::Cause::Transport)
                }
                EventError::Jwks => {
                    TransportError::Invalid("the Submission API's JWKS is unusable")
                }
            })?;
            Ok(answers
                .into_iter()
                .map(|(id, accepted, codes)| {
                    let answer = if accepted {
                        AuthorityAnswer::accepted(codes)
                    } else {
                        AuthorityAnswer::rejected(codes)
                    };
                    (id, answer)
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reason_codes_are_the_problem_types_and_nothing_else() {
        let event = json!({"problems": [
            {"type": "https://schema.fitko.de/fit-connect/events/problems/hash-mismatch", "title": "Max Mustermann", "detail": "geb. 01.01.1970"},
            {"type": "https://schema.fitko.de/fit-connect/events/problems/missing-attachment"},
            {"type": "https://evil.example/<script>"},
        ]});
        assert_eq!(
            reason_codes(&event),
            vec!["hash-mismatch", "missing-attachment", "unknown"]
        );
        assert_eq!(reason_codes(&json!({})), vec!["unknown"]);
    }

    #[test]
    fn event_logs_come_as_an_object_or_a_list() {
        assert_eq!(
            event_log(br#"{"eventLog":["a.b.c"]}"#),
            Some(vec!["a.b.c".to_owned()])
        );
        assert_eq!(event_log(br#"["x.y.z"]"#), Some(vec!["x.y.z".to_owned()]));
        assert_eq!(event_log(b"<html/>"), None);
    }
}
