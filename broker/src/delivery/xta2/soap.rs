//! SOAP 1.2 envelopes of the XTA-WS 2.1.1 operations Kurier calls, written
//! with quick-xml: the mandatory WS-Addressing headers (`Action`,
//! `MessageID`, `To`), the `AuthorIdentifier` header of the management port,
//! and for `sendMessage` the `MessageMetaData` header and the
//! `GenericContentContainer` body whose `Message` is an XOP include of the
//! MTOM part that carries the adapter's document ([`super::mtom`]).
//!
//! Everything written here is configuration (identifiers, the service URI),
//! generated ids, times and sizes: the document itself never passes through
//! this writer, and nothing here is logged.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_WSA: &str = "http://www.w3.org/2005/08/addressing";
pub const NS_META: &str = "http://www.osci.eu/ws/2014/10/transport";
pub const NS_XTA: &str = "http://xoev.de/transport/xta/211";
pub const NS_XOP: &str = "http://www.w3.org/2004/08/xop/include";

/// The `wsam:Action` of each operation (XTA.wsdl).
pub mod action {
    pub const CREATE_MESSAGE_ID: &str = "http://www.xta.de/XTA/CreateMessageID";
    pub const SEND_MESSAGE: &str = "http://www.xta.de/XTA/SendMessage";
    pub const GET_TRANSPORT_REPORT: &str = "http://www.xta.de/XTA/GetTransportReport";
    pub const CHECK_ACCOUNT_ACTIVE: &str = "http://www.xta.de/XTA/CheckAccountActive";
    /// `lookupService` (its action keeps XTA 1's name).
    pub const LOOKUP_SERVICE: &str = "http://www.xta.de/XTA/IsServiceAvailable";
}

/// The code list Kurier names its message types from: the root element of
/// the payload (a convention of XTA 2 deployments for XÖV messages).
pub const MESSAGE_TYPE_LIST_URI: &str = "urn:de:payloadSchema:elementName";
pub const MESSAGE_TYPE_LIST_VERSION: &str = "1.0";

/// An author or reader: `<Identifier type="…">…</Identifier>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub identifier: String,
    pub kind: String,
}

/// What `MessageMetaData` says about one message.
#[derive(Debug, Clone)]
pub struct MetaData<'a> {
    pub author: &'a Party,
    pub reader: &'a Party,
    /// `Qualifier/Service`: the service URI.
    pub service: &'a str,
    /// `Qualifier/BusinessScenario/Undefined`.
    pub business_scenario: &'a str,
    /// `Qualifier/MessageType/code`: the payload's root element name.
    pub message_type: &'a str,
    /// `Qualifier/MessageType/@payloadSchema`: the payload's namespace.
    pub payload_schema: &'a str,
    /// The XTA message id from createMessageId.
    pub message_id: &'a str,
    /// `MsgIdentification/ProcessRef/Requester`: the submission id, so that
    /// the authority (and Kurier's test double) can tell submissions apart.
    pub submission_id: &'a str,
    /// RFC 3339, `DeliveryAttributes/Origin`.
    pub origin: &'a str,
    /// `MsgSize`: bytes of the payload.
    pub size: usize,
}

/// The `Message` of the content container: its MIME attributes and the
/// content id of the MTOM part that holds its bytes.
#[derive(Debug, Clone)]
pub struct MessagePart<'a> {
    pub content_type: &'a str,
    pub encoding: &'a str,
    pub filename: &'a str,
    pub size: usize,
    /// Without `cid:` and angle brackets.
    pub content_id: &'a str,
}

/// An envelope under construction. Writing into a `Vec` cannot fail.
struct Envelope {
    w: Writer<Vec<u8>>,
}

const WRITE: &str = "writing XML into a Vec cannot fail";

impl Envelope {
    fn new() -> Envelope {
        let mut w = Writer::new(Vec::with_capacity(2048));
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .expect(WRITE);
        Envelope { w }
    }

    fn start(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for a in attributes {
            start.push_attribute(*a);
        }
        self.w.write_event(Event::Start(start)).expect(WRITE);
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for a in attributes {
            start.push_attribute(*a);
        }
        self.w.write_event(Event::Empty(start)).expect(WRITE);
    }

