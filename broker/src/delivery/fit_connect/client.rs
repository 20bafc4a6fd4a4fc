//! The FIT-Connect sender of one destination. One delivery attempt:
//!
//! 1. an access token ([`super::token`], cached);
//! 2. `GET /v1/destinations/{id}` and the key it names as `encryptionKid`
//!    (`GET /v1/destinations/{id}/keys/{kid}`), read fresh on every attempt
//!    because destinations rotate their keys; with `fit_key_ca_file` its
//!    `x5c` chain is checked ([`super::key`]);
//! 3. the FIT submission: created by `POST /v1/submissions` (announcing the
//!    attachments and the service type) only if none is kept for this
//!    submission; its `submissionId` and `caseId` are kept
//!    (`transport_messages`) before anything is uploaded;
//! 4. each attachment not yet marked as uploaded: `PUT
//!    /v1/submissions/{id}/attachments/{attachmentId}` as JWE, then marked;
//! 5. `PUT /v1/submissions/{id}` with the encrypted metadata and data.
//!
//! `POST /v1/submissions` has no idempotency key; what keeps a retry from
//! making a second submission is that the submission id is kept before the
//! first upload and every later attempt, parked run or restart resumes it.
//! A submission that was submitted before answers 409, which is "already
//! delivered". A lost answer to the `POST` itself leaves an announced
//! submission that was never submitted: the Submission API deletes those,
//! the authority never sees them, and the retry announces a new one.
//!
//! Uploaded attachments are marked in `transport_messages` too, one row
//! each, under the destination `<destination>#<attachmentId>` (transport
//! `fit-connect-attachment`): no migration beside XTA 2's table.
//!
//! Logs ids, statuses and causes only; documents and attachments are only
//! ever sent encrypted and never logged.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::classify::{self, Step};
use super::http::{self, Body};
use super::jose::{EncryptionKey, Jwk};
use super::request::{self, Attachment};
use super::token::TokenSource;
use crate::config::{DestinationConfig, RetryConfig};
use crate::delivery::Request;
use crate::delivery::tls::TlsError;
use crate::domain::id::{DestinationId, SubmissionId};
use crate::queue::decision::{Cause, Outcome};
use crate::store::Store;

/// The name `transport_messages.transport` records for a FIT submission.
pub use crate::config::fit_connect::TRANSPORT;
/// … and for the mark of an uploaded attachment.
pub const ATTACHMENT_MARK: &str = "fit-connect-attachment";

/// The FIT-Connect side of a destination (`transport = "fit-connect"`).
pub struct FitConnect {
    destination: DestinationId,
    api: reqwest::Url,
    fit_destination_id: String,
    service_identifier: String,
    service_name: String,
    key_anchors: Option<Vec<CertificateDer<'static>>>,
    token: Arc<TokenSource>,
    store: OnceLock<Store>,
}

impl std::fmt::Debug for FitConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitConnect")
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

/// The FIT submission kept for a Kurier submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub submission_id: String,
    pub case_id: String,
}

impl Kept {
    /// `transport_messages.message_id`: `<submissionId> <caseId>`.
    pub fn to_message_id(&self) -> String {
        format!("{} {}", self.submission_id, self.case_id)
    }

    pub fn parse(message_id: &str) -> Option<Kept> {
        let (s, c) = message_id.split_once(' ')?;
        (is_api_id(s) && is_api_id(c)).then(|| Kept {
            submission_id: s.into(),
            case_id: c.into(),
        })
    }
}

