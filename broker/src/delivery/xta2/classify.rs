//! What an XTA-WS answer means: the SOAP answer (or fault) read into an
//! [`Answer`], and each answer mapped to the one [`Outcome`] type that
//! [`crate::queue::decision::decide`] turns into retry, park, receipt or
//! dead letter. The fault table:
//!
//! | XTA error code | meaning | outcome |
//! |---|---|---|
//! | 9024 | message id already used: this message was taken before | `AlreadyAccepted` (delivered, not sent again) |
//! | 9023, 9050, 9051, 9052, 9060 | too large, not schema-valid, wrong encoding, violates the service profile, malicious code | `Refused` (dead letter `authority_rejected`, code kept) |
//! | 9020, 9021, 9022, 9070, 9080, 9081, 9100, 9101 | Kurier's request is wrong (parameters, unknown id, sync/async, NotBefore) | `Refused` (replayable once fixed) |
//! | 9010–9014 | certificate expired, account locked or missing, service not booked, certificate ≠ author | `Unavailable`: a set-up problem an operator fixes; the submissions park meanwhile, as for a TLS error |
//! | 9000, 9030, 9031, 9032, any other code, a fault without code | unspecified, internal, directory, delivery error | `Unavailable` (retry with backoff, park) |
//!
//! The pre-checks (`checkAccountActive`, `lookupService`, when the
//! destination's `xta_precheck` asks for them) go through the same table:
//! an inactive account is the server's `PermissionDeniedException` (9011
//! locked, 9012 missing), so it parks like those faults on `sendMessage`;
//! a reader that does not offer the service ([`read_lookup`]) is
//! `Unavailable(XtaServiceNotOffered)`, parked like 9013 (service not
//! booked). Neither is a refusal: both are about the destination, not the
//! submission, and an operator fixes them with the authority. Nothing is
//! sent by a pre-check, so none of its answers counts as delivered
//! ([`precheck_outcome`]).
//!
//! Answers are untrusted: only element names, the fault's code and the
//! XTA error code are read; fault texts are never kept or logged (they may
//! quote the message).

use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::soap::{NS_SOAP, NS_WSA, NS_XTA};
use crate::queue::decision::{self, Cause, Outcome};

/// The longest XTA message id kept, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 256;

/// A SOAP answer, as far as Kurier reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A body without a fault; `message_id` is the body's `wsa:MessageID`
    /// (the answer of createMessageId), `report_status` a TransportReport's
    /// `MessageStatus/Status`.
    Ok {
        message_id: Option<String>,
        report_status: Option<i64>,
    },
    /// A SOAP fault.
    Fault(Fault),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `Code/Value` is `Sender` (else `Receiver` or other).
    pub sender: bool,
    /// The local name of the detail's element, e.g. `PermissionDeniedException`.
    pub exception: Option<String>,
    /// `errorCode/code` of the XTA exception.
    pub code: Option<u16>,
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the answer is not a SOAP 1.2 envelope")]
pub struct NotSoap;

