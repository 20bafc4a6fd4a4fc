//! The XTA 2 test double: an XTA server (XTA-WS 2.1.1 management and send
//! ports, SOAP 1.2) over HTTPS that requires a client certificate from the
//! configured CA, as a real one would. Strict on what it receives:
//!
//! - every request is unpacked (MTOM/XOP `multipart/related`, or plain
//!   `application/soap+xml`) and the whole SOAP envelope validated against
//!   the XTA schemas (`schemas/xta2/kurier-soap12-strict.xsd`, libxml2 on a
//!   thread of its own); an invalid one is answered with a SOAP fault
//!   (`ParameterIsNotValidException`, 9022) and recorded under `invalid`;
//! - `wsa:Action`, `wsa:MessageID` and `wsa:To` must be there, the HTTP
//!   content type must be SOAP 1.2 (sendMessage: MTOM), the management
//!   operations must carry the `Author` header, and `sendMessage` must use
//!   a message id that `createMessageId` handed out (else 9070);
//! - a message id sent again is answered 9024 (already used) and counted;
//!   each accepted message is recorded with its message id, the submission
//!   id from `MsgIdentification/ProcessRef/Requester` and the sha256 of
//!   its content, so tests can assert one message per submission.
//!
//! `checkAccountActive` answers an empty body (the account is active)
//! unless a fault is injected for it (`PermissionDeniedException` 9011:
//! locked). `lookupService` answers a `LookupServiceResponse` quoting the
//! asked reader and service, `ServiceIsAvailable` true unless the control
//! port says otherwise; each answer is validated before it goes out. Both
//! need the `Author` header and are counted (`account_checks`,
//! `lookup_calls`, the asked reader and service under `lookups`).
//!
//! `getTransportReport` (management port, `Author` header required) answers
//! a `TransportReport` for a message it took: its `MessageMetaData` as sent,
//! and the status set for it through the control port (default 0, open),
//! with `ErrorList` (red) or `WarnList` (yellow) records of the given codes.
//! Each report answer is itself validated against the schemas before it
//! goes out (problems under `invalid_answers`). An id it never took is
//! answered 9070 (`InvalidMessageIDException`).
//!
//! Control port (plain HTTP, loopback): `PUT /faults` with a JSON list of
//! `{"operation": "sendMessage"|"createMessageId"|"getTransportReport"|
//! "checkAccountActive"|"lookupService",
//! "code": 9030, "times": 1, "take": false}` (each matching request consumes
//! one; `take: true` takes the message first and then answers the fault: a
//! lost answer); `PUT /reports` with a JSON list of `{"submission_id": "…",
//! "status": 0|1|2|3, "codes": ["9032"], "reason": "…"}` (what the reports
//! of that submission's message say from now on; without `submission_id`:
//! the default for all others);
//! `PUT /lookup` with `{"answer": "available"|"unavailable"|"unknown",
//! "times": 2}` (the next lookupService answers; without `times`: all of
//! them, until changed; after `times`: available again);
//! `PUT /delay` with `{"ms": 200}` (every sendMessage waits that long);
//! `GET /stats`; `GET /messages`.
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
use hyper_util::rt::{TokioExecutor, TokioIo};
use kurier::delivery::xta2::{mtom, schema::SoapValidator, soap};
use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "XTA 2 (XTA-WS 2.1.1) test server with required client certificates")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// CA that client certificates must chain to.
    #[arg(long)]
    client_ca: PathBuf,
    /// Directory of the XTA schemas (default: this tree's schemas/xta2).
    #[arg(long)]
    schemas: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
struct FaultRule {
    operation: String,
    code: u16,
    #[serde(default = "one")]
    times: u32,
    /// Take the message, then answer the fault (an answer that got lost).
    #[serde(default)]
    take: bool,
}

fn one() -> u32 {
    1
}

