//! MTOM/XOP (SOAP 1.2 Message Transmission Optimization, XOP 1.0): the
//! packaging XTA.wsdl's `OptimizedMimeSerialization` policy asks for.
//!
//! [`package`] puts the SOAP envelope (whose `Message` holds an
//! `xop:Include`) and the binary parts into one `multipart/related` body;
//! [`unpack`] does the reverse for answers (and for the test double): it
//! reads a `multipart/related` body, or a plain `application/soap+xml` one,
//! and returns the envelope with every `xop:Include` replaced by the base64
//! of its part, which is what the XSDs describe.
//!
//! The binary part is the adapter's document: it is copied, never parsed,
//! logged or kept.

use std::collections::HashMap;

use base64::Engine;
use quick_xml::Writer;
use quick_xml::events::{BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::soap::NS_XOP;

/// A binary part: its content id (without angle brackets), type and bytes.
pub struct Part<'a> {
    pub content_id: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// The content id of the root part (the envelope).
pub const ROOT_ID: &str = "root.envelope@kurier";

/// `multipart/related; type="application/xop+xml"` with the envelope as the
/// root part and `parts` after it. Returns the `Content-Type` header and the
/// body.
pub fn package(envelope: &[u8], action: &str, parts: &[Part<'_>]) -> (String, Vec<u8>) {
    // A fresh random boundary cannot occur in the content by accident (122
    // random bits); check anyway and draw again.
    let boundary = loop {
        let b = format!("uuid:kurier-{}", uuid::Uuid::new_v4().simple());
        let occurs = |bytes: &[u8]| bytes.windows(b.len()).any(|w| w == b.as_bytes());
        if !occurs(envelope) && !parts.iter().any(|p| occurs(p.bytes)) {
            break b;
        }
    };
    let start_info = format!("application/soap+xml; action=\\\"{action}\\\"");
    let content_type = format!(
        "multipart/related; type=\"application/xop+xml\"; boundary=\"{boundary}\"; start=\"<{ROOT_ID}>\"; start-info=\"{start_info}\""
    );
    let total: usize = envelope.len() + parts.iter().map(|p| p.bytes.len() + 200).sum::<usize>();
    let mut body = Vec::with_capacity(total + 400);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"{start_info}\"\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <{ROOT_ID}>\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(envelope);
    for part in parts {
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n",
                part.content_type, part.content_id
            )
            .as_bytes(),
        );
        body.extend_from_slice(part.bytes);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (content_type, body)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MtomError {
    #[error("content type {0} is neither application/soap+xml nor multipart/related")]
    ContentType(String),
    #[error("multipart/related without a boundary")]
    NoBoundary,
    #[error("the multipart body is malformed: {0}")]
    Malformed(&'static str),
    #[error("an xop:Include names a part that is not there")]
    MissingPart,
    #[error("the root part is not well-formed XML")]
    Xml,
}

/// The SOAP envelope of a body of type `content_type`, XOP includes
/// resolved.
pub fn unpack(content_type: &str, body: &[u8]) -> Result<Vec<u8>, MtomError> {
    let lower = content_type.to_ascii_lowercase();
    let media = lower.split(';').next().unwrap_or("").trim();
    match media {
        "application/soap+xml" | "application/xml" | "text/xml" => return Ok(body.to_vec()),
        "multipart/related" => {}
        _ => return Err(MtomError::ContentType(media.to_owned())),
    }
    let boundary = parameter(content_type, "boundary").ok_or(MtomError::NoBoundary)?;
    let start = parameter(content_type, "start").map(|s| strip_angles(&s).to_owned());
    let parts = split(body, &boundary)?;
    let root = match &start {
        Some(id) => parts
            .iter()
            .position(|(cid, _)| cid.as_deref() == Some(id.as_str())),
        None => Some(0),
    }
    .ok_or(MtomError::Malformed("no part has the start content id"))?;
    let by_id: HashMap<&str, &[u8]> = parts
        .iter()
        .filter_map(|(cid, bytes)| cid.as_deref().map(|c| (c, *bytes)))
        .collect();
    resolve_includes(parts[root].1, &by_id)
}

/// A parameter of a MIME header value, unquoted.
fn parameter(value: &str, name: &str) -> Option<String> {
    // Split on `;` outside quotes.
    let mut params = Vec::new();
    let (mut current, mut quoted, mut escaped) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => params.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    params.push(current);
    params.into_iter().skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn strip_angles(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

/// The parts of a multipart body: (Content-ID, content).
#[allow(clippy::type_complexity)]
fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<(Option<String>, &'a [u8])>, MtomError> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |from: usize| {
        body[from..]
            .windows(d.len())
            .position(|w| w == d)
            .map(|p| p + from)
    };
    let mut at = find(0).ok_or(MtomError::Malformed("no boundary in the body"))?;
    let mut parts = Vec::new();
    loop {
        let after = at + d.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        // The rest of the delimiter line.
        let line_end = body[after..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(MtomError::Malformed("delimiter line not terminated"))?;
        let part_start = after + line_end + 2;
        let next = find(part_start).ok_or(MtomError::Malformed("no closing boundary"))?;
        // The CRLF before a delimiter belongs to the delimiter.
        let part_end = if next >= 2 && &body[next - 2..next] == b"\r\n" {
            next - 2
        } else {
            next
        };
        let part = &body[part_start..part_end.max(part_start)];
        let head_end = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(MtomError::Malformed("part without a header block"))?;
        let head = std::str::from_utf8(&part[..head_end])
            .map_err(|_| MtomError::Malformed("part headers are not UTF-8"))?;
        let cid = head.split("\r\n").find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-id")
                .then(|| strip_angles(value).to_owned())
        });
        parts.push((cid, &part[head_end + 4..]));
        at = next;
    }
    if parts.is_empty() {
        return Err(MtomError::Malformed("no parts"));
    }
    Ok(parts)
}

/// `%xx` in a `cid:` URL (RFC 2392).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Copy the envelope, writing the base64 of the named part in place of each
/// `xop:Include`.
fn resolve_includes(root: &[u8], parts: &HashMap<&str, &[u8]>) -> Result<Vec<u8>, MtomError> {
    let mut reader = NsReader::from_reader(root);
    let mut writer = Writer::new(Vec::with_capacity(root.len()));
    let mut buf = Vec::new();
    // Depth inside an `xop:Include` written as start and end tags.
    let mut skipping = 0usize;
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|_| MtomError::Xml)?;
        let is_include = |local: &str| {
            matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NS_XOP) && local == "Include"
        };
        match event {
            Event::Eof => break,
            _ if skipping > 0 => match event {
                Event::Start(_) => skipping += 1,
                Event::End(_) => skipping -= 1,
                _ => {}
            },
            Event::Empty(ref e) | Event::Start(ref e) if is_include(e.local_name().as_ref()) => {
                let href = e
                    .try_get_attribute("href")
                    .map_err(|_| MtomError::Xml)?
                    .ok_or(MtomError::MissingPart)?;
                let href: &str = &href.value;
                let id = percent_decode(href.strip_prefix("cid:").unwrap_or(href));
                let bytes = parts.get(id.as_str()).ok_or(MtomError::MissingPart)?;
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                writer
                    .write_event(Event::Text(BytesText::from_escaped(text)))
                    .map_err(|_| MtomError::Xml)?;
                if matches!(event, Event::Start(_)) {
                    skipping = 1;
                }
            }
            other => writer.write_event(other).map_err(|_| MtomError::Xml)?,
        }
        buf.clear();
    }
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packaged_envelope_unpacks_with_its_part_inlined_as_base64() {
        let envelope = br#"<?xml version="1.0"?><e:E xmlns:e="urn:e"><e:M a="1"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:message%40kurier"/></e:M></e:E>"#;
        let doc = b"<doc>\r\n--not-a-boundary\r\n\xe4</doc>";
        let (ct, body) = package(
            envelope,
            "urn:a",
            &[Part {
                content_id: "message@kurier",
                content_type: "application/xml",
                bytes: doc,
            }],
        );
        assert!(
            ct.starts_with("multipart/related; type=\"application/xop+xml\""),
            "{ct}"
        );
        let out = String::from_utf8(unpack(&ct, &body).unwrap()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc);
        assert!(out.contains(&format!(r#"<e:M a="1">{b64}</e:M>"#)), "{out}");
        assert!(!out.contains("Include"), "{out}");
    }

    #[test]
    fn plain_soap_passes_and_broken_multipart_is_an_error() {
        assert_eq!(
            unpack("application/soap+xml; charset=utf-8", b"<x/>").unwrap(),
            b"<x/>"
        );
        assert!(matches!(
            unpack("text/html", b""),
            Err(MtomError::ContentType(_))
        ));
        assert_eq!(unpack("multipart/related", b""), Err(MtomError::NoBoundary));
        assert!(unpack("multipart/related; boundary=b", b"--b\r\nno headers").is_err());
        let missing = "--b\r\nContent-ID: <r>\r\n\r\n<x xmlns:xop=\"http://www.w3.org/2004/08/xop/include\"><xop:Include href=\"cid:gone\"/></x>\r\n--b--\r\n";
        assert_eq!(
            unpack(
                "multipart/related; boundary=b; start=\"<r>\"",
                missing.as_bytes()
            ),
            Err(MtomError::MissingPart)
        );
    }
}
