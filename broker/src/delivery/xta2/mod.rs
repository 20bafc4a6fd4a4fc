//! XTA 2 transport (`transport = "xta2"`, CONTRACT.md § 6): delivery to an
//! XTA server (XTA-WS 2.1.1: SOAP 1.2 with WS-Addressing and MTOM, mutual
//! TLS), as the German state data centres relay to authorities.
//!
//! Same inner shape as every transport: what the user writes is in
//! [`crate::config::DestinationConfig`] (`xta_author`, `xta_reader`,
//! `xta_service`, …); [`soap`] builds the envelopes and [`mtom`] packages
//! them; [`client`] does the I/O of one attempt; [`classify`] turns answers
//! and faults into the one [`crate::queue::decision::Outcome`] type, so
//! retries, parking, circuits and receipts work as for `https`. The
//! adapters are unchanged: their document is the XTA `Message`.
//!
//! [`report`] polls `getTransportReport` for delivered messages and turns
//! the asynchronous transport status into the authority's answer
//! (two-stage receipts, [`crate::delivery::answers`]).
//!
//! [`crate::delivery::Deliverer`] dispatches to [`Xta2`] when the destination's
//! transport is `xta2`. [`schema`] validates whole SOAP messages against the
//! standard's XSDs (`schemas/xta2/`), for the tests and the test double.

pub mod classify;
pub mod client;
pub mod mtom;
pub mod report;
pub mod schema;
pub mod soap;

pub use client::Xta2;

#[cfg(test)]
mod tests {
    use super::schema::{SoapValidator, source_dir};
    use super::soap::{self, MessagePart, MetaData, Party};
    use super::{classify, mtom};

    fn party(id: &str) -> Party {
        Party {
            identifier: id.into(),
            kind: "xoev".into(),
        }
    }

    fn validator() -> SoapValidator {
        SoapValidator::start(&source_dir()).expect("the XTA schemas compile")
    }

    const DOC: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><x:antrag xmlns:x="urn:x">Geheim &amp; vertraulich</x:antrag>"#;

    fn send_message_envelope(to: &str) -> (String, Vec<u8>) {
        let (author, reader) = (party("kurier:sozialplattform"), party("bth:020000000000"));
        let meta = MetaData {
            author: &author,
            reader: &reader,
            service: "http://www.xsozial.de/xsozial-basis/2.4.0",
            business_scenario: "XSOZIAL_DATA",
            message_type: "antrag",
            payload_schema: "urn:x",
            message_id: "urn:de:xta:messageid:test:1",
            submission_id: "0b5e8f0e-4b0a-4c43-9a55-2b9d7c1d1e11",
            origin: "2026-12-01T10:00:00Z",
            size: DOC.len(),
        };
        let part = MessagePart {
            content_type: "application/xml",
            encoding: "UTF-8",
            filename: "nachricht.xml",
            size: DOC.len(),
            content_id: "message@kurier",
        };
        let envelope = soap::send_message(to, &soap::request_id(), &meta, &part);
        mtom::package(
            &envelope,
            soap::action::SEND_MESSAGE,
            &[mtom::Part {
                content_id: "message@kurier",
                content_type: "application/xml",
                bytes: DOC,
            }],
        )
    }

    /// Every envelope Kurier builds is valid against the XTA-WS 2.1.1 XSDs
    /// (strict: each header block and the body must be declared there).
    #[test]
    fn built_envelopes_are_valid_against_the_xta_schemas() {
        let v = validator();
        let to = "https://xta.example/xta?x=1&y=2";
        let author = party("kurier:sozialplattform");
        for envelope in [
            soap::create_message_id(to, &soap::request_id(), &author),
            soap::check_account_active(to, "urn:uuid:1", &author),
            soap::lookup_service(
                to,
                "urn:uuid:3",
                &author,
                &party("bth:020000000000"),
                "http://www.xsozial.de/xsozial-basis/2.4.0?a=1&b=2",
            ),
            soap::get_transport_report(to, "urn:uuid:2", &author, "urn:de:xta:messageid:1"),
        ] {
            let text = String::from_utf8_lossy(&envelope).into_owned();
            assert_eq!(v.validate_blocking(envelope), Ok(()), "{text}");
        }
        let (content_type, body) = send_message_envelope(to);
        let resolved = mtom::unpack(&content_type, &body).unwrap();
        let text = String::from_utf8_lossy(&resolved).into_owned();
        assert_eq!(v.validate_blocking(resolved), Ok(()), "{text}");
    }

    #[test]
    fn the_schemas_refuse_what_xta_does_not_declare() {
        let v = validator();
        let good = soap::create_message_id("https://x/", "urn:uuid:1", &party("a"));
        let text = String::from_utf8(good).unwrap();
        // An unknown header block, a missing required attribute, a wrong body.
        for bad in [
            text.replace("m:Author>", "m:Autor>"),
            text.replace(r#" type="xoev""#, ""),
            text.replace("<s:Body/>", "<s:Body><xta:SendMessage/></s:Body>"),
        ] {
            let problems = v.validate_blocking(bad.clone().into_bytes()).unwrap_err();
            assert!(!problems.is_empty(), "{bad}");
        }
        // lookupService with its request's parts in the wrong order.
        let lookup = String::from_utf8(soap::lookup_service(
            "https://x/",
            "urn:uuid:1",
            &party("a"),
            &party("r"),
            "urn:s",
        ))
        .unwrap();
        let start = lookup.find("<m:Reader>").unwrap();
        let end = lookup.find("</m:Reader>").unwrap() + "</m:Reader>".len();
        let reader = lookup[start..end].to_owned();
        let swapped = lookup
            .replace(&reader, "")
            .replace("</xta:ServiceType>", &format!("</xta:ServiceType>{reader}"));
        let problems = v.validate_blocking(swapped.into_bytes()).unwrap_err();
        assert!(!problems.is_empty());
        // The sendMessage envelope without its metadata's mandatory parts.
        let (ct, body) = send_message_envelope("https://x/");
        let resolved = String::from_utf8(mtom::unpack(&ct, &body).unwrap()).unwrap();
        let start = resolved.find("<m:Qualifier>").unwrap();
        let end = resolved.find("</m:Qualifier>").unwrap() + "</m:Qualifier>".len();
        let mut cut = resolved.clone();
        cut.replace_range(start..end, "");
        let problems = v.validate_blocking(cut.into_bytes()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("MsgSize") && p.contains("unexpected")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_document_travels_as_an_mtom_part_not_inside_the_envelope() {
        let (content_type, body) = send_message_envelope("https://x/");
        assert!(content_type.contains("start-info=\"application/soap+xml; action=\\\"http://www.xta.de/XTA/SendMessage\\\"\""), "{content_type}");
        let text = String::from_utf8_lossy(&body);
        let root_end = text.find("</s:Envelope>").unwrap();
        assert!(!text[..root_end].contains("Geheim"));
        assert!(text[root_end..].contains("Geheim &amp; vertraulich"));
        // And the answer reader handles the fault shape the double sends.
        assert!(classify::read(b"<x/>").is_err());
    }
}