/// What the transport report of a message says.
#[derive(Debug, Clone, Default, Deserialize)]
struct ReportRule {
    #[serde(default)]
    submission_id: Option<String>,
    /// 0 open, 1 green, 2 yellow, 3 red.
    #[serde(default)]
    status: u8,
    /// Codes of the ErrorList (red) or WarnList (yellow) records.
    #[serde(default)]
    codes: Vec<String>,
    /// The records' free-text `Reason`.
    #[serde(default)]
    reason: Option<String>,
}

/// What lookupService answers.
#[derive(Debug, Clone, Deserialize)]
struct LookupRule {
    /// `available`, `unavailable` or `unknown`.
    answer: String,
    #[serde(default)]
    times: Option<u32>,
}

/// One lookupService question: the reader and service asked about.
#[derive(Debug, Clone, Serialize)]
struct Lookup {
    reader: String,
    service: String,
}

#[derive(Debug, Clone, Serialize)]
struct Message {
    message_id: String,
    submission_id: String,
    size: usize,
    sha256: String,
}

#[derive(Default, Serialize)]
struct Stats {
    requests: u64,
    created: u64,
    send_calls: u64,
    accepted: u64,
    duplicates_refused: u64,
    faults_answered: u64,
    /// Requests whose body never fully arrived (the client was killed).
    aborted: u64,
    invalid: Vec<String>,
    /// getTransportReport calls, and report answers per status sent.
    report_calls: u64,
    reports_answered: HashMap<String, u64>,
    /// Report answers of this double that failed the schemas (a bug here).
    invalid_answers: Vec<String>,
    /// Accepted messages per submission id: never more than one.
    per_submission: HashMap<String, u32>,
    /// checkAccountActive and lookupService calls, and what was looked up.
    account_checks: u64,
    lookup_calls: u64,
    lookups: Vec<Lookup>,
}

#[derive(Default)]
struct State {
    issued: HashSet<String>,
    messages: HashMap<String, Message>,
    /// The `MessageMetaData` element of each taken message, as sent.
    metadata: HashMap<String, String>,
    /// Report rules by submission id, and the default.
    reports: HashMap<String, ReportRule>,
    report_default: ReportRule,
    faults: Vec<FaultRule>,
    lookup: Option<LookupRule>,
    delay_ms: u64,
    stats: Stats,
}

struct Server {
    state: Mutex<State>,
    validator: SoapValidator,
}

/// What the double reads from a request envelope.
#[derive(Default, Debug)]
struct Parsed {
    action: Option<String>,
    request_id: Option<String>,
    to: Option<String>,
    author: bool,
    meta_message_id: Option<String>,
    requester: Option<String>,
    message_b64: Option<String>,
    /// getTransportReport: the body's `wsa:MessageID`.
    report_for: Option<String>,
    /// The `MessageMetaData` header element, as it was sent.
    metadata: Option<String>,
    /// lookupService: the reader's identifier and its type, and the service.
    lookup_reader: Option<(String, String)>,
    lookup_service: Option<String>,
}

fn parse(envelope: &[u8]) -> Parsed {
    let mut reader = NsReader::from_reader(envelope);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut p = Parsed::default();
    let mut metadata_start = None;
    let mut identifier_type = String::new();
    loop {
        let before = reader.buffer_position() as usize;
        let Ok(event) = reader.read_event_into(&mut buf) else {
            break;
        };
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_owned());
                if path.join("/") == "Envelope/Header/MessageMetaData" {
                    metadata_start = Some(before);
                }
                if e.local_name().as_ref() == "Identifier" {
                    identifier_type = e
                        .try_get_attribute("type")
                        .ok()
                        .flatten()
                        .map(|a| {
                            let value: &str = &a.value;
                            value.to_owned()
                        })
                        .unwrap_or_default();
                }
                text.clear();
            }
            Event::Empty(e) if path.len() == 2 && e.local_name().as_ref() == "Author" => {
                p.author = true;
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::End(_) => {
                let joined = path.join("/");
                let value = Some(text.trim().to_owned());
                match joined.as_str() {
                    "Envelope/Header/Action" => p.action = value,
                    "Envelope/Header/MessageID" => p.request_id = value,
                    "Envelope/Header/To" => p.to = value,
                    "Envelope/Header/Author" => p.author = true,
                    "Envelope/Header/MessageMetaData/MsgIdentification/MessageID" => {
                        p.meta_message_id = value
                    }
                    "Envelope/Header/MessageMetaData/MsgIdentification/ProcessRef/Requester" => {
                        p.requester = value
                    }
                    "Envelope/Body/GenericContentContainer/ContentContainer/Message" => {
                        p.message_b64 = value
                    }
                    "Envelope/Body/MessageID" => p.report_for = value,
                    "Envelope/Body/LookupServiceRequest/LookupServiceRequestList/LookupService/Reader/Identifier" => {
                        p.lookup_reader = value.map(|v| (v, identifier_type.clone()))
                    }
                    "Envelope/Body/LookupServiceRequest/LookupServiceRequestList/LookupService/ServiceType" => {
                        p.lookup_service = value
                    }
                    "Envelope/Header/MessageMetaData" => {
                        let end = reader.buffer_position() as usize;
                        p.metadata = metadata_start
                            .and_then(|start| envelope.get(start..end))
                            .map(|m| String::from_utf8_lossy(m).into_owned());
                    }
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            _ => {}
        }
        buf.clear();
    }
    p
}