/// Read a SOAP 1.2 envelope (XOP already resolved).
pub fn read(envelope: &[u8]) -> Result<Answer, NotSoap> {
    let mut reader = NsReader::from_reader(envelope);
    let mut buf = Vec::new();
    // (namespace, local name) of the open elements.
    let mut path: Vec<(String, String)> = Vec::new();
    let mut seen_envelope = false;
    let mut fault: Option<Fault> = None;
    let mut message_id = None;
    let mut report_status = None;
    let mut text = String::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|_| NotSoap)?;
        let ns = match ns {
            ResolveResult::Bound(n) => n.as_ref().to_owned(),
            _ => String::new(),
        };
        match event {
            Event::Eof => break,
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name().as_ref().to_owned();
                if path.is_empty() {
                    if ns != NS_SOAP || local != "Envelope" {
                        return Err(NotSoap);
                    }
                    seen_envelope = true;
                }
                // Envelope/Body/Fault
                if path.len() == 2 && path[1].1 == "Body" && ns == NS_SOAP && local == "Fault" {
                    fault = Some(Fault {
                        sender: false,
                        exception: None,
                        code: None,
                    });
                }
                // Envelope/Body/Fault/Detail/<exception>
                if path.len() == 4
                    && path[3].1 == "Detail"
                    && let Some(f) = fault.as_mut()
                    && f.exception.is_none()
                {
                    f.exception = Some(local.clone()).filter(|n| n.len() <= 64);
                }
                text.clear();
                if matches!(event, Event::Start(_)) {
                    path.push((ns, local));
                }
            }
            // Only short values are read (codes, ids, a status).
            Event::Text(ref t) if text.len() < 1024 => text.push_str(&t.xml10_content()),
            Event::GeneralRef(_) => {}
            Event::End(_) => {
                let Some((ns, local)) = path.pop() else {
                    return Err(NotSoap);
                };
                let names: Vec<&str> = path.iter().map(|(_, l)| l.as_str()).collect();
                match (names.as_slice(), local.as_str()) {
                    // Envelope/Body/Fault/Code/Value
                    ([_, "Body", "Fault", "Code"], "Value") => {
                        if let Some(f) = fault.as_mut() {
                            f.sender = text.trim().rsplit(':').next() == Some("Sender");
                        }
                    }
                    // Envelope/Body/Fault/Detail/<exception>/errorCode/code
                    ([_, "Body", "Fault", "Detail", _, "errorCode"], "code") => {
                        if let Some(f) = fault.as_mut() {
                            f.code = text.trim().parse().ok();
                        }
                    }
                    // Envelope/Body/wsa:MessageID (createMessageId)
                    ([_, "Body"], "MessageID") if ns == NS_WSA => {
                        let id = text.trim();
                        if !id.is_empty()
                            && id.chars().count() <= MAX_MESSAGE_ID_CHARS
                            && !id.chars().any(char::is_control)
                        {
                            message_id = Some(id.to_owned());
                        }
                    }
                    // Envelope/Body/xta:TransportReport/MessageStatus/Status
                    ([_, "Body", "TransportReport", "MessageStatus"], "Status") if ns == NS_XTA => {
                        report_status = text.trim().parse().ok();
                    }
                    _ => {}
                }
                text.clear();
            }
            _ => {}
        }
        buf.clear();
    }
    if !seen_envelope {
        return Err(NotSoap);
    }
    Ok(match fault {
        Some(f) => Answer::Fault(f),
        None => Answer::Ok {
            message_id,
            report_status,
        },
    })
}

/// What `lookupService` says of one service (`IsServiceAvailableValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// `ServiceIsAvailable` true.
    Offered,
    /// `ServiceIsAvailable` false.
    NotOffered,
    /// `ServiceIsAvailableUnknown`: the server does not know.
    Unknown,
}

/// One `LookupServiceResult`: the service it quotes and its availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceResult {
    pub service: String,
    pub availability: Availability,
}

/// At most this many results of one `lookupService` answer are read (Kurier
/// asks about one service).
pub const MAX_LOOKUP_RESULTS: usize = 16;

