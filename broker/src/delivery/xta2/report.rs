//! XTA 2 transport reports as the source of the authority's later answer
//! ([`crate::delivery::answers::ReportSource`]): `getTransportReport` on the management
//! port for each delivered message's XTA message id, and its
//! `MessageStatus/Status` read as the XTA-WS 2.1.1 schema defines it
//! (`XTA-Webservice-Datentypen.xsd`, `MessageStatusType`):
//!
//! | Status | spec | answer |
//! |---|---|---|
//! | 0 offen | still being processed | none yet: still awaited |
//! | 1 grün | no errors or warnings | `accepted_by_authority` |
//! | 2 gelb | warnings, but no critical errors | `accepted_by_authority`, with the warnings' codes |
//! | 3 rot | critical errors | `rejected_by_authority`, with the errors' codes |
//!
//! Yellow is an acceptance: the schema sets Status only once the report is
//! closed ("nach Abschluss des TransportReports"), as the highest light of
//! its ErrorList, WarnList and InfoList, and defines yellow as "Warnungen,
//! aber keine kritischen Fehler". Without a critical error the transport
//! was completed and the message reached its reader; the warnings' codes go
//! with the event so the portal sees them.
//!
//! Faults are mapped as on the send path ([`super::classify`]): a transient
//! fault, Retry-After or no answer ends the round for the destination (asked
//! again at the next); a refusal (e.g. 9070, message id unknown to the
//! account) concerns that message only, which stays awaited and visible to
//! operators. Only `code` values of the error and warning records are read;
//! the records' `Reason` texts are free text and are never read or kept.

use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::classify::{self, Answer};
use super::client::{Xta2, post, soap_content_type};
use super::soap::{self, NS_XTA};
use crate::delivery::answers::{
    Answers, AuthorityAnswer, Awaiting, PollFuture, ReportSource, TransportError,
};
use crate::queue::decision::{Cause, Outcome};

/// Codes read from one report at most (the poller keeps 16 of them).
const MAX_CODES_READ: usize = 64;

/// The transport reports of one XTA 2 destination, over its current client.
pub struct Reports<'a> {
    xta2: &'a Xta2,
    client: Arc<reqwest::Client>,
    endpoint: &'a reqwest::Url,
}

impl Xta2 {
    /// The report source of this destination ([`crate::delivery::Deliverer::report_source`]).
    pub fn reports<'a>(
        &'a self,
        client: Arc<reqwest::Client>,
        endpoint: &'a reqwest::Url,
    ) -> Reports<'a> {
        Reports {
            xta2: self,
            client,
            endpoint,
        }
    }
}

/// What a `TransportReport` says, as far as Kurier reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransportReport {
    /// `MessageStatus/Status`.
    pub status: Option<i64>,
    /// `MessageMetaData/MsgIdentification/wsa:MessageID`: the message the
    /// report is about.
    pub message_id: Option<String>,
    /// `Code/code` of each `ErrorList/Error`.
    pub error_codes: Vec<String>,
    /// `Code/code` of each `WarnList/Warning`.
    pub warning_codes: Vec<String>,
}

impl TransportReport {
    /// The answer the report gives (the table above); `None`: still open,
    /// or a status the schema does not define.
    pub fn answer(&self) -> Option<AuthorityAnswer> {
        match self.status? {
            1 => Some(AuthorityAnswer::accepted(Vec::new())),
            2 => Some(AuthorityAnswer::accepted(self.warning_codes.clone())),
            3 => Some(AuthorityAnswer::rejected(self.error_codes.clone())),
            _ => None,
        }
    }
}

