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
}
