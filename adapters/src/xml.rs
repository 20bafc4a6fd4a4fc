//! Building blocks every adapter shares: a thin streaming writer over
//! quick-xml, checked access to the submission's JSON, and small helpers for
//! identifiers and numbers. Nothing here does I/O besides writing into the
//! output the adapter hands in.
//!
//! Three rules hold for everything written through [`XmlWriter`]:
//!
//! - **Escaping.** Text and attribute values go through quick-xml's escaping
//!   (`BytesText::new`, attribute tuples): `&`, `<`, `>`, `"`, `'` and `\r`
//!   become references, so `]]>` is written as `]]&gt;`; attribute values also
//!   escape `\t` and `\n` so attribute-value normalisation cannot change them.
//!   What a parser reads back is exactly the string that went in.
//! - **Only characters XML 1.0 can carry.** A string holding a character that
//!   XML 1.0 forbids even as a reference (most C0 controls, U+FFFE, U+FFFF) is
//!   refused, never dropped or replaced. [`Node::str`] refuses it as
//!   [`RenderError::UnexpectedShape`] with the field's JSON pointer,
//!   [`check_envelope`] does the same for the envelope's strings, and the
//!   writer itself refuses it as [`RenderError::Writer`] as a last line.
//! - **No values in errors.** Every error names the adapter and a JSON pointer
//!   or a fixed description, never a value from the submission.
//!
//! JSON pointers in errors are rooted at the envelope: `/form/applicant/sex`,
//! `/attachments/0/filename`.

use std::fmt::Write as _;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;

use crate::{RenderError, Submission};

/// A streaming XML writer for one document, indented by two spaces. `W` is
/// the output: a `&mut Vec<u8>` for UTF-8 documents, or an encoding sink such
/// as [`crate::iso8859_15::Sink`] that receives UTF-8 and writes another
/// encoding.
pub struct XmlWriter<W: io::Write> {
    inner: Writer<W>,
    adapter: &'static str,
}

impl<W: io::Write> XmlWriter<W> {
    /// A writer for `adapter` (named in every error) into `out`.
    pub fn new(out: W, adapter: &'static str) -> Self {
        Self {
            inner: Writer::new_with_indent(out, b' ', 2),
            adapter,
        }
    }

    /// `<?xml version="1.0" encoding="…"?>`.
    pub fn declaration(&mut self, encoding: &str) -> Result<(), RenderError> {
        let decl = BytesDecl::new("1.0", Some(encoding), None);
        self.event(Event::Decl(decl))
    }

    /// `<name>` without attributes.
    pub fn start(&mut self, name: &str) -> Result<(), RenderError> {
        self.event(Event::Start(BytesStart::new(name)))
    }

    /// `<name a="…" …>`; attribute values are escaped and checked.
    pub fn start_with(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
    ) -> Result<(), RenderError> {
        let start = self.tag(name, attributes)?;
        self.event(Event::Start(start))
    }

    /// `<name a="…" …/>`, an element without content.
    pub fn empty_with(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
    ) -> Result<(), RenderError> {
        let start = self.tag(name, attributes)?;
        self.event(Event::Empty(start))
    }

    /// `</name>`.
    pub fn end(&mut self, name: &str) -> Result<(), RenderError> {
        self.event(Event::End(BytesEnd::new(name)))
    }

    /// `<name>text</name>`, the text escaped.
    pub fn text(&mut self, name: &str, text: &str) -> Result<(), RenderError> {
        self.check(text)?;
        self.start(name)?;
        self.event(Event::Text(BytesText::new(text)))?;
        self.end(name)
    }

    /// [`XmlWriter::text`] if there is a value, nothing otherwise.
    pub fn opt_text(&mut self, name: &str, text: Option<&str>) -> Result<(), RenderError> {
        match text {
            Some(text) => self.text(name, text),
            None => Ok(()),
        }
    }

    /// `<name>true</name>` or `<name>false</name>` (`xs:boolean`).
    pub fn boolean(&mut self, name: &str, value: bool) -> Result<(), RenderError> {
        self.text(name, if value { "true" } else { "false" })
    }