fn soap_answer(status: u16, body: &str) -> Response<Full<Bytes>> {
    soap_response(status, soap_envelope(body))
}

fn soap_envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{}" xmlns:wsa="{}" xmlns:xta="{}"><env:Header><wsa:Action>urn:answer</wsa:Action><wsa:MessageID>urn:uuid:{}</wsa:MessageID></env:Header><env:Body>{body}</env:Body></env:Envelope>"#,
        soap::NS_SOAP,
        soap::NS_WSA,
        soap::NS_XTA,
        uuid::Uuid::new_v4()
    )
}

fn soap_response(status: u16, envelope: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(Full::new(Bytes::from(envelope)))
        .expect("a static response is valid")
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn fault(code: u16, reason: &str) -> Response<Full<Bytes>> {
    let (exception, sender) = match code {
        9010..=9014 => ("PermissionDeniedException", true),
        9050..=9052 => ("MessageSchemaViolationException", true),
        9060 => ("MessageVirusDetectionException", true),
        9070 => ("InvalidMessageIDException", true),
        9080 | 9081 => ("SyncAsyncException", true),
        9020..=9024 | 9100 | 9101 => ("ParameterIsNotValidException", true),
        _ => ("XTAWSTechnicalProblemException", false),
    };
    let value = if sender { "env:Sender" } else { "env:Receiver" };
    let reason = xml_escape(reason);
    soap_answer(
        if sender { 400 } else { 500 },
        &format!(
            r#"<env:Fault><env:Code><env:Value>{value}</env:Value></env:Code><env:Reason><env:Text xml:lang="de">{reason}</env:Text></env:Reason><env:Detail><xta:{exception}><errorCode listURI="urn:de:xta:webservice:codeliste:fehlernummer" listVersionID="1.0"><code>{code}</code><name>{reason}</name></errorCode></xta:{exception}></env:Detail></env:Fault>"#
        ),
    )
}

impl Server {
    fn injected(&self, operation: &str) -> Option<FaultRule> {
        let mut s = self.state.lock().expect("state lock");
        let at = s
            .faults
            .iter()
            .position(|r| r.operation == operation && r.times > 0)?;
        s.faults[at].times -= 1;
        let rule = s.faults[at].clone();
        if s.faults[at].times == 0 {
            s.faults.remove(at);
        }
        Some(rule)
    }

    fn refuse(&self, problem: String) -> Response<Full<Bytes>> {
        let mut s = self.state.lock().expect("state lock");
        s.stats.invalid.push(problem.clone());
        s.stats.faults_answered += 1;
        drop(s);
        fault(9022, &problem)
    }

    async fn receive(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.state.lock().expect("state lock").stats.requests += 1;
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
            // The client went away mid-request (a killed Kurier): nothing
            // arrived, nothing is invalid, and no one reads this answer.
            self.state.lock().expect("state lock").stats.aborted += 1;
            return fault(9000, "request aborted");
        };
        let lower = content_type.to_ascii_lowercase();
        let mtom = lower.starts_with("multipart/related")
            && lower.contains("type=\"application/xop+xml\"")
            && lower.contains("start-info=\"application/soap+xml");
        if !(mtom || lower.starts_with("application/soap+xml")) {
            return self.refuse(format!("content type is not SOAP 1.2: {content_type}"));
        }
        let envelope = match mtom::unpack(&content_type, &body) {
            Ok(e) => e,
            Err(e) => return self.refuse(format!("MTOM: {e}")),
        };
        if let Err(problems) = self.validator.validate(envelope.clone()).await {
            return self.refuse(format!(
                "not valid against the XTA schemas: {}",
                problems.join("; ")
            ));
        }
        let p = parse(&envelope);
        let (Some(action), Some(_), Some(to)) = (&p.action, &p.request_id, &p.to) else {
            return self.refuse("a WS-Addressing header (Action, MessageID, To) is missing".into());
        };
        if !to.starts_with("https://") {
            return self.refuse("wsa:To is not the https endpoint".into());
        }
        match action.as_str() {
            soap::action::CREATE_MESSAGE_ID
            | soap::action::CHECK_ACCOUNT_ACTIVE
            | soap::action::LOOKUP_SERVICE
            | soap::action::GET_TRANSPORT_REPORT
                if !p.author =>
            {
                self.refuse("the Author header is missing".into())
            }
            soap::action::CREATE_MESSAGE_ID => {
                if let Some(rule) = self.injected("createMessageId") {
                    self.state.lock().expect("state lock").stats.faults_answered += 1;
                    return fault(rule.code, "injected fault");
                }
                let id = format!("urn:de:xta:messageid:kurier-test:{}", uuid::Uuid::new_v4());
                let mut s = self.state.lock().expect("state lock");
                s.issued.insert(id.clone());
                s.stats.created += 1;
                drop(s);
                soap_answer(200, &format!("<wsa:MessageID>{id}</wsa:MessageID>"))
            }
            soap::action::CHECK_ACCOUNT_ACTIVE => {
                self.state.lock().expect("state lock").stats.account_checks += 1;
                if let Some(rule) = self.injected("checkAccountActive") {
                    self.state.lock().expect("state lock").stats.faults_answered += 1;
                    return fault(rule.code, "injected fault");
                }
                soap_answer(200, "")
            }
            soap::action::LOOKUP_SERVICE => self.lookup_service(p).await,
            soap::action::GET_TRANSPORT_REPORT => self.transport_report(p).await,
            soap::action::SEND_MESSAGE if !mtom => {
                self.refuse("sendMessage must be MTOM (multipart/related)".into())
            }
            soap::action::SEND_MESSAGE => self.send_message(p).await,
            other => self.refuse(format!("operation {other} is not served here")),
        }
    }

    async fn send_message(&self, p: Parsed) -> Response<Full<Bytes>> {
        let delay = {
            let mut s = self.state.lock().expect("state lock");
            s.stats.send_calls += 1;
            s.delay_ms
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let (Some(id), Some(requester), Some(b64)) =
            (p.meta_message_id, p.requester, p.message_b64)
        else {
            return self
                .refuse("MessageMetaData without message id or ProcessRef/Requester".into());
        };
        let Ok(content) =
            base64::engine::general_purpose::STANDARD.decode(b64.replace(char::is_whitespace, ""))
        else {
            return self.refuse("Message is not base64".into());
        };
        let rule = self.injected("sendMessage");
        if let Some(rule) = &rule
            && !rule.take
        {
            self.state.lock().expect("state lock").stats.faults_answered += 1;
            return fault(rule.code, "injected fault");
        }
        let mut s = self.state.lock().expect("state lock");
        if !s.issued.contains(&id) {
            s.stats.faults_answered += 1;
            return fault(9070, "message id unknown for the account");
        }
        if s.messages.contains_key(&id) {
            s.stats.duplicates_refused += 1;
            s.stats.faults_answered += 1;
            return fault(9024, "MessageID ist bereits vergeben.");
        }
        if let Some(metadata) = p.metadata {
            s.metadata.insert(id.clone(), metadata);
        }
        s.messages.insert(
            id.clone(),
            Message {
                message_id: id,
                submission_id: requester.clone(),
                size: content.len(),
                sha256: kurier_e2e::sha256_hex(&content),
            },
        );
        s.stats.accepted += 1;
        *s.stats.per_submission.entry(requester).or_default() += 1;
        if let Some(rule) = rule {
            s.stats.faults_answered += 1;
            return fault(rule.code, "injected fault after taking the message");
        }
        soap_answer(200, "")
    }

    async fn lookup_service(&self, p: Parsed) -> Response<Full<Bytes>> {
        let (Some((reader, kind)), Some(service)) = (p.lookup_reader, p.lookup_service) else {
            return self.refuse("lookupService without Reader or ServiceType".into());
        };
        let answer = {
            let mut s = self.state.lock().expect("state lock");
            s.stats.lookup_calls += 1;
            s.stats.lookups.push(Lookup {
                reader: reader.clone(),
                service: service.clone(),
            });
            match s.lookup.as_mut() {
                Some(rule) => {
                    let answer = rule.answer.clone();
                    if let Some(times) = rule.times.as_mut() {
                        *times = times.saturating_sub(1);
                        if *times == 0 {
                            s.lookup = None;
                        }
                    }
                    answer
                }
                None => "available".to_owned(),
            }
        };
        if let Some(rule) = self.injected("lookupService") {
            self.state.lock().expect("state lock").stats.faults_answered += 1;
            return fault(rule.code, "injected fault");
        }
        let value = match answer.as_str() {
            "unavailable" => "<xta:ServiceIsAvailable>false</xta:ServiceIsAvailable>",
            "unknown" => "<xta:ServiceIsAvailableUnknown>true</xta:ServiceIsAvailableUnknown>",
            _ => "<xta:ServiceIsAvailable>true</xta:ServiceIsAvailable>",
        };
        let body = format!(
            r#"<xta:LookupServiceResponse xmlns:m="{}"><xta:LookupServiceResultList><xta:LookupServiceResult><m:Reader><m:Identifier type="{}">{}</m:Identifier></m:Reader><xta:ServiceType>{}</xta:ServiceType><xta:IsServiceAvailableValue>{value}</xta:IsServiceAvailableValue></xta:LookupServiceResult></xta:LookupServiceResultList></xta:LookupServiceResponse>"#,
            soap::NS_META,
            xml_escape(&kind).replace('"', "&quot;"),
            xml_escape(&reader),
            xml_escape(&service),
        );
        self.validated_answer(soap_envelope(&body)).await
    }

    /// Send `envelope` after validating it: the double's own answers must
    /// be what the schema defines (problems under `invalid_answers`).
    async fn validated_answer(&self, envelope: String) -> Response<Full<Bytes>> {
        if let Err(problems) = self.validator.validate(envelope.clone().into_bytes()).await {
            self.state
                .lock()
                .expect("state lock")
                .stats
                .invalid_answers
                .push(problems.join("; "));
        }
        soap_response(200, envelope)
    }

    async fn transport_report(&self, p: Parsed) -> Response<Full<Bytes>> {
        self.state.lock().expect("state lock").stats.report_calls += 1;
        let Some(id) = p.report_for else {
            return self.refuse("getTransportReport without a MessageID in the body".into());
        };
        if let Some(rule) = self.injected("getTransportReport") {
            self.state.lock().expect("state lock").stats.faults_answered += 1;
            return fault(rule.code, "injected fault");
        }
        let (rule, metadata) = {
            let mut s = self.state.lock().expect("state lock");
            let (Some(message), Some(metadata)) = (s.messages.get(&id), s.metadata.get(&id)) else {
                s.stats.faults_answered += 1;
                return fault(9070, "message id unknown for the account");
            };
            let rule = s
                .reports
                .get(&message.submission_id)
                .unwrap_or(&s.report_default)
                .clone();
            let metadata = metadata.clone();
            *s.stats
                .reports_answered
                .entry(rule.status.to_string())
                .or_default() += 1;
            (rule, metadata)
        };
        let at = kurier::domain::time::now();
        let records = |list: &str, item: &str| -> String {
            let reason = xml_escape(rule.reason.as_deref().unwrap_or("Meldung"));
            let items: String = rule
                .codes
                .iter()
                .map(|code| {
                    format!(
                        r#"<xta:{item}><xta:Timestamp>{at}</xta:Timestamp><xta:Code listURI="urn:de:xta:webservice:codeliste:fehlernummer" listVersionID="1.0"><code>{}</code></xta:Code><xta:Reason>{reason}</xta:Reason></xta:{item}>"#,
                        xml_escape(code)
                    )
                })
                .collect();
            format!("<xta:{list}>{items}</xta:{list}>")
        };
        let lists = match rule.status {
            3 => records("ErrorList", "Error"),
            2 => records("WarnList", "Warning"),
            _ => String::new(),
        };
        let body = format!(
            r#"<xta:TransportReport xmlns:m="{}">{metadata}<xta:ReportTime>{at}</xta:ReportTime><xta:XTAServerIdentity>xta2-authority</xta:XTAServerIdentity><xta:MessageStatus><xta:Status>{}</xta:Status>{lists}</xta:MessageStatus></xta:TransportReport>"#,
            soap::NS_META,
            rule.status
        );
        self.validated_answer(soap_envelope(&body)).await
    }

    async fn control(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json = |status: u16, value: serde_json::Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(value.to_string())))
                .expect("a static response is valid")
        };
        let mut s = self.state.lock().expect("state lock");
        match (method.as_str(), path.as_str()) {
            ("PUT", "/faults") => match serde_json::from_slice::<Vec<FaultRule>>(&body) {
                Ok(rules) => {
                    s.faults = rules;
                    json(200, serde_json::json!({}))
                }
                Err(e) => json(400, serde_json::json!({"error": e.to_string()})),
            },
            ("PUT", "/reports") => match serde_json::from_slice::<Vec<ReportRule>>(&body) {
                Ok(rules) => {
                    for rule in rules {
                        match rule.submission_id.clone() {
                            Some(id) => {
                                s.reports.insert(id, rule);
                            }
                            None => s.report_default = rule,
                        }
                    }
                    json(200, serde_json::json!({}))
                }
                Err(e) => json(400, serde_json::json!({"error": e.to_string()})),
            },
            ("PUT", "/lookup") => match serde_json::from_slice::<LookupRule>(&body) {
                Ok(rule)
                    if ["available", "unavailable", "unknown"].contains(&rule.answer.as_str()) =>
                {
                    s.lookup = Some(rule);
                    json(200, serde_json::json!({}))
                }
                Ok(rule) => json(
                    400,
                    serde_json::json!({"error": format!("unknown answer {:?}", rule.answer)}),
                ),
                Err(e) => json(400, serde_json::json!({"error": e.to_string()})),
            },
            ("PUT", "/delay") => {
                s.delay_ms = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["ms"].as_u64())
                    .unwrap_or(0);
                json(200, serde_json::json!({}))
            }
            ("GET", "/stats") => json(200, serde_json::to_value(&s.stats).unwrap_or_default()),
            ("GET", "/messages") => {
                let list: Vec<&Message> = s.messages.values().collect();
                json(200, serde_json::to_value(list).unwrap_or_default())
            }
            _ => json(404, serde_json::json!({})),
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
    let dir = args
        .schemas
        .clone()
        .unwrap_or_else(kurier::delivery::xta2::schema::source_dir);
    let validator = SoapValidator::start(&dir).map_err(anyhow::Error::msg)?;
    let server = Arc::new(Server {
        state: Mutex::new(State::default()),
        validator,
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
    let control_server = Arc::clone(&server);
    tokio::spawn(async move {
        while let Ok((stream, _)) = control.accept().await {
            let a = Arc::clone(&control_server);
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
        let a = Arc::clone(&server);
        tokio::spawn(async move {
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