    fn end(&mut self, name: &str) {
        self.w
            .write_event(Event::End(BytesEnd::new(name)))
            .expect(WRITE);
    }

    fn text(&mut self, name: &str, attributes: &[(&str, &str)], text: &str) {
        self.start(name, attributes);
        self.w
            .write_event(Event::Text(BytesText::new(text)))
            .expect(WRITE);
        self.end(name);
    }

    /// `<s:Envelope>` with every namespace Kurier uses, and the WS-Addressing
    /// headers; leaves the `Header` open.
    fn open(action: &str, to: &str, request_id: &str) -> Envelope {
        let mut e = Envelope::new();
        e.start(
            "s:Envelope",
            &[
                ("xmlns:s", NS_SOAP),
                ("xmlns:wsa", NS_WSA),
                ("xmlns:m", NS_META),
                ("xmlns:xta", NS_XTA),
            ],
        );
        e.start("s:Header", &[]);
        e.text("wsa:Action", &[("s:mustUnderstand", "true")], action);
        e.text("wsa:MessageID", &[], request_id);
        e.text("wsa:To", &[("s:mustUnderstand", "true")], to);
        e
    }

    /// A management-port request: [`Envelope::open`] with the author's
    /// `Author` header; leaves the `Body` to come.
    fn management(action: &str, to: &str, request_id: &str, author: &Party) -> Envelope {
        let mut e = Envelope::open(action, to, request_id);
        e.party("m:Author", author);
        e.end("s:Header");
        e
    }

    fn party(&mut self, element: &str, party: &Party) {
        self.start(element, &[]);
        self.text("m:Identifier", &[("type", &party.kind)], &party.identifier);
        self.end(element);
    }

    fn finish(mut self) -> Vec<u8> {
        self.end("s:Envelope");
        self.w.into_inner()
    }
}

/// A fresh WS-Addressing `MessageID` for one SOAP request.
pub fn request_id() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// A management-port request whose body is empty (`createMessageId`,
/// `checkAccountActive`), with the `AuthorIdentifier` header.
pub fn management(action: &str, to: &str, request_id: &str, author: &Party) -> Vec<u8> {
    let mut e = Envelope::management(action, to, request_id, author);
    e.empty("s:Body", &[]);
    e.finish()
}

/// `createMessageId`.
pub fn create_message_id(to: &str, request_id: &str, author: &Party) -> Vec<u8> {
    management(action::CREATE_MESSAGE_ID, to, request_id, author)
}

/// `checkAccountActive`: answered with an empty body while the author's
/// account is active, else with a `PermissionDeniedException`.
pub fn check_account_active(to: &str, request_id: &str, author: &Party) -> Vec<u8> {
    management(action::CHECK_ACCOUNT_ACTIVE, to, request_id, author)
}

/// `lookupService` for one reader and service: does the reader offer the
/// service (`LookupServiceRequestList/LookupService`: `Reader`, then
/// `ServiceType`, in the XSD's order)?
pub fn lookup_service(
    to: &str,
    request_id: &str,
    author: &Party,
    reader: &Party,
    service: &str,
) -> Vec<u8> {
    let mut e = Envelope::management(action::LOOKUP_SERVICE, to, request_id, author);
    e.start("s:Body", &[]);
    e.start("xta:LookupServiceRequest", &[]);
    e.start("xta:LookupServiceRequestList", &[]);
    e.start("xta:LookupService", &[]);
    e.party("m:Reader", reader);
    e.text("xta:ServiceType", &[], service);
    e.end("xta:LookupService");
    e.end("xta:LookupServiceRequestList");
    e.end("xta:LookupServiceRequest");
    e.end("s:Body");
    e.finish()
}

/// `getTransportReport` for `message_id`.
pub fn get_transport_report(
    to: &str,
    request_id: &str,
    author: &Party,
    message_id: &str,
) -> Vec<u8> {
    let mut e = Envelope::management(action::GET_TRANSPORT_REPORT, to, request_id, author);
    e.start("s:Body", &[]);
    e.text("wsa:MessageID", &[], message_id);
    e.end("s:Body");
    e.finish()
}