    /// [`XmlWriter::boolean`] if there is a value, nothing otherwise.
    pub fn opt_boolean(&mut self, name: &str, value: Option<bool>) -> Result<(), RenderError> {
        match value {
            Some(value) => self.boolean(name, value),
            None => Ok(()),
        }
    }

    /// A coded value in the XÖV style:
    /// `<name listURI="…" listVersionID="…"><code>…</code></name>`.
    pub fn coded(&mut self, name: &str, list: &CodeList, code: &str) -> Result<(), RenderError> {
        self.start_with(
            name,
            &[("listURI", list.uri), ("listVersionID", list.version)],
        )?;
        self.text("code", code)?;
        self.end(name)
    }

    /// A coded value for the form value at `node`: looks the value up in
    /// `list` and writes its code; a value the list does not know is an
    /// [`RenderError::UnexpectedShape`] at the node.
    pub fn coded_value(
        &mut self,
        name: &str,
        list: &CodeList,
        node: Node<'_, '_>,
    ) -> Result<(), RenderError> {
        let value = node.str()?;
        let code = list.code(value).ok_or_else(|| node.shape_error())?;
        self.coded(name, list, code)
    }

    /// Ends the document with a final newline and hands back the output.
    pub fn finish(mut self) -> Result<W, RenderError> {
        let adapter = self.adapter;
        self.inner
            .get_mut()
            .write_all(b"\n")
            .map_err(|e| io_error(adapter, &e))?;
        Ok(self.inner.into_inner())
    }

    fn event(&mut self, event: Event<'_>) -> Result<(), RenderError> {
        let adapter = self.adapter;
        self.inner
            .write_event(event)
            .map_err(|e| io_error(adapter, &e))
    }

    fn tag<'a>(
        &self,
        name: &'a str,
        attributes: &[(&'a str, &'a str)],
    ) -> Result<BytesStart<'a>, RenderError> {
        let mut start = BytesStart::new(name);
        for &(key, value) in attributes {
            self.check(value)?;
            start.push_attribute((key, value));
        }
        Ok(start)
    }

    fn check(&self, text: &str) -> Result<(), RenderError> {
        if is_xml_text(text) {
            Ok(())
        } else {
            Err(RenderError::Writer {
                adapter: self.adapter,
                kind: "text holds a character XML 1.0 cannot carry",
            })
        }
    }
}

/// A [`RenderError::Writer`] for an I/O error of the output.
pub(crate) fn io_error(adapter: &'static str, error: &io::Error) -> RenderError {
    // Only the kind: an io::Error's message could in principle quote data.
    let kind = match error.kind() {
        io::ErrorKind::OutOfMemory => "out of memory",
        io::ErrorKind::WriteZero => "output refused more bytes",
        _ => "output write failed",
    };
    RenderError::Writer { adapter, kind }
}

/// Runs `write` to append one document to `out`; if it fails, `out` is cut
/// back to where it was, so no half document is ever left behind.
pub fn append_document(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), RenderError>,
) -> Result<(), RenderError> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Whether every character of `s` may appear in an XML 1.0 document (the
/// `Char` production: tab, line feed, carriage return, U+0020–U+D7FF,
/// U+E000–U+FFFD, U+10000–U+10FFFF).
pub fn is_xml_text(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\t' | b'\n' | b'\r' => true,
        0x00..=0x1f => false,
        // U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8.
        0xef => !(bytes.get(i + 1) == Some(&0xbf) && matches!(bytes.get(i + 2), Some(0xbe | 0xbf))),
        _ => true,
    })
}