/// The results of a `lookupService` answer
/// (`Body/LookupServiceResponse/LookupServiceResultList/LookupServiceResult`);
/// a result without an availability (`xsi:nil`) is left out. Faults are
/// [`read`]'s business.
pub fn read_lookup(envelope: &[u8]) -> Result<Vec<ServiceResult>, NotSoap> {
    let mut reader = NsReader::from_reader(envelope);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut results = Vec::new();
    let (mut service, mut availability) = (String::new(), None);
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|_| NotSoap)?;
        let xta = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NS_XTA);
        match event {
            Event::Eof => break,
            Event::Start(ref e) => {
                path.push(e.local_name().as_ref().to_owned());
                text.clear();
            }
            Event::Text(ref t) if text.len() < 1024 => text.push_str(&t.xml10_content()),
            Event::End(_) => {
                let local = path.pop().ok_or(NotSoap)?;
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                const RESULT: [&str; 4] = [
                    "Body",
                    "LookupServiceResponse",
                    "LookupServiceResultList",
                    "LookupServiceResult",
                ];
                let in_result = names.len() >= 5 && names[1..5] == RESULT;
                match (names.len(), local.as_str()) {
                    (5, "ServiceType") if in_result && xta => {
                        service = text.trim().to_owned();
                    }
                    (6, "ServiceIsAvailable") if in_result && xta => {
                        availability = match text.trim() {
                            "true" | "1" => Some(Availability::Offered),
                            "false" | "0" => Some(Availability::NotOffered),
                            _ => None,
                        };
                    }
                    (6, "ServiceIsAvailableUnknown") if in_result && xta => {
                        availability = Some(Availability::Unknown);
                    }
                    (4, "LookupServiceResult") if names[1..4] == RESULT[..3] && xta => {
                        if let Some(availability) = availability.take()
                            && results.len() < MAX_LOOKUP_RESULTS
                        {
                            results.push(ServiceResult {
                                service: std::mem::take(&mut service),
                                availability,
                            });
                        }
                        service.clear();
                    }
                    _ => {}
                }
                text.clear();
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(results)
}

/// What the results say of `service`: the result that quotes it, else the
/// only result (a server may write the URI differently); `None` when the
/// answer does not say (no result, or several and none for `service`).
pub fn availability(results: &[ServiceResult], service: &str) -> Option<Availability> {
    results
        .iter()
        .find(|r| r.service == service)
        .or(match results {
            [only] => Some(only),
            _ => None,
        })
        .map(|r| r.availability)
}

/// A pre-check's exchange (`checkAccountActive`, `lookupService`): `Ok`
/// when the server answered without a fault, else the outcome that ends
/// the attempt before `createMessageId` (an empty 202 is no fault, as for
/// `sendMessage`). A pre-check sends nothing, so none of its answers may
/// count as delivered: 9024 is transient here.
pub fn precheck_outcome(
    status: u16,
    answer: Result<Answer, NotSoap>,
    retry_after: Option<Duration>,
) -> Result<(), Outcome> {
    match outcome(status, answer, retry_after) {
        Outcome::Accepted { .. } => Ok(()),
        Outcome::AlreadyAccepted { .. } => Err(Outcome::Unavailable(Cause::XtaFault(9024))),
        other => Err(other),
    }
}

/// The outcome of an XTA fault's error code (the table above).
pub fn fault_outcome(code: Option<u16>) -> Outcome {
    match code {
        Some(9024) => Outcome::AlreadyAccepted { reference: None },
        Some(
            code @ (9020 | 9021 | 9022 | 9023 | 9050 | 9051 | 9052 | 9060 | 9070 | 9080 | 9081
            | 9100 | 9101),
        ) => Outcome::Refused { status: code },
        Some(code) => Outcome::Unavailable(Cause::XtaFault(code)),
        None => Outcome::Unavailable(Cause::XtaFault(0)),
    }
}

/// What an XTA error code means, for dead-letter details (no values).
pub fn describe(code: u16) -> &'static str {
    match code {
        9000 => "unspecified error",
        9010 => "certificate expired",
        9011 => "account locked",
        9012 => "account does not exist",
        9013 => "service not booked",
        9014 => "certificate does not match the author",
        9020 => "no parameters",
        9021 => "not a valid URI",
        9022 => "invalid combination of parameters",
        9023 => "message too large",
        9024 => "message id already used",
        9030 => "internal error of the XTA server",
        9031 => "error of the directory service",
        9032 => "delivery error",
        9050 => "message not valid against its schema",
        9051 => "wrong encoding",
        9052 => "message violates the service profile",
        9060 => "malicious code detected",
        9070 => "message id unknown for the account",
        9080 => "service offered asynchronously only",
        9081 => "service offered synchronously only",
        9100 => "NotBefore date has passed",
        9101 => "NotBefore not set",
        _ => "unknown XTA error code",
    }
}