/// Read the `TransportReport` in a SOAP answer's body.
pub fn read(envelope: &[u8]) -> Result<TransportReport, classify::NotSoap> {
    let mut reader = NsReader::from_reader(envelope);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut report = TransportReport::default();
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|_| classify::NotSoap)?;
        let in_xta = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NS_XTA);
        match event {
            Event::Eof => break,
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_owned());
                text.clear();
            }
            // Only short values are read (a status, codes, an id).
            Event::Text(ref t) if text.len() < 1024 => text.push_str(&t.xml10_content()),
            Event::End(_) => {
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                let value = text.trim();
                let codes = report.error_codes.len() + report.warning_codes.len();
                match names.as_slice() {
                    [_, "Body", "TransportReport", "MessageStatus", "Status"] if in_xta => {
                        report.status = value.parse().ok();
                    }
                    [
                        _,
                        "Body",
                        "TransportReport",
                        "MessageMetaData",
                        "MsgIdentification",
                        "MessageID",
                    ] => report.message_id = Some(value.to_owned()),
                    [
                        _,
                        "Body",
                        "TransportReport",
                        "MessageStatus",
                        "ErrorList",
                        "Error",
                        "Code",
                        "code",
                    ] if codes < MAX_CODES_READ => report.error_codes.push(value.to_owned()),
                    [
                        _,
                        "Body",
                        "TransportReport",
                        "MessageStatus",
                        "WarnList",
                        "Warning",
                        "Code",
                        "code",
                    ] if codes < MAX_CODES_READ => report.warning_codes.push(value.to_owned()),
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(report)
}

/// Why one report brought no answer.
enum NoAnswer {
    /// About this message only (a refusal, an unreadable or foreign
    /// report): the others are asked.
    Skip(&'static str, Option<u16>),
    /// The server is not answering usefully: end the round.
    Stop(TransportError),
}

impl Reports<'_> {
    /// Ask for the report of one message: its answer, or `None` while open.
    async fn report(&self, message_id: &str) -> Result<Option<AuthorityAnswer>, NoAnswer> {
        let body = soap::get_transport_report(
            self.endpoint.as_str(),
            &soap::request_id(),
            &self.xta2.author,
            message_id,
        );
        let content_type = soap_content_type(soap::action::GET_TRANSPORT_REPORT);
        let (status, envelope, retry_after) =
            match post(&self.client, self.endpoint, &content_type, body).await {
                Ok(posted) => posted,
                Err(outcome) => return Err(NoAnswer::Stop(unavailable(&outcome))),
            };
        let answer = envelope
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|e| classify::read(e));
        match answer {
            Ok(Answer::Ok { .. }) if (200..300).contains(&status) => {}
            answer => {
                return Err(match classify::outcome(status, answer, retry_after) {
                    Outcome::Refused { status: code } => {
                        NoAnswer::Skip("the XTA server refused getTransportReport", Some(code))
                    }
                    other => NoAnswer::Stop(unavailable(&other)),
                });
            }
        }
        let report = envelope
            .as_deref()
            .ok()
            .and_then(|e| read(e).ok())
            .ok_or(NoAnswer::Stop(TransportError::Invalid(
                "getTransportReport answer is not a SOAP envelope",
            )))?;
        if report
            .message_id
            .as_deref()
            .is_some_and(|id| id != message_id)
        {
            return Err(NoAnswer::Skip(
                "the transport report is about another message",
                None,
            ));
        }
        match report.status {
            Some(0) => Ok(None),
            Some(1..=3) => Ok(report.answer()),
            _ => Err(NoAnswer::Skip(
                "the transport report has no status the XTA schema defines (0-3)",
                None,
            )),
        }
    }

    async fn poll_all(&self, awaiting: &[Awaiting]) -> Result<Answers, TransportError> {
        let mut answers = Vec::new();
        for a in awaiting {
            match self.report(&a.message_id).await {
                Ok(Some(answer)) => answers.push((a.submission_id.clone(), answer)),
                Ok(None) => {}
                Err(NoAnswer::Skip(why, code)) => {
                    tracing::warn!(submission_id = %a.submission_id, destination = %self.xta2.destination, xta_error_code = code, "{why}; the submission stays awaiting an answer");
                }
                // What was answered so far is kept; the rest is asked next round.
                Err(NoAnswer::Stop(e)) if answers.is_empty() => return Err(e),
                Err(NoAnswer::Stop(e)) => {
                    tracing::warn!(destination = %self.xta2.destination, error = %e, "transport reports interrupted; the rest are asked next round");
                    break;
                }
            }
        }
        Ok(answers)
    }
}

/// A send-path outcome that is not an answer, as a report source's failure.
fn unavailable(outcome: &Outcome) -> TransportError {
    match outcome {
        Outcome::Unavailable(cause) => TransportError::Unavailable(*cause),
        Outcome::Busy { status, .. } => TransportError::Unavailable(Cause::Status(*status)),
        _ => TransportError::Unavailable(Cause::Transport),
    }
}

impl ReportSource for Reports<'_> {
    fn poll<'a>(&'a self, awaiting: &'a [Awaiting]) -> PollFuture<'a> {
        Box::pin(self.poll_all(awaiting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: u8, errors: &[&str], warnings: &[&str]) -> Vec<u8> {
        let record = |list: &str, item: &str, codes: &[&str]| {
            if codes.is_empty() {
                return String::new();
            }
            let items: String = codes
                .iter()
                .map(|c| format!(r#"<x:{item}><x:Timestamp>2026-12-01T10:00:00Z</x:Timestamp><x:Code listURI="urn:x" listVersionID="1"><code>{c}</code></x:Code><x:Reason>Antrag von Frau Muster abgelehnt</x:Reason></x:{item}>"#))
                .collect();
            format!("<x:{list}>{items}</x:{list}>")
        };
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:x="http://xoev.de/transport/xta/211" xmlns:m="http://www.osci.eu/ws/2014/10/transport" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Body><x:TransportReport><m:MessageMetaData><m:MsgIdentification><a:MessageID>urn:de:xta:messageid:1</a:MessageID></m:MsgIdentification></m:MessageMetaData><x:ReportTime>2026-12-01T10:00:00Z</x:ReportTime><x:XTAServerIdentity>x</x:XTAServerIdentity><x:MessageStatus><x:Status>{status}</x:Status>{}{}</x:MessageStatus></x:TransportReport></s:Body></s:Envelope>"#,
            record("ErrorList", "Error", errors),
            record("WarnList", "Warning", warnings),
        )
        .into_bytes()
    }

    #[test]
    fn the_four_lights_and_their_answers() {
        let open = read(&report(0, &[], &[])).unwrap();
        assert_eq!(open.status, Some(0));
        assert_eq!(open.answer(), None);
        assert_eq!(open.message_id.as_deref(), Some("urn:de:xta:messageid:1"));
        let green = read(&report(1, &[], &[])).unwrap();
        assert_eq!(green.answer(), Some(AuthorityAnswer::accepted(vec![])));
        let yellow = read(&report(2, &[], &["W100"])).unwrap();
        assert_eq!(
            yellow.answer(),
            Some(AuthorityAnswer::accepted(vec!["W100".into()]))
        );
        let red = read(&report(3, &["9032", "E7"], &["W1"])).unwrap();
        assert_eq!(red.error_codes, ["9032", "E7"]);
        assert_eq!(
            red.answer(),
            Some(AuthorityAnswer::rejected(vec!["9032".into(), "E7".into()]))
        );
        // Reason texts are never read.
        assert!(!format!("{red:?}").contains("Muster"));
        assert_eq!(read(&report(7, &[], &[])).unwrap().answer(), None);
        assert!(read(b"<a><b></a>").is_err());
    }
}