/// `sendMessage`: the metadata header and the content container, whose
/// `Message` is an XOP include of the MTOM part `message.content_id`.
pub fn send_message(
    to: &str,
    request_id: &str,
    meta: &MetaData<'_>,
    message: &MessagePart<'_>,
) -> Vec<u8> {
    let mut e = Envelope::open(action::SEND_MESSAGE, to, request_id);
    e.start("m:MessageMetaData", &[]);
    e.start("m:DeliveryAttributes", &[]);
    e.text("m:Origin", &[], meta.origin);
    e.end("m:DeliveryAttributes");
    e.start("m:Originators", &[]);
    e.party("m:Author", meta.author);
    e.end("m:Originators");
    e.start("m:Destinations", &[]);
    e.party("m:Reader", meta.reader);
    e.end("m:Destinations");
    e.start("m:MsgIdentification", &[]);
    e.text("wsa:MessageID", &[], meta.message_id);
    e.start("m:ProcessRef", &[]);
    e.text("m:Requester", &[], meta.submission_id);
    e.end("m:ProcessRef");
    e.end("m:MsgIdentification");
    e.start("m:Qualifier", &[]);
    e.text("m:Service", &[], meta.service);
    e.start("m:BusinessScenario", &[]);
    e.text("m:Undefined", &[], meta.business_scenario);
    e.end("m:BusinessScenario");
    e.start(
        "m:MessageType",
        &[
            ("listURI", MESSAGE_TYPE_LIST_URI),
            ("listVersionID", MESSAGE_TYPE_LIST_VERSION),
            ("payloadSchema", meta.payload_schema),
        ],
    );
    // KeyCodeType's children are unqualified: no prefix, and no default
    // namespace is declared anywhere in the envelope.
    e.text("code", &[], meta.message_type);
    e.end("m:MessageType");
    e.end("m:Qualifier");
    e.text("m:MsgSize", &[], &meta.size.max(1).to_string());
    e.end("m:MessageMetaData");
    e.end("s:Header");
    e.start("s:Body", &[]);
    e.start("xta:GenericContentContainer", &[]);
    e.start("xta:ContentContainer", &[]);
    let size = message.size.max(1).to_string();
    e.start(
        "xta:Message",
        &[
            ("contentType", message.content_type),
            ("encoding", message.encoding),
            ("filename", message.filename),
            ("size", &size),
        ],
    );
    let href = format!("cid:{}", message.content_id);
    e.empty("xop:Include", &[("xmlns:xop", NS_XOP), ("href", &href)]);
    e.end("xta:Message");
    e.end("xta:ContentContainer");
    e.end("xta:GenericContentContainer");
    e.end("s:Body");
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn party(id: &str) -> Party {
        Party {
            identifier: id.into(),
            kind: "xoev".into(),
        }
    }

    #[test]
    fn values_are_escaped() {
        let body = create_message_id("https://x/?a=1&b=<2>", "urn:uuid:1", &party("a\"b"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("https://x/?a=1&amp;b=&lt;2&gt;"), "{text}");
        assert!(text.contains("a&quot;b"), "{text}");
    }

    #[test]
    fn the_message_is_an_xop_include_not_the_document() {
        let (author, reader) = (party("kurier"), party("amt"));
        let meta = MetaData {
            author: &author,
            reader: &reader,
            service: "urn:s",
            business_scenario: "urn:s",
            message_type: "vorgang.transportieren.1000001",
            payload_schema: "urn:ns",
            message_id: "urn:de:xta:messageid:1",
            submission_id: "0b5e8f0e-4b0a-4c43-9a55-2b9d7c1d1e11",
            origin: "2026-01-01T00:00:00Z",
            size: 10,
        };
        let part = MessagePart {
            content_type: "application/xml",
            encoding: "UTF-8",
            filename: "antrag.xml",
            size: 10,
            content_id: "message@kurier",
        };
        let text =
            String::from_utf8(send_message("https://x/", "urn:uuid:2", &meta, &part)).unwrap();
        assert!(text.contains(r#"<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:message@kurier"/>"#), "{text}");
    }
}