/// Ids the API hands out are UUIDs; anything else is not used in a URL or kept.
fn is_api_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `base` with a trailing slash, so that `join` appends.
pub(crate) fn base_url(text: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(text).map_err(|e| format!("{text}: {e}"))?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` + path segments, each percent-encoded.
pub(crate) fn api_url(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

/// The pooled HTTP client of a FIT-Connect destination: TLS verified against
/// `ca_file`, else the system's roots; no client certificate.
pub fn http_client(
    config: &DestinationConfig,
    retry: &RetryConfig,
) -> Result<reqwest::Client, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(ca) => {
            for cert in crate::delivery::tls::load_certs("ca_file", ca)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    what: "ca_file",
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(TlsError::Setup(format!(
                    "destination {}: no system root certificates; set ca_file",
                    config.id
                )));
            }
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(crate::delivery::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .timeout(retry.request_timeout())
        .connect_timeout(retry.connect_timeout())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!config.allow_insecure_http)
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| TlsError::Setup(format!("destination {}: {e}", config.id)))
}

impl FitConnect {
    /// The FIT-Connect client of `config`, if its transport is `fit-connect`
    /// (the keys were checked by `Config::check`).
    pub fn for_destination(config: &DestinationConfig) -> Result<Option<FitConnect>, TlsError> {
        if config.transport.as_deref() != Some(TRANSPORT) {
            return Ok(None);
        }
        let setup = |m: String| TlsError::Setup(format!("destination {}: {m}", config.id));
        let api = base_url(config.fit_submission_api.as_deref().unwrap_or_default())
            .map_err(|m| setup(format!("fit_submission_api {m}")))?;
        let token_url = reqwest::Url::parse(config.fit_token_url.as_deref().unwrap_or_default())
            .map_err(|e| setup(format!("fit_token_url: {e}")))?;
        let key_anchors = match &config.fit_key_ca_file {
            Some(file) => Some(crate::delivery::tls::load_certs("fit_key_ca_file", file)?),
            None => None,
        };
        let service_identifier = config.fit_service_identifier.clone().unwrap_or_default();
        Ok(Some(FitConnect {
            destination: config.id.clone(),
            api,
            fit_destination_id: config.fit_destination_id.clone().unwrap_or_default(),
            service_name: config
                .fit_service_name
                .clone()
                .unwrap_or_else(|| service_identifier.clone()),
            service_identifier,
            key_anchors,
            token: Arc::new(TokenSource::new(
                token_url,
                config.fit_client_id.clone().unwrap_or_default(),
                config.fit_client_secret_file.clone().unwrap_or_default(),
            )),
            store: OnceLock::new(),
        }))
    }

    /// The Submission API's base URL.
    pub fn api(&self) -> &reqwest::Url {
        &self.api
    }

    /// The database that keeps the FIT submission ids. Without it nothing is
    /// sent (an attempt is then a transient failure).
    pub fn attach_store(&self, store: &Store) {
        let _ = self.store.set(store.clone());
    }

    /// One delivery attempt (see the module's documentation).
    pub async fn attempt(&self, client: &reqwest::Client, request: &Request<'_>) -> Outcome {
        let Some(store) = self.store.get() else {
            tracing::error!(destination = %self.destination, "fit-connect destination has no database for its submission ids; nothing sent");
            return Outcome::Unavailable(Cause::Transport);
        };
        let attachments = match decode_attachments(request) {
            Ok(a) => a,
            Err(outcome) => return outcome,
        };
        match self.run(client, store, request, &attachments).await {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    async fn run(
        &self,
        client: &reqwest::Client,
        store: &Store,
        request: &Request<'_>,
        attachments: &[Attachment<'_>],
    ) -> Result<Outcome, Outcome> {
        let sid = request.submission_id;
        let token = self.token.get(client).await?;
        let key = self.encryption_key(client, &token).await?;
        let kept = match store.transport_message_id(sid, &self.destination).await {
            Ok(Some(id)) => Kept::parse(&id).ok_or_else(|| {
                tracing::error!(submission_id = %sid, destination = %self.destination, "the kept FIT submission id is unreadable; nothing sent");
                Outcome::Unavailable(Cause::Transport)
            })?,
            Ok(None) => self.create(client, store, &token, sid, attachments).await?,
            Err(e) => {
                tracing::warn!(submission_id = %sid, error = %e, "cannot read the kept FIT submission id; nothing sent");
                return Err(Outcome::Unavailable(Cause::Transport));
            }
        };
        for a in attachments {
            // Kept in the row's destination column, beside the submission's own.
            let mark = DestinationId::new(format!("{}#{}", self.destination, a.id));
            match store.transport_message_id(sid, &mark).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(_) => return Err(Outcome::Unavailable(Cause::Transport)),
            }
            let jwe = key
                .encrypt(a.media_type, &a.content)
                .map_err(|_| Outcome::Unavailable(Cause::Transport))?;
            let url = api_url(
                &self.api,
                &[
                    "v1",
                    "submissions",
                    &kept.submission_id,
                    "attachments",
                    &a.id,
                ],
            );
            self.step(
                client,
                &token,
                Step::Attachment,
                reqwest::Method::PUT,
                url,
                Body::Jose(jwe),
            )
            .await
            .map_err(|o| with_reference(o, &kept))?;
            store
                .keep_transport_message_id(
                    sid,
                    &mark,
                    ATTACHMENT_MARK,
                    &a.id,
                    crate::domain::time::now(),
                )
                .await
                .map_err(|_| Outcome::Unavailable(Cause::Transport))?;
        }
        let schema_uri = crate::delivery::xta2::client::payload_root(&request.body)
            .map(|(_, ns)| ns)
            .filter(|ns| reqwest::Url::parse(ns).is_ok())
            .unwrap_or_else(|| "urn:kurier:unknown".into());
        let metadata = request::metadata(
            &request.body,
            &schema_uri,
            attachments,
            &self.service_identifier,
            &self.service_name,
            sid,
        );
        let encrypt = |cty: &str, bytes: &[u8]| {
            key.encrypt(cty, bytes)
                .map_err(|_| Outcome::Unavailable(Cause::Transport))
        };
        let body = request::submit(
            &encrypt("application/json", metadata.to_string().as_bytes())?,
            &encrypt("application/xml", &request.body)?,
        );
        let url = api_url(&self.api, &["v1", "submissions", &kept.submission_id]);
        let answer = self
            .step(
                client,
                &token,
                Step::Submit,
                reqwest::Method::PUT,
                url,
                Body::Json(body),
            )
            .await
            .map_err(|o| with_reference(o, &kept))?;
        tracing::debug!(submission_id = %sid, destination = %self.destination, fit_submission_id = %kept.submission_id, "FIT submission submitted");
        Ok(Outcome::Accepted {
            status: answer.status,
            reference: Some(kept.submission_id),
        })
    }

    /// A call whose non-success answer ends the attempt.
    async fn step(
        &self,
        client: &reqwest::Client,
        token: &str,
        step: Step,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Body,
    ) -> Result<http::Answer, Outcome> {
        let answer = http::call(client, method, url, Some(token), body).await?;
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        if answer.status == 401 {
            self.token.forget().await;
        }
        tracing::debug!(destination = %self.destination, ?step, status = answer.status, "Submission API answer");
        Err(classify::outcome(step, answer.status, answer.retry_after))
    }

    /// The destination's current encryption key, checked.
    async fn encryption_key(
        &self,
        client: &reqwest::Client,
        token: &str,
    ) -> Result<EncryptionKey, Outcome> {
        let url = api_url(&self.api, &["v1", "destinations", &self.fit_destination_id]);
        let answer = self
            .step(
                client,
                token,
                Step::Destination,
                reqwest::Method::GET,
                url,
                Body::None,
            )
            .await?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Destination {
            encryption_kid: String,
        }
        let kid = serde_json::from_slice::<Destination>(&answer.body)
            .ok()
            .map(|d| d.encryption_kid)
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or_else(|| {
                tracing::warn!(destination = %self.destination, "the Submission API's destination has no encryptionKid");
                Outcome::Unavailable(Cause::Transport)
            })?;
        let url = api_url(
            &self.api,
            &["v1", "destinations", &self.fit_destination_id, "keys", &kid],
        );
        let answer = self
            .step(
                client,
                token,
                Step::Key,
                reqwest::Method::GET,
                url,
                Body::None,
            )
            .await?;
        let jwk: Jwk = serde_json::from_slice(&answer.body).map_err(|_| {
            tracing::warn!(destination = %self.destination, "the destination's encryption key is not a JWK");
            Outcome::Unavailable(Cause::Transport)
        })?;
        if jwk.kid != kid {
            tracing::warn!(destination = %self.destination, "the key served is not the one the destination names");
            return Err(Outcome::Unavailable(Cause::Transport));
        }
        super::key::accept(&jwk, self.key_anchors.as_deref(), UnixTime::now()).map_err(|e| {
            tracing::error!(destination = %self.destination, error = %e, "encryption key refused; nothing sent");
            Outcome::Unavailable(Cause::Tls)
        })
    }

    /// `POST /v1/submissions`, and the new ids kept before anything else.
    async fn create(
        &self,
        client: &reqwest::Client,
        store: &Store,
        token: &str,
        sid: &SubmissionId,
        attachments: &[Attachment<'_>],
    ) -> Result<Kept, Outcome> {
        let body = request::announcement(
            &self.fit_destination_id,
            attachments,
            &self.service_identifier,
            &self.service_name,
        );
        let url = api_url(&self.api, &["v1", "submissions"]);
        let answer = self
            .step(
                client,
                token,
                Step::Create,
                reqwest::Method::POST,
                url,
                Body::Json(body),
            )
            .await?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            submission_id: String,
            case_id: String,
        }
        let created = serde_json::from_slice::<Created>(&answer.body)
            .ok()
            .map(|c| Kept {
                submission_id: c.submission_id,
                case_id: c.case_id,
            })
            .filter(|k| Kept::parse(&k.to_message_id()).is_some())
            .ok_or_else(|| {
                tracing::warn!(submission_id = %sid, "the Submission API created a submission without usable ids");
                Outcome::Unavailable(Cause::Transport)
            })?;
        // Kept before any upload: a retry must resume this one. When two
        // runs race, both go on with the first one kept.
        let kept = store
            .keep_transport_message_id(
                sid,
                &self.destination,
                TRANSPORT,
                &created.to_message_id(),
                crate::domain::time::now(),
            )
            .await
            .map_err(|e| {
                tracing::warn!(submission_id = %sid, error = %e, "cannot keep the FIT submission id; nothing uploaded");
                Outcome::Unavailable(Cause::Transport)
            })?;
        tracing::debug!(submission_id = %sid, destination = %self.destination, fit_submission_id = %created.submission_id, "FIT submission created and kept");
        Kept::parse(&kept).ok_or(Outcome::Unavailable(Cause::Transport))
    }
}

/// An "already accepted" answer carries the FIT submission id as reference.
fn with_reference(outcome: Outcome, kept: &Kept) -> Outcome {
    match outcome {
        Outcome::AlreadyAccepted { .. } => Outcome::AlreadyAccepted {
            reference: Some(kept.submission_id.clone()),
        },
        other => other,
    }
}

/// The envelope's attachments, decoded (the policy step checked their
/// base64, size and hash already).
fn decode_attachments<'a>(request: &Request<'a>) -> Result<Vec<Attachment<'a>>, Outcome> {
    let b64 = base64::engine::general_purpose::STANDARD;
    request
        .attachments
        .iter()
        .map(|a| {
            Ok(Attachment {
                id: request::attachment_id(request.submission_id, a.id),
                filename: a.filename,
                media_type: a.media_type,
                content: b64
                    .decode(a.content_base64)
                    .map_err(|_| Outcome::Refused { status: 0 })?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_ids_round_trip_and_refuse_what_is_no_id() {
        let k = Kept {
            submission_id: "9f3c7a1e-0000-4000-8000-000000000001".into(),
            case_id: "9f3c7a1e-0000-4000-8000-000000000002".into(),
        };
        assert_eq!(Kept::parse(&k.to_message_id()), Some(k));
        assert_eq!(Kept::parse("a/b c"), None);
        assert_eq!(Kept::parse("abc"), None);
        assert_eq!(Kept::parse(" c"), None);
    }

    #[test]
    fn api_urls_append_encoded_segments() {
        let base = base_url("https://api.example/fit").unwrap();
        assert_eq!(
            api_url(&base, &["v1", "destinations", "a b", "keys", "k/1"]).as_str(),
            "https://api.example/fit/v1/destinations/a%20b/keys/k%2F1"
        );
        let base = base_url("https://api.example/").unwrap();
        assert_eq!(
            api_url(&base, &["v1", "submissions"]).as_str(),
            "https://api.example/v1/submissions"
        );
    }
}
