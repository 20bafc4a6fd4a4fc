//! The FIT-Connect test double: a token endpoint (OAuth 2 client
//! credentials) and a Submission API v1 over HTTPS, for one destination,
//! that is strict about what it receives:
//!
//! - every `/v1` call needs a bearer token the token endpoint issued, which
//!   it issues only for the configured client id and secret;
//! - the destination (`GET /v1/destinations/{id}`) names its current
//!   encryption key; the key (`…/keys/{kid}`) is a 4096-bit RSA JWK with an
//!   `x5c` chain issued by a key CA of the double's own (written to
//!   `--key-ca-out` for Kurier's `fit_key_ca_file`);
//! - `POST /v1/submissions` must name the destination and one of its
//!   services and announce unique attachment UUIDs; attachments must be
//!   announced, `application/jose`, and decrypt with a key the destination
//!   published; `PUT /v1/submissions/{id}` must carry JWEs of metadata and
//!   data that decrypt, metadata valid against the published metadata
//!   schema 1.0.0 (formats checked), with the SHA-512 of the data and of
//!   every uploaded attachment, exactly the announced attachments, and the
//!   announced service. A second submit is 409. Anything else is answered
//!   422 and recorded under `invalid`;
//! - the case's event log carries `submit-submission` (signed PS512 by the
//!   API key in `/.well-known/jwks.json`) and, on command, `accept-submission`
//!   or `reject-submission` (signed by the destination's own key).
//!
//! It also looks at the wire: a request body that contains the control
//! port's `canary` in plain text is counted (`plaintext_on_wire`), and
//! decrypted data that contains it is counted too (`canary_decrypted`), so a
//! test can show that the canary travelled, and only encrypted.
//!
//! Control port (plain HTTP, loopback): `PUT /faults` with a JSON list of
//! `{"operation": "token"|"destination"|"create"|"attachment"|"submit",
//! "status": 503, "retry_after": 1, "times": 1, "take": false}` (`take`:
//! do the operation, then answer the fault: a lost answer); `PUT /delay`
//! `{"ms": 40}`; `PUT /canary` `{"value": "…"}`; `POST /rotate-key`;
//! `POST /decide` `{"sender_reference": "<Kurier submission id>", "accept":
//! false, "problems": ["hash-mismatch"]}`; `GET /stats`; `GET /submissions`.
//!
//! Prints one JSON line `{"https": "…", "control": "…"}` once it listens.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use kurier::delivery::fit_connect::jose::{self, DecryptionKey, Jwk, SigningKey};
use kurier::delivery::fit_connect::request::sha512_hex;
use kurier_e2e::doubles;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const EVENTS: &str = "https://schema.fitko.de/fit-connect/events/";
const PROBLEMS: &str = "https://schema.fitko.de/fit-connect/events/problems/";
const DEST_SIG_KID: &str = "destination-signature-1";

#[derive(Parser)]
#[command(about = "FIT-Connect Submission API v1 test double (one destination)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Server certificate and key (PEM) of the API's TLS.
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    client_secret_file: PathBuf,
    #[arg(long)]
    destination_id: String,
    /// Service identifiers the destination offers (repeatable).
    #[arg(long = "service", required = true)]
    services: Vec<String>,
    /// Where to write the key CA (PEM).
    #[arg(long)]
    key_ca_out: PathBuf,
    /// The metadata schema (default: this tree's schemas/fit-connect).
    #[arg(long)]
    schema: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
struct FaultRule {
    operation: String,
    status: u16,
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    take: bool,
}

fn one() -> u32 {
    1
}

#[derive(Default, Serialize)]
struct Stats {
    requests: u64,
    tokens_issued: u64,
    tokens_refused: u64,
    created: u64,
    submitted: u64,
    attachments_uploaded: u64,
    duplicates_refused: u64,
    faults_answered: u64,
    unauthorised: u64,
    invalid: Vec<String>,
    /// Submitted FIT submissions per sender reference (Kurier's id).
    per_submission: HashMap<String, u32>,
    /// Submitted FIT submissions per encryption key id.
    keys_used: HashMap<String, u32>,
    plaintext_on_wire: u64,
    canary_decrypted: u64,
}