/// Checks the envelope's strings an adapter writes (identifiers, metadata,
/// attachment names and types) before anything is written, so that a string
/// XML cannot carry is reported with its JSON pointer. Attachment contents are
/// left to the writer: the broker has decoded them as base64 already.
pub fn check_envelope(
    adapter: &'static str,
    submission: &Submission<'_>,
) -> Result<(), RenderError> {
    let top = [
        ("/submission_id", submission.submission_id),
        ("/service", submission.service),
        ("/destination", submission.destination),
        ("/portal", submission.portal),
        ("/submitted_at", submission.submitted_at),
        ("/applicant_ref", submission.applicant_ref.unwrap_or("")),
    ];
    for (pointer, value) in top {
        if !is_xml_text(value) {
            return Err(RenderError::UnexpectedShape {
                adapter,
                pointer: pointer.to_owned(),
            });
        }
    }
    for (index, attachment) in submission.attachments.iter().enumerate() {
        let fields = [
            ("id", attachment.id),
            ("filename", attachment.filename),
            ("media_type", attachment.media_type),
            ("document_type", attachment.document_type),
            ("sha256", attachment.sha256),
        ];
        for (field, value) in fields {
            if !is_xml_text(value) {
                return Err(RenderError::UnexpectedShape {
                    adapter,
                    pointer: format!("/attachments/{index}/{field}"),
                });
            }
        }
    }
    Ok(())
}

/// The date part (`YYYY-MM-DD`) of an RFC 3339 timestamp such as the
/// envelope's `submitted_at`: the date as the portal saw it, without shifting
/// time zones. Anything that does not start with a date is an
/// [`RenderError::UnexpectedShape`] at `pointer`.
pub fn date_part<'a>(
    adapter: &'static str,
    timestamp: &'a str,
    pointer: &str,
) -> Result<&'a str, RenderError> {
    let date = timestamp.get(..10).filter(|d| {
        d.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
    });
    date.ok_or_else(|| RenderError::UnexpectedShape {
        adapter,
        pointer: pointer.to_owned(),
    })
}

/// A short ASCII string built on the stack: a prefix and a decimal number,
/// e.g. the local person id `p3` or an attachment size. Saves a heap
/// allocation per identifier.
#[derive(Clone, Copy)]
pub struct ShortId {
    buf: [u8; 24],
    len: usize,
}