/// The outcome of one HTTP exchange with the XTA server: `status`, the
/// answer's envelope if it was one, and `Retry-After`.
pub fn outcome(
    status: u16,
    answer: Result<Answer, NotSoap>,
    retry_after: Option<Duration>,
) -> Outcome {
    match answer {
        Ok(Answer::Fault(fault)) => match fault_outcome(fault.code) {
            // A server that says when to come back is busy, not down.
            Outcome::Unavailable(_) if retry_after.is_some() => Outcome::Busy {
                status,
                retry_after,
            },
            other => other,
        },
        Ok(Answer::Ok { .. }) if (200..300).contains(&status) => Outcome::Accepted {
            status,
            reference: None,
        },
        // Not SOAP (a proxy's error page, an empty 202): the HTTP table.
        _ if status == 202 => Outcome::Accepted {
            status,
            reference: None,
        },
        _ if (200..300).contains(&status) => Outcome::Unavailable(Cause::Transport),
        _ => decision::classify(status, retry_after, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault_envelope(value: &str, exception: &str, code: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:xta="http://xoev.de/transport/xta/211"><env:Body><env:Fault><env:Code><env:Value>env:{value}</env:Value></env:Code><env:Reason><env:Text xml:lang="de">Fehler &amp; Text mit Antragsdaten</env:Text></env:Reason><env:Detail><xta:{exception}><errorCode listURI="urn:de:xta:webservice:codeliste:fehlernummer" listVersionID="1.0"><code>{code}</code><name>x</name></errorCode></xta:{exception}></env:Detail></env:Fault></env:Body></env:Envelope>"#
        )
        .into_bytes()
    }

    /// Every row of the fault table, through the reader and the classifier.
    #[test]
    fn the_fault_table() {
        let refused = |code| Outcome::Refused { status: code };
        let transient = |code| Outcome::Unavailable(Cause::XtaFault(code));
        let rows: Vec<(u16, &str, Outcome)> = vec![
            (
                9024,
                "ParameterIsNotValidException",
                Outcome::AlreadyAccepted { reference: None },
            ),
            (9023, "ParameterIsNotValidException", refused(9023)),
            (9050, "MessageSchemaViolationException", refused(9050)),
            (9051, "MessageSchemaViolationException", refused(9051)),
            (9052, "MessageSchemaViolationException", refused(9052)),
            (9060, "MessageVirusDetectionException", refused(9060)),
            (9020, "ParameterIsNotValidException", refused(9020)),
            (9021, "ParameterIsNotValidException", refused(9021)),
            (9022, "ParameterIsNotValidException", refused(9022)),
            (9070, "InvalidMessageIDException", refused(9070)),
            (9080, "SyncAsyncException", refused(9080)),
            (9081, "SyncAsyncException", refused(9081)),
            (9100, "CancelDeniedException", refused(9100)),
            (9101, "ParameterIsNotValidException", refused(9101)),
            (9010, "PermissionDeniedException", transient(9010)),
            (9011, "PermissionDeniedException", transient(9011)),
            (9012, "PermissionDeniedException", transient(9012)),
            (9013, "PermissionDeniedException", transient(9013)),
            (9014, "PermissionDeniedException", transient(9014)),
            (9000, "XTAWSTechnicalProblemException", transient(9000)),
            (9030, "XTAWSTechnicalProblemException", transient(9030)),
            (9031, "XTAWSTechnicalProblemException", transient(9031)),
            (9032, "XTAWSTechnicalProblemException", transient(9032)),
            (9999, "XTAWSTechnicalProblemException", transient(9999)),
        ];
        for (code, exception, expected) in rows {
            let answer = read(&fault_envelope("Receiver", exception, &code.to_string()));
            let Ok(Answer::Fault(f)) = &answer else {
                panic!("{code}: {answer:?}")
            };
            assert_eq!(f.code, Some(code));
            assert_eq!(f.exception.as_deref(), Some(exception));
            assert!(!f.sender);
            assert_eq!(outcome(500, answer, None), expected, "XTA error {code}");
            assert_ne!(describe(code), "", "{code}");
        }
    }

    #[test]
    fn a_fault_without_a_code_is_transient_and_retry_after_makes_it_busy() {
        let bare = br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value></e:Code><e:Reason><e:Text xml:lang="en">no</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"#;
        let answer = read(bare);
        assert_eq!(
            answer,
            Ok(Answer::Fault(Fault {
                sender: true,
                exception: None,
                code: None
            }))
        );
        assert_eq!(
            outcome(400, answer.clone(), None),
            Outcome::Unavailable(Cause::XtaFault(0))
        );
        assert_eq!(
            outcome(503, answer, Some(Duration::from_secs(3))),
            Outcome::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(3))
            }
        );
        // A refusal stays a refusal whatever Retry-After says.
        let too_large = read(&fault_envelope(
            "Sender",
            "ParameterIsNotValidException",
            "9023",
        ));
        assert_eq!(
            outcome(400, too_large, Some(Duration::from_secs(3))),
            Outcome::Refused { status: 9023 }
        );
    }

    #[test]
    fn answers_that_are_not_faults() {
        let id = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:MessageID>urn:uuid:header</a:MessageID></s:Header><s:Body><a:MessageID>urn:de:xta:messageid:42</a:MessageID></s:Body></s:Envelope>"#;
        assert_eq!(
            read(id),
            Ok(Answer::Ok {
                message_id: Some("urn:de:xta:messageid:42".into()),
                report_status: None
            })
        );
        let empty = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>"#;
        assert_eq!(
            outcome(200, read(empty), None),
            Outcome::Accepted {
                status: 200,
                reference: None
            }
        );
        // Not SOAP: the HTTP table decides; an empty 202 is an acceptance.
        assert_eq!(read(b"<html/>"), Err(NotSoap));
        assert_eq!(read(b""), Err(NotSoap));
        assert_eq!(
            outcome(202, read(b""), None),
            Outcome::Accepted {
                status: 202,
                reference: None
            }
        );
        assert_eq!(
            outcome(503, read(b"<html/>"), None),
            Outcome::Unavailable(Cause::Status(503))
        );
        assert_eq!(
            outcome(404, read(b"<html/>"), None),
            Outcome::Refused { status: 404 }
        );
        assert_eq!(
            outcome(200, read(b"garbage"), None),
            Outcome::Unavailable(Cause::Transport)
        );
        let report = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:x="http://xoev.de/transport/xta/211"><s:Body><x:TransportReport><x:MessageStatus><x:Status>1</x:Status></x:MessageStatus></x:TransportReport></s:Body></s:Envelope>"#;
        assert_eq!(
            read(report),
            Ok(Answer::Ok {
                message_id: None,
                report_status: Some(1)
            })
        );
    }

    fn lookup_answer(results: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:x="http://xoev.de/transport/xta/211" xmlns:m="http://www.osci.eu/ws/2014/10/transport"><s:Body><x:LookupServiceResponse><x:LookupServiceResultList>{results}</x:LookupServiceResultList></x:LookupServiceResponse></s:Body></s:Envelope>"#
        )
        .into_bytes()
    }

    fn result(service: &str, value: &str) -> String {
        format!(
            r#"<x:LookupServiceResult><m:Reader><m:Identifier type="xoev">bth:1</m:Identifier></m:Reader><x:ServiceType>{service}</x:ServiceType><x:IsServiceAvailableValue>{value}</x:IsServiceAvailableValue></x:LookupServiceResult>"#
        )
    }

    const YES: &str = "<x:ServiceIsAvailable>true</x:ServiceIsAvailable>";
    const NO: &str = "<x:ServiceIsAvailable>false</x:ServiceIsAvailable>";
    const UNKNOWN: &str = "<x:ServiceIsAvailableUnknown>true</x:ServiceIsAvailableUnknown>";

    #[test]
    fn lookup_answers_say_offered_not_offered_or_unknown() {
        for (value, expected) in [
            (YES, Availability::Offered),
            (NO, Availability::NotOffered),
            (
                "<x:ServiceIsAvailable>0</x:ServiceIsAvailable>",
                Availability::NotOffered,
            ),
            (UNKNOWN, Availability::Unknown),
        ] {
            let results = read_lookup(&lookup_answer(&result("urn:s", value))).unwrap();
            assert_eq!(
                results,
                vec![ServiceResult {
                    service: "urn:s".into(),
                    availability: expected
                }]
            );
            assert_eq!(availability(&results, "urn:s"), Some(expected), "{value}");
            // One result is the answer even if the server writes the URI otherwise.
            assert_eq!(availability(&results, "urn:S"), Some(expected));
        }
        // Several results: the one quoting the service asked about.
        let two = read_lookup(&lookup_answer(
            &(result("urn:a", YES) + &result("urn:b", NO)),
        ))
        .unwrap();
        assert_eq!(availability(&two, "urn:b"), Some(Availability::NotOffered));
        assert_eq!(availability(&two, "urn:a"), Some(Availability::Offered));
        assert_eq!(availability(&two, "urn:c"), None);
        // No answer: no result, a nil result, a value outside xs:boolean,
        // the elements outside the response, or in another namespace.
        for body in [
            lookup_answer(""),
            lookup_answer(
                r#"<x:LookupServiceResult xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>"#,
            ),
            lookup_answer(&result(
                "urn:s",
                "<x:ServiceIsAvailable>ja</x:ServiceIsAvailable>",
            )),
            lookup_answer(&result("urn:s", YES))
                .pipe_replace("LookupServiceResponse", "TransportReport"),
            lookup_answer(&result("urn:s", YES))
                .pipe_replace("<x:ServiceIsAvailable>", "<ServiceIsAvailable>")
                .pipe_replace("</x:ServiceIsAvailable>", "</ServiceIsAvailable>"),
        ] {
            let results = read_lookup(&body).unwrap();
            assert_eq!(
                availability(&results, "urn:s"),
                None,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        assert_eq!(read_lookup(b"<a><b></a>"), Err(NotSoap));
        // At most MAX_LOOKUP_RESULTS are read.
        let many: String = (0..40).map(|i| result(&format!("urn:{i}"), YES)).collect();
        assert_eq!(
            read_lookup(&lookup_answer(&many)).unwrap().len(),
            MAX_LOOKUP_RESULTS
        );
    }

    trait PipeReplace {
        fn pipe_replace(self, from: &str, to: &str) -> Vec<u8>;
    }

    impl PipeReplace for Vec<u8> {
        fn pipe_replace(self, from: &str, to: &str) -> Vec<u8> {
            String::from_utf8(self)
                .unwrap()
                .replace(from, to)
                .into_bytes()
        }
    }

    /// checkAccountActive and lookupService answers: no fault is Ok; an
    /// inactive account parks like the same fault on sendMessage; nothing a
    /// pre-check hears counts as delivered.
    #[test]
    fn precheck_answers() {
        let empty = br#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>"#;
        assert_eq!(precheck_outcome(200, read(empty), None), Ok(()));
        assert_eq!(precheck_outcome(202, read(b""), None), Ok(()));
        for code in [9011, 9012, 9010, 9013, 9030] {
            let locked = read(&fault_envelope(
                "Sender",
                "PermissionDeniedException",
                &code.to_string(),
            ));
            assert_eq!(
                precheck_outcome(400, locked, None),
                Err(Outcome::Unavailable(Cause::XtaFault(code))),
                "{code}"
            );
        }
        let used = read(&fault_envelope(
            "Sender",
            "ParameterIsNotValidException",
            "9024",
        ));
        assert_eq!(
            precheck_outcome(400, used, None),
            Err(Outcome::Unavailable(Cause::XtaFault(9024)))
        );
        let bad_uri = read(&fault_envelope(
            "Sender",
            "ParameterIsNotValidException",
            "9021",
        ));
        assert_eq!(
            precheck_outcome(400, bad_uri, None),
            Err(Outcome::Refused { status: 9021 })
        );
        assert_eq!(
            precheck_outcome(503, read(b"<html/>"), Some(Duration::from_secs(5))),
            Err(Outcome::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(5))
            })
        );
        assert_eq!(
            precheck_outcome(200, read(b"garbage"), None),
            Err(Outcome::Unavailable(Cause::Transport))
        );
    }
}