#[derive(Serialize, Clone)]
struct Submission {
    submission_id: String,
    case_id: String,
    service: String,
    announced: Vec<String>,
    /// attachment id → SHA-512 of the decrypted content.
    uploaded: HashMap<String, String>,
    submitted: bool,
    sender_reference: Option<String>,
    #[serde(skip)]
    events: Vec<String>,
}

struct EncKey {
    key: DecryptionKey,
    jwk: Jwk,
}

struct State {
    tokens: HashSet<String>,
    keys: HashMap<String, EncKey>,
    current_kid: String,
    key_count: u32,
    submissions: HashMap<String, Submission>,
    faults: Vec<FaultRule>,
    delay_ms: u64,
    canary: Option<String>,
    stats: Stats,
}

struct Server {
    state: Mutex<State>,
    args: Args,
    issuer: String,
    key_ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    api_sig: SigningKey,
    destination_sig: SigningKey,
    schema: jsonschema::Validator,
}

type Answer = Response<Full<Bytes>>;

fn json_answer(status: u16, value: Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a static response is valid")
}

fn problem(status: u16, kind: &str) -> Answer {
    json_answer(
        status,
        json!({"type": format!("https://schema.fitko.de/fit-connect/submission-api/problems/{kind}"), "title": kind, "status": status}),
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Server {
    /// A new encryption key with a certificate from the key CA.
    fn new_key(&self, kid: &str) -> anyhow::Result<EncKey> {
        let (key, mut jwk, pkcs8) = jose::generate_encryption_key(kid)?;
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            &rcgen::PKCS_RSA_SHA256,
        )?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("Testbehörde {kid}"));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
        let cert = params.signed_by(&pair, &self.key_ca)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        jwk.x5c = vec![b64.encode(cert.der()), b64.encode(self.key_ca.der())];
        Ok(EncKey { key, jwk })
    }

    fn injected(&self, operation: &str) -> Option<FaultRule> {
        let mut s = self.state.lock().expect("state lock");
        let i = s
            .faults
            .iter()
            .position(|f| f.operation == operation && f.times > 0)?;
        s.faults[i].times -= 1;
        s.stats.faults_answered += 1;
        Some(s.faults[i].clone())
    }

    fn fault_answer(rule: &FaultRule) -> Answer {
        let mut r = problem(rule.status, "injected-fault");
        if let Some(ra) = rule.retry_after {
            r.headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from(ra));
        }
        r
    }

    fn invalid(&self, what: String) -> Answer {
        eprintln!("invalid: {what}");
        self.state
            .lock()
            .expect("state lock")
            .stats
            .invalid
            .push(what);
        problem(422, "invalid-request")
    }

    fn sign_event(
        &self,
        signer: &SigningKey,
        iss: &str,
        sub: &Submission,
        event: &str,
        body: Value,
    ) -> String {
        let claims = json!({
            "$schema": "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json",
            "jti": uuid::Uuid::new_v4().to_string(),
            "iss": iss,
            "iat": now(),
            "sub": format!("submission:{}", sub.submission_id),
            "txn": format!("case:{}", sub.case_id),
            "events": {format!("{EVENTS}{event}"): body},
        });
        signer
            .sign("secevent+jwt", claims.to_string().as_bytes())
            .expect("signing works")
    }

    async fn receive(self: Arc<Self>, req: Request<Incoming>) -> Answer {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return problem(400, "body"),
        };
        let delay = {
            let mut s = self.state.lock().expect("state lock");
            s.stats.requests += 1;
            if let Some(c) = &s.canary
                && body.windows(c.len()).any(|w| w == c.as_bytes())
            {
                s.stats.plaintext_on_wire += 1;
            }
            s.delay_ms
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let path = parts.uri.path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = parts.method.as_str();
        if (method, path.as_str()) == ("POST", "/token") {
            return self.token(&body);
        }
        if (method, path.as_str()) == ("GET", "/.well-known/jwks.json") {
            return json_answer(200, json!({"keys": [self.api_sig.jwk()]}));
        }
        // Everything under /v1 needs a token.
        let bearer = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        if !self
            .state
            .lock()
            .expect("state lock")
            .tokens
            .contains(&bearer)
        {
            self.state.lock().expect("state lock").stats.unauthorised += 1;
            return problem(401, "unauthorized");
        }
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        match (method, segments.as_slice()) {
            ("GET", ["v1", "destinations", id]) => self.destination(id),
            ("GET", ["v1", "destinations", id, "keys", kid]) => self.key(id, kid),
            ("POST", ["v1", "submissions"]) => self.create(&body, &content_type),
            ("PUT", ["v1", "submissions", sid, "attachments", aid]) => {
                self.attachment(sid, aid, &body, &content_type)
            }
            ("PUT", ["v1", "submissions", sid]) => self.submit(sid, &body, &content_type),
            ("GET", ["v1", "cases", case, "events"]) => self.events(case),
            _ => problem(404, "not-found"),
        }
    }

    fn token(&self, body: &[u8]) -> Answer {
        if let Some(rule) = self.injected("token") {
            self.state.lock().expect("state lock").stats.tokens_refused += 1;
            return Server::fault_answer(&rule);
        }
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let secret = std::fs::read_to_string(&self.args.client_secret_file).unwrap_or_default();
        let mut s = self.state.lock().expect("state lock");
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || form.get("client_id") != Some(&self.args.client_id)
            || form.get("client_secret").map(String::as_str) != Some(secret.trim())
        {
            s.stats.tokens_refused += 1;
            return json_answer(401, json!({"error": "invalid_client"}));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        s.tokens.insert(token.clone());
        s.stats.tokens_issued += 1;
        json_answer(
            200,
            json!({"access_token": token, "token_type": "Bearer", "expires_in": 1800, "scope": "send:region:DE"}),
        )
    }

    fn destination(&self, id: &str) -> Answer {
        if let Some(rule) = self.injected("destination") {
            return Server::fault_answer(&rule);
        }
        if id != self.args.destination_id {
            return problem(404, "destination-not-found");
        }
        let s = self.state.lock().expect("state lock");
        json_answer(
            200,
            json!({
                "destinationId": id,
                "status": "active",
                "services": self.args.services.iter().map(|sv| json!({"identifier": sv, "submissionSchemas": [], "regions": ["DE"]})).collect::<Vec<_>>(),
                "encryptionKid": s.current_kid,
                "metadataVersions": ["1.0.0"],
            }),
        )
    }

    fn key(&self, id: &str, kid: &str) -> Answer {
        if id != self.args.destination_id {
            return problem(404, "destination-not-found");
        }
        if kid == DEST_SIG_KID {
            return json_answer(
                200,
                serde_json::to_value(self.destination_sig.jwk()).unwrap_or_default(),
            );
        }
        let s = self.state.lock().expect("state lock");
        match s.keys.get(kid) {
            Some(k) => json_answer(200, serde_json::to_value(&k.jwk).unwrap_or_default()),
            None => problem(404, "key-not-found"),
        }
    }

    fn create(&self, body: &[u8], content_type: &str) -> Answer {
        let rule = self.injected("create");
        if let Some(rule) = rule.as_ref().filter(|r| !r.take) {
            return Server::fault_answer(rule);
        }
        if !content_type.starts_with("application/json") {
            return self.invalid(format!("create: content type {content_type}"));
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return self.invalid("create: not JSON".into());
        };
        if v["destinationId"] != self.args.destination_id {
            return self.invalid("create: another destinationId".into());
        }
        let service = v["serviceType"]["identifier"].as_str().unwrap_or_default();
        if !self.args.services.iter().any(|s| s == service) || !v["serviceType"]["name"].is_string()
        {
            return self.invalid(format!("create: service {service:?} not offered"));
        }
        let Some(announced) = v["announcedAttachments"].as_array() else {
            return self.invalid("create: announcedAttachments missing".into());
        };
        let announced: Vec<String> = announced
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let unique: HashSet<&String> = announced.iter().collect();
        if unique.len() != announced.len()
            || announced.iter().any(|a| uuid::Uuid::parse_str(a).is_err())
        {
            return self.invalid("create: attachment ids not unique UUIDs".into());
        }
        let sub = Submission {
            submission_id: uuid::Uuid::new_v4().to_string(),
            case_id: uuid::Uuid::new_v4().to_string(),
            service: service.into(),
            announced,
            uploaded: HashMap::new(),
            submitted: false,
            sender_reference: None,
            events: Vec::new(),
        };
        let answer = json!({"destinationId": self.args.destination_id, "submissionId": sub.submission_id, "caseId": sub.case_id});
        let mut s = self.state.lock().expect("state lock");
        s.stats.created += 1;
        s.submissions.insert(sub.submission_id.clone(), sub);
        drop(s);
        match rule {
            Some(rule) => Server::fault_answer(&rule),
            None => json_answer(201, answer),
        }
    }

    /// Decrypt with whichever published key the JWE names.
    fn decrypt(&self, jwe: &str) -> Result<(String, String, Vec<u8>), String> {
        let kid = jwe
            .split('.')
            .next()
            .and_then(|h| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h)
                    .ok()
            })
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .and_then(|h| h["kid"].as_str().map(str::to_owned))
            .ok_or("no kid in the JWE header")?;
        let s = self.state.lock().expect("state lock");
        let key = s.keys.get(&kid).ok_or("unknown kid")?;
        let (header, plain) = key.key.decrypt(jwe).map_err(|e| e.to_string())?;
        Ok((kid, header.cty.unwrap_or_default(), plain))
    }

    fn attachment(&self, sid: &str, aid: &str, body: &[u8], content_type: &str) -> Answer {
        let rule = self.injected("attachment");
        if let Some(rule) = rule.as_ref().filter(|r| !r.take) {
            return Server::fault_answer(rule);
        }
        if content_type != "application/jose" {
            return self.invalid(format!("attachment: content type {content_type}"));
        }
        {
            let s = self.state.lock().expect("state lock");
            match s.submissions.get(sid) {
                None => return problem(404, "submission-not-found"),
                Some(sub) if sub.submitted => return problem(409, "submission-state-invalid"),
                Some(sub) if !sub.announced.iter().any(|a| a == aid) => {
                    drop(s);
                    return self.invalid("attachment: not announced".into());
                }
                Some(_) => {}
            }
        }
        let text = String::from_utf8_lossy(body);
        let plain = match self.decrypt(&text) {
            Ok((_, _, plain)) => plain,
            Err(e) => return self.invalid(format!("attachment: {e}")),
        };
        let mut s = self.state.lock().expect("state lock");
        s.stats.attachments_uploaded += 1;
        if let Some(sub) = s.submissions.get_mut(sid) {
            sub.uploaded.insert(aid.into(), sha512_hex(&plain));
        }
        drop(s);
        match rule {
            Some(rule) => Server::fault_answer(&rule),
            None => Response::builder()
                .status(204)
                .body(Full::new(Bytes::new()))
                .expect("a static response is valid"),
        }
    }

    fn submit(&self, sid: &str, body: &[u8], content_type: &str) -> Answer {
        let rule = self.injected("submit");
        if let Some(rule) = rule.as_ref().filter(|r| !r.take) {
            return Server::fault_answer(rule);
        }
        let sub = {
            let mut s = self.state.lock().expect("state lock");
            match s.submissions.get(sid).cloned() {
                None => return problem(404, "submission-not-found"),
                Some(sub) if sub.submitted => {
                    s.stats.duplicates_refused += 1;
                    return problem(409, "submission-state-invalid");
                }
                Some(sub) => sub,
            }
        };
        if !content_type.starts_with("application/json") {
            return self.invalid(format!("submit: content type {content_type}"));
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return self.invalid("submit: not JSON".into());
        };
        let (Some(meta), Some(data)) =
            (v["encryptedMetadata"].as_str(), v["encryptedData"].as_str())
        else {
            return self.invalid("submit: encryptedMetadata or encryptedData missing".into());
        };
        let (meta_kid, meta_cty, meta) = match self.decrypt(meta) {
            Ok(m) => m,
            Err(e) => return self.invalid(format!("submit: metadata: {e}")),
        };
        let (_, data_cty, data) = match self.decrypt(data) {
            Ok(d) => d,
            Err(e) => return self.invalid(format!("submit: data: {e}")),
        };
        let Ok(meta) = serde_json::from_slice::<Value>(&meta) else {
            return self.invalid("submit: metadata is not JSON".into());
        };
        let errors: Vec<String> = self
            .schema
            .iter_errors(&meta)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return self.invalid(format!(
                "submit: metadata not valid against the schema: {errors:?}"
            ));
        }
        let checks = [
            (
                meta_cty == "application/json",
                "metadata cty is not application/json",
            ),
            (
                data_cty == "application/xml",
                "data cty is not application/xml",
            ),
            (data.first() == Some(&b'<'), "data is not XML"),
            (
                meta["$schema"]
                    == "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json",
                "metadata $schema is not 1.0.0",
            ),
            (
                meta["contentStructure"]["data"]["hash"]["content"] == sha512_hex(&data),
                "data hash does not match",
            ),
            (
                meta["publicServiceType"]["identifier"] == sub.service,
                "publicServiceType is not the announced service",
            ),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return self.invalid(format!("submit: {what}"));
        }
        let described: Vec<(String, String)> = meta["contentStructure"]["attachments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["attachmentId"].as_str().unwrap_or_default().to_owned(),
                            x["hash"]["content"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut ids: Vec<&String> = described.iter().map(|(id, _)| id).collect();
        ids.sort();
        let mut announced: Vec<&String> = sub.announced.iter().collect();
        announced.sort();
        if ids != announced {
            return self.invalid("submit: metadata attachments are not the announced ones".into());
        }
        for (id, hash) in &described {
            match sub.uploaded.get(id) {
                None => {
                    return self.invalid("submit: an announced attachment was not uploaded".into());
                }
                Some(h) if h != hash => {
                    return self.invalid("submit: attachment hash does not match".into());
                }
                Some(_) => {}
            }
        }
        let reference = meta["additionalReferenceInfo"]["senderReference"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut done = sub.clone();
        done.submitted = true;
        done.sender_reference = Some(reference.clone());
        let set = self.sign_event(
            &self.api_sig,
            &self.issuer,
            &done,
            "submit-submission",
            json!({}),
        );
        done.events.push(set);
        let mut s = self.state.lock().expect("state lock");
        if let Some(c) = &s.canary
            && data.windows(c.len()).any(|w| w == c.as_bytes())
        {
            s.stats.canary_decrypted += 1;
        }
        s.stats.submitted += 1;
        *s.stats.per_submission.entry(reference).or_default() += 1;
        *s.stats.keys_used.entry(meta_kid).or_default() += 1;
        s.submissions.insert(sid.into(), done);
        drop(s);
        match rule {
            Some(rule) => Server::fault_answer(&rule),
            None => json_answer(
                200,
                json!({"destinationId": self.args.destination_id, "submissionId": sid, "caseId": sub.case_id}),
            ),
        }
    }

    fn events(&self, case: &str) -> Answer {
        let s = self.state.lock().expect("state lock");
        match s.submissions.values().find(|sub| sub.case_id == case) {
            Some(sub) => json_answer(200, json!({"eventLog": sub.events})),
            None => problem(404, "case-not-found"),
        }
    }

    async fn control(self: Arc<Self>, req: Request<Incoming>) -> Answer {
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match (method.as_str(), path.as_str()) {
            ("PUT", "/faults") => match serde_json::from_value::<Vec<FaultRule>>(v) {
                Ok(rules) => {
                    self.state.lock().expect("state lock").faults = rules;
                    json_answer(200, json!({}))
                }
                Err(e) => json_answer(400, json!({"error": e.to_string()})),
            },
            ("PUT", "/delay") => {
                self.state.lock().expect("state lock").delay_ms = v["ms"].as_u64().unwrap_or(0);
                json_answer(200, json!({}))
            }
            ("PUT", "/canary") => {
                self.state.lock().expect("state lock").canary =
                    v["value"].as_str().map(str::to_owned);
                json_answer(200, json!({}))
            }
            ("POST", "/rotate-key") => {
                let n = self.state.lock().expect("state lock").key_count + 1;
                let kid = format!("encryption-key-{n}");
                match self.new_key(&kid) {
                    Ok(key) => {
                        let mut s = self.state.lock().expect("state lock");
                        s.key_count = n;
                        s.keys.insert(kid.clone(), key);
                        s.current_kid = kid.clone();
                        json_answer(200, json!({"kid": kid}))
                    }
                    Err(e) => json_answer(500, json!({"error": e.to_string()})),
                }
            }
            ("POST", "/decide") => {
                let reference = v["sender_reference"].as_str().unwrap_or_default();
                let accept = v["accept"].as_bool().unwrap_or(true);
                let mut s = self.state.lock().expect("state lock");
                let Some(sub) = s
                    .submissions
                    .values_mut()
                    .find(|x| x.submitted && x.sender_reference.as_deref() == Some(reference))
                else {
                    return json_answer(
                        404,
                        json!({"error": "no submitted submission with that reference"}),
                    );
                };
                let (event, body) = if accept {
                    ("accept-submission", json!({}))
                } else {
                    let problems: Vec<Value> = v["problems"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|p| json!({"type": format!("{PROBLEMS}{}", p.as_str().unwrap_or("other")), "title": "Der Antrag von Erika Mustermann ist unvollständig", "detail": "geb. 12.08.1964"}))
                        .collect();
                    ("reject-submission", json!({"problems": problems}))
                };
                let snapshot = sub.clone();
                let set = self.sign_event(
                    &self.destination_sig,
                    &self.args.destination_id,
                    &snapshot,
                    event,
                    body,
                );
                sub.events.push(set);
                json_answer(200, json!({}))
            }
            ("GET", "/stats") => {
                let s = self.state.lock().expect("state lock");
                json_answer(200, serde_json::to_value(&s.stats).unwrap_or_default())
            }
            ("GET", "/submissions") => {
                let s = self.state.lock().expect("state lock");
                let list: Vec<&Submission> = s.submissions.values().collect();
                json_answer(200, serde_json::to_value(list).unwrap_or_default())
            }
            _ => json_answer(404, json!({})),
        }
    }
}

fn tls_config(args: &Args) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_file_iter(&args.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&args)?));
    let schema_path = args.schema.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas/fit-connect/metadata.schema.v1.0.0.json")
    });
    let schema: Value = serde_json::from_slice(&std::fs::read(&schema_path)?)?;
    let schema = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("metadata schema: {e}"))?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Test-Verwaltungs-PKI");
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let key_ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate()?)?;
    std::fs::write(&args.key_ca_out, key_ca.pem())?;
    let https = TcpListener::bind(args.listen).await?;
    let control = TcpListener::bind(args.control).await?;
    let https_addr = https.local_addr()?;
    let server = Arc::new(Server {
        state: Mutex::new(State {
            tokens: HashSet::new(),
            keys: HashMap::new(),
            current_kid: String::new(),
            key_count: 0,
            submissions: HashMap::new(),
            faults: Vec::new(),
            delay_ms: 0,
            canary: None,
            stats: Stats::default(),
        }),
        issuer: format!("https://{https_addr}/"),
        key_ca,
        api_sig: SigningKey::generate("submission-api-1")?,
        destination_sig: SigningKey::generate(DEST_SIG_KID)?,
        schema,
        args,
    });
    let first = server.new_key("encryption-key-1")?;
    {
        let mut s = server.state.lock().expect("state lock");
        s.keys.insert("encryption-key-1".into(), first);
        s.current_kid = "encryption-key-1".into();
        s.key_count = 1;
    }
    println!(
        "{}",
        json!({"https": https_addr.to_string(), "control": control.local_addr()?.to_string()})
    );
    tokio::spawn(doubles::serve(
        control,
        None,
        Arc::clone(&server),
        |s, req| Box::pin(s.control(req)),
    ));
    doubles::serve(https, Some(acceptor), server, |s, req| {
        Box::pin(s.receive(req))
    })
    .await?;
    Ok(())
}