impl ShortId {
    /// `prefix` followed by `n` in decimal. `prefix` is at most four ASCII
    /// bytes (longer prefixes are cut, which no caller does).
    pub fn new(prefix: &str, n: u64) -> Self {
        let mut buf = [0u8; 24];
        let mut len = 0;
        for &b in prefix.as_bytes().iter().filter(|b| b.is_ascii()).take(4) {
            buf[len] = b;
            len += 1;
        }
        let mut digits = [0u8; 20];
        let mut count = 0;
        let mut rest = n;
        loop {
            // `rest % 10` is a single digit, so the cast cannot truncate.
            digits[count] = b'0' + (rest % 10) as u8;
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &d in digits[..count].iter().rev() {
            buf[len] = d;
            len += 1;
        }
        Self { buf, len }
    }

    /// The number alone.
    pub fn number(n: u64) -> Self {
        Self::new("", n)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// How a string leaf of a submission (addressed by its JSON pointer, e.g.
/// `/form/household/0/sex`) appears in an adapter's document; each adapter
/// with fixed fields says so through its `leaf` function.
#[derive(Debug, Clone, Copy)]
pub enum Leaf {
    /// The value itself, as text.
    Verbatim,
    /// The value's code in this list ([`CodeList::code`]).
    Coded(&'static CodeList),
    /// A person ref, written as the person's local id ([`person_id`]).
    PersonRef,
}

/// Classifies `pointer` by an adapter's tables of coded fields and person-ref
/// fields, whose patterns use `*` for an array index.
pub fn classify(pointer: &str, coded: &[(&str, &'static CodeList)], person_refs: &[&str]) -> Leaf {
    if let Some((_, list)) = coded.iter().find(|(p, _)| pattern_matches(p, pointer)) {
        return Leaf::Coded(list);
    }
    if person_refs.iter().any(|p| pattern_matches(p, pointer)) {
        return Leaf::PersonRef;
    }
    Leaf::Verbatim
}

/// Whether `pointer` matches `pattern`, where a `*` segment matches an array
/// index.
fn pattern_matches(pattern: &str, pointer: &str) -> bool {
    let mut pattern = pattern.split('/');
    let mut pointer = pointer.split('/');
    loop {
        match (pattern.next(), pointer.next()) {
            (None, None) => return true,
            (Some("*"), Some(seg))
                if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The local id of the person a person ref names: `applicant` is `p0`,
/// `household:N` is `p(N+1)`. `None` for anything else.
pub fn person_id(person_ref: &str) -> Option<ShortId> {
    if person_ref == "applicant" {
        return Some(ShortId::new("p", 0));
    }
    let index = person_ref.strip_prefix("household:")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: u64 = index.parse().ok()?;
    Some(ShortId::new("p", index.checked_add(1)?))
}

/// The local id for the person ref at `node`, which must name the applicant
/// or one of the `household_len` household members.
pub fn person_ref(node: &Node<'_, '_>, household_len: usize) -> Result<ShortId, RenderError> {
    let value = node.str()?;
    let in_household = |id: &ShortId| {
        id.as_str()
            .get(1..)
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n <= household_len)
    };
    person_id(value)
        .filter(in_household)
        .ok_or_else(|| node.shape_error())
}

/// A code list in the XÖV sense: a URI, a version, and the codes an adapter
/// writes for the form's values.
#[derive(Debug)]
pub struct CodeList {
    /// The `listURI` attribute.
    pub uri: &'static str,
    /// The `listVersionID` attribute.
    pub version: &'static str,
    pub codes: Codes,
}

/// The codes of a [`CodeList`].
#[derive(Debug)]
pub enum Codes {
    /// A closed list: every form value with its code and its meaning.
    Closed(&'static [Code]),
    /// ISO 3166-1 alpha-2 country codes, written as given (two capital
    /// letters); the list is kept by ISO, not here.
    Iso3166Alpha2,
}

/// One entry of a closed [`CodeList`].
#[derive(Debug)]
pub struct Code {
    /// The value as the form carries it (`female`).
    pub value: &'static str,
    /// The code written into the document (`w`).
    pub code: &'static str,
    /// What the code means, in German as the authorities' lists are.
    pub meaning: &'static str,
}

impl CodeList {
    /// The code for one of the adapter's own values (not one from the form,
    /// e.g. the channel `email`). A value missing from the list is a bug in the
    /// adapter, reported as [`RenderError::Writer`].
    pub fn fixed_code(
        &self,
        adapter: &'static str,
        value: &'static str,
    ) -> Result<&'static str, RenderError> {
        self.code(value).ok_or(RenderError::Writer {
            adapter,
            kind: "a fixed code is missing from its code list",
        })
    }

    /// The code for a form value, `None` if the list does not know the value.
    pub fn code<'a>(&self, value: &'a str) -> Option<&'a str> {
        match &self.codes {
            Codes::Closed(codes) => codes.iter().find(|c| c.value == value).map(|c| c.code),
            Codes::Iso3166Alpha2 => {
                let ok = value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase());
                ok.then_some(value)
            }
        }
    }
}

/// A position in a JSON document, kept as a chain of borrowed segments on the
/// stack so that the JSON pointer string is built only when an error needs it.
#[derive(Clone, Copy)]
struct Location<'p> {
    parent: Option<&'p Location<'p>>,
    segment: Segment<'p>,
}

#[derive(Clone, Copy)]
enum Segment<'p> {
    /// An already escaped pointer prefix such as `/form`.
    Root(&'p str),
    Key(&'p str),
    Index(usize),
}

impl Location<'_> {
    /// The RFC 6901 JSON pointer of this position.
    fn pointer(&self) -> String {
        let mut out = String::new();
        self.write_pointer(&mut out);
        out
    }

    fn write_pointer(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.write_pointer(out);
        }
        match self.segment {
            Segment::Root(prefix) => out.push_str(prefix),
            Segment::Key(key) => {
                out.push('/');
                for c in key.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Segment::Index(index) => {
                let _ = write!(out, "/{index}");
            }
        }
    }
}

/// Checked access to one JSON value of the submission: every accessor returns
/// [`RenderError::UnexpectedShape`] with the JSON pointer of the missing or
/// mistyped field instead of panicking. `'v` is the lifetime of the JSON,
/// `'p` that of the location chain.
#[derive(Clone, Copy)]
pub struct Node<'v, 'p> {
    adapter: &'static str,
    value: &'v Value,
    at: Location<'p>,
}

impl<'v> Node<'v, 'static> {
    /// The submission's `form`, located at `/form`.
    pub fn form(adapter: &'static str, submission: &Submission<'v>) -> Self {
        Self {
            adapter,
            value: submission.form,
            at: Location {
                parent: None,
                segment: Segment::Root("/form"),
            },
        }
    }
}

impl<'v, 'p> Node<'v, 'p> {
    /// The JSON pointer of this node.
    pub fn pointer(&self) -> String {
        self.at.pointer()
    }

    /// An [`RenderError::UnexpectedShape`] naming this node, e.g. for a value
    /// a code list does not know.
    pub fn shape_error(&self) -> RenderError {
        RenderError::UnexpectedShape {
            adapter: self.adapter,
            pointer: self.pointer(),
        }
    }

    fn child<'s>(&'s self, value: &'v Value, segment: Segment<'s>) -> Node<'v, 's> {
        Node {
            adapter: self.adapter,
            value,
            at: Location {
                parent: Some(&self.at),
                segment,
            },
        }
    }

    fn missing(&self, key: &str) -> RenderError {
        self.child(&Value::Null, Segment::Key(key)).shape_error()
    }

    /// The member `key` of this object; missing or `null` is an error.
    pub fn get<'s>(&'s self, key: &'s str) -> Result<Node<'v, 's>, RenderError> {
        self.opt(key)?.ok_or_else(|| self.missing(key))
    }

    /// The member `key` of this object, `None` if it is missing or `null`.
    pub fn opt<'s>(&'s self, key: &'s str) -> Result<Option<Node<'v, 's>>, RenderError> {
        let map = self.value.as_object().ok_or_else(|| self.shape_error())?;
        Ok(match map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(self.child(value, Segment::Key(key))),
        })
    }

    /// This value as a string that XML can carry.
    pub fn str(&self) -> Result<&'v str, RenderError> {
        match self.value.as_str() {
            Some(s) if is_xml_text(s) => Ok(s),
            _ => Err(self.shape_error()),
        }
    }

    /// This value as a non-negative integer.
    pub fn u64(&self) -> Result<u64, RenderError> {
        self.value.as_u64().ok_or_else(|| self.shape_error())
    }

    /// This value as a boolean.
    pub fn bool(&self) -> Result<bool, RenderError> {
        self.value.as_bool().ok_or_else(|| self.shape_error())
    }

    /// The elements of this array, each located at its index.
    pub fn items<'s>(&'s self) -> Result<impl Iterator<Item = Node<'v, 's>> + 's, RenderError> {
        let items = self.value.as_array().ok_or_else(|| self.shape_error())?;
        Ok(items
            .iter()
            .enumerate()
            .map(move |(index, value)| self.child(value, Segment::Index(index))))
    }

    /// The number of elements of this array.
    pub fn len(&self) -> Result<usize, RenderError> {
        self.value
            .as_array()
            .map(Vec::len)
            .ok_or_else(|| self.shape_error())
    }

    /// Whether this array is empty.
    pub fn is_empty(&self) -> Result<bool, RenderError> {
        self.len().map(|n| n == 0)
    }

    /// The string member `key`.
    pub fn str_at(&self, key: &str) -> Result<&'v str, RenderError> {
        self.get(key)?.str()
    }

    /// The string member `key`, `None` if missing or `null`.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'v str>, RenderError> {
        self.opt(key)?.map(|n| n.str()).transpose()
    }

    /// The boolean member `key`.
    pub fn bool_at(&self, key: &str) -> Result<bool, RenderError> {
        self.get(key)?.bool()
    }

    /// The boolean member `key`, `None` if missing or `null`.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, RenderError> {
        self.opt(key)?.map(|n| n.bool()).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut XmlWriter<&mut Vec<u8>>) -> Result<(), RenderError>) -> String {
        let mut out = Vec::new();
        let mut w = XmlWriter::new(&mut out, "test");
        f(&mut w).unwrap();
        w.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_escapes_markup_and_the_cdata_end() {
        let xml = render(|w| w.text("a", "x & y < z > \"q\" 'p' ]]> \r"));
        assert_eq!(
            xml,
            "<a>x &amp; y &lt; z &gt; &quot;q&quot; &apos;p&apos; ]]&gt; &#13;</a>\n"
        );
    }

    #[test]
    fn attributes_escape_markup_and_whitespace() {
        let xml = render(|w| {
            w.start_with("a", &[("k", "& < > \" ' \t\n")])?;
            w.end("a")
        });
        assert_eq!(
            xml,
            "<a k=\"&amp; &lt; &gt; &quot; &apos; &#9;&#10;\">\n</a>\n"
        );
    }

    #[test]
    fn characters_xml_cannot_carry_are_refused() {
        for bad in ["\u{0}", "a\u{1}b", "\u{1f}", "\u{fffe}", "x\u{ffff}"] {
            assert!(!is_xml_text(bad));
            let mut out = Vec::new();
            let mut w = XmlWriter::new(&mut out, "test");
            assert!(matches!(w.text("a", bad), Err(RenderError::Writer { .. })));
        }
        for good in [
            "",
            "\t\r\n",
            "\u{85}",
            "\u{d7ff}\u{e000}\u{fffd}\u{10000}\u{10ffff}",
            "ğłß€",
        ] {
            assert!(is_xml_text(good), "{good:?}");
        }
    }

    #[test]
    fn coded_values_carry_list_and_version() {
        static LIST: CodeList = CodeList {
            uri: "urn:x",
            version: "2",
            codes: Codes::Iso3166Alpha2,
        };
        let xml = render(|w| w.coded("c", &LIST, "DE"));
        assert_eq!(
            xml,
            "<c listURI=\"urn:x\" listVersionID=\"2\">\n  <code>DE</code>\n</c>\n"
        );
        assert_eq!(LIST.code("de"), None);
        assert_eq!(LIST.code("DEU"), None);
    }

    #[test]
    fn nodes_report_the_pointer_of_what_is_missing_or_mistyped() {
        let form = serde_json::json!({"a": {"b": [1, {"c": "x"}], "t/~": 3}});
        let submission = Submission {
            submission_id: "s",
            service: "hzl",
            destination: "d",
            portal: "p",
            submitted_at: "2026-01-01T00:00:00Z",
            applicant_ref: None,
            form: &form,
            attachments: &[],
        };
        let root = Node::form("test", &submission);
        let a = root.get("a").unwrap();
        let pointer = |e: RenderError| match e {
            RenderError::UnexpectedShape { pointer, .. } => pointer,
            other => panic!("{other}"),
        };
        assert_eq!(pointer(a.get("zz").err().unwrap()), "/form/a/zz");
        assert_eq!(pointer(a.str_at("t/~").unwrap_err()), "/form/a/t~1~0");
        let b = a.get("b").unwrap();
        let items: Vec<_> = b.items().unwrap().collect();
        assert_eq!(pointer(items[0].str().unwrap_err()), "/form/a/b/0");
        assert_eq!(items[1].str_at("c").unwrap(), "x");
        assert_eq!(pointer(items[1].bool_at("c").unwrap_err()), "/form/a/b/1/c");
        assert_eq!(pointer(items[0].opt("c").err().unwrap()), "/form/a/b/0");
    }

    #[test]
    fn person_refs_map_to_local_ids() {
        assert_eq!(person_id("applicant").unwrap().as_str(), "p0");
        assert_eq!(person_id("household:0").unwrap().as_str(), "p1");
        assert_eq!(person_id("household:11").unwrap().as_str(), "p12");
        for bad in [
            "household:",
            "household:-1",
            "household:+1",
            "household: 1",
            "Applicant",
            "",
        ] {
            assert!(person_id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn short_ids_and_dates() {
        assert_eq!(ShortId::new("p", 0).as_str(), "p0");
        assert_eq!(ShortId::new("p", 12).as_str(), "p12");
        assert_eq!(ShortId::number(u64::MAX).as_str(), "18446744073709551615");
        assert_eq!(
            date_part("t", "2026-11-20T09:41:27+01:00", "/x").unwrap(),
            "2026-11-20"
        );
        assert!(date_part("t", "2026-1-20T09", "/x").is_err());
        assert!(date_part("t", "2026", "/x").is_err());
        assert!(date_part("t", "2026-11-2ü", "/x").is_err());
    }
}
