//! Output validation: every rendered document is checked against its
//! adapter's XSD (`schemas/xml/<adapter.xsd()>`) before it may leave
//! (DESIGN.md step 5). A document the XSD refuses becomes the dead letter
//! `output_schema_violation` and is never sent.
//!
//! libxml2 is the validator. Its schema and validation contexts may not be
//! shared between threads, so a small pool of dedicated OS threads
//! (`kurier-xsd-<n>`, one per core, at most [`MAX_THREADS`]) each owns a
//! context of its own per XSD: at start each compiles the XSD of every
//! registered adapter once, then they take validation requests from one
//! bounded queue; the async side awaits a oneshot answer. One thread per
//! core keeps validation off the async workers and spreads it over the
//! cores (one thread had been a queue every document waited in).
//! XSDs come from the copies compiled into the binary or, when the
//! configuration sets `xsd_dir`, from `<xsd_dir>/<adapter.xsd()>`.
//!
//! libxml2's messages quote the offending values ("The value '51063' is not
//! accepted by the pattern …"), and those values come from the submission.
//! They are therefore never passed on: each message is reduced to its line
//! number, the element (and attribute) name and a fixed description of the
//! kind of problem (see [`describe`]).
//!
//! Touches: the XSD files (read once at start) and libxml2's state, only on
//! its own thread. Documents are parsed without network access and never
//! logged; libxml2 prints nothing (see `silence_libxml2_on_this_thread`).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use bytes::Bytes;
use libxml::error::StructuredError;
use libxml::parser::{Parser, ParserOptions};
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use tokio::sync::{mpsc, oneshot};

/// At most this many problems are reported for one document.
pub const MAX_PROBLEMS: usize = 5;

/// Validation requests waiting for a validator thread. The pipeline's
/// concurrency is bounded by the AMQP prefetch; this bound only keeps a
/// burst from queueing without limit.
const QUEUE: usize = 256;

/// At most this many validator threads (each holds every compiled XSD).
pub const MAX_THREADS: usize = 4;

/// The XSDs in `schemas/xml/`, by file name (what [`kurier_adapters::Adapter::xsd`] returns).
const BUILTIN: &[(&str, &str)] = &[
    (
        "xsozial-hzl.xsd",
        include_str!("../../schemas/xml/xsozial-hzl.xsd"),
    ),
    ("wbs-nrw.xsd", include_str!("../../schemas/xml/wbs-nrw.xsd")),
    ("xfall.xsd", include_str!("../../schemas/xml/xfall.xsd")),
];

#[derive(Debug, thiserror::Error)]
pub enum XsdError {
    #[error("XSD {path} of adapter {adapter}: cannot read it: {source}")]
    Read {
        adapter: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "XSD {file} of adapter {adapter} is not compiled into this binary; set xsd_dir to a directory that holds it"
    )]
    NotBuiltin {
        adapter: &'static str,
        file: &'static str,
    },
    // The messages concern our own XSD files, never a submission.
    #[error("XSD {source_name} of adapter {adapter} does not compile: {messages}")]
    Compile {
        adapter: &'static str,
        source_name: String,
        messages: String,
    },
    #[error("cannot start the XSD validator thread: {0}")]
    Spawn(std::io::Error),
    #[error("the XSD validator thread stopped while compiling the XSDs")]
    Stopped,
}

/// Why a document was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The document does not satisfy its XSD (or is not well-formed XML).
    /// `problems` holds at most [`MAX_PROBLEMS`] sanitised descriptions,
    /// `total` counts all of them.
    Invalid { problems: Vec<String>, total: usize },
    /// No XSD is compiled for this adapter.
    UnknownAdapter,
    /// The validator could not check the document (its thread is gone or
    /// failed on this document). The document must not be sent either.
    Unavailable(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Invalid { problems, total } => {
                f.write_str(&problems.join("; "))?;
                if *total > problems.len() {
                    write!(f, "; and {} more", total - problems.len())?;
                }
                Ok(())
            }
            Refusal::UnknownAdapter => f.write_str("no XSD is compiled for this adapter"),
            Refusal::Unavailable(why) => write!(f, "the XSD validator is not available ({why})"),
        }
    }
}

struct Job {
    adapter: &'static str,
    document: Bytes,
    reply: oneshot::Sender<Result<(), Refusal>>,
}

/// Handle to the validator threads; cheap to clone. The threads end when
/// the last handle is dropped.
#[derive(Clone)]
pub struct Validator {
    jobs: mpsc::Sender<Job>,
}

/// The one queue the validator threads take requests from, in turn.
type Queue = std::sync::Arc<std::sync::Mutex<mpsc::Receiver<Job>>>;

impl Validator {
    /// Start the validator threads and compile the XSD of every adapter in
    /// [`kurier_adapters::REGISTRY`] on each; returns once all compiled, or
    /// with the first one that did not.
    pub fn start(xsd_dir: Option<&Path>) -> Result<Validator, XsdError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        Validator::start_with(xsd_dir, threads)
    }

    /// [`Validator::start`] with `threads` validator threads (at least one).
    pub fn start_with(xsd_dir: Option<&Path>, threads: usize) -> Result<Validator, XsdError> {
        let mut sources = Vec::new();
        for adapter in kurier_adapters::REGISTRY {
            sources.push(source_of(*adapter, xsd_dir)?);
        }
        let sources = std::sync::Arc::new(sources);
        // Once, before any thread uses libxml2 (its global initialisation).
        libxml::init_parser();
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let queue: Queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let threads = threads.max(1);
        for n in 0..threads {
            let (sources, queue, ready_tx) = (sources.clone(), queue.clone(), ready_tx.clone());
            std::thread::Builder::new()
                .name(format!("kurier-xsd-{n}"))
                .spawn(move || {
                    silence_libxml2_on_this_thread();
                    let compiled = match compile_all(&sources) {
                        Ok(compiled) => {
                            let _ = ready_tx.send(Ok(()));
                            compiled
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    drop((sources, ready_tx));
                    serve(compiled, &queue);
                })
                .map_err(XsdError::Spawn)?;
        }
        drop(ready_tx);
        for _ in 0..threads {
            ready_rx.recv().map_err(|_| XsdError::Stopped)??;
        }
        Ok(Validator { jobs })
    }

    /// Check `document` (in whatever encoding its XML declaration names)
    /// against the XSD of `adapter`.
    pub async fn validate(&self, adapter: &'static str, document: Bytes) -> Result<(), Refusal> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            adapter,
            document,
            reply,
        };
        if self.jobs.send(job).await.is_err() {
            return Err(Refusal::Unavailable("its thread has stopped"));
        }
        answer
            .await
            .unwrap_or(Err(Refusal::Unavailable("it failed on this document")))
    }
}

/// An XSD to compile: the adapter, where the text came from, the text.
struct Source {
    adapter: &'static str,
    name: String,
    text: Vec<u8>,
}

fn source_of(
    adapter: &'static dyn kurier_adapters::Adapter,
    xsd_dir: Option<&Path>,
) -> Result<Source, XsdError> {
    let file = adapter.xsd();
    match xsd_dir {
        Some(dir) => {
            let path = dir.join(file);
            let text = std::fs::read(&path).map_err(|source| XsdError::Read {
                adapter: adapter.name(),
                path: path.display().to_string(),
                source,
            })?;
            Ok(Source {
                adapter: adapter.name(),
                name: path.display().to_string(),
                text,
            })
        }
        None => {
            let (_, text) =
                BUILTIN
                    .iter()
                    .find(|(name, _)| *name == file)
                    .ok_or(XsdError::NotBuiltin {
                        adapter: adapter.name(),
                        file,
                    })?;
            Ok(Source {
                adapter: adapter.name(),
                name: format!("{file} (built in)"),
                text: text.as_bytes().to_vec(),
            })
        }
    }
}

/// libxml2 prints whatever no context collects to stderr, and stderr is
/// Kurier's log stream: nothing may reach it raw from a document. Validation
/// errors are collected by the validation context and parser errors by the
/// parser; this catches the rest on the validator thread and drops it.
fn silence_libxml2_on_this_thread() {
    // Generic over the error pointer: libxml2 < 2.12 passes `*mut xmlError`,
    // later versions `*const xmlError`; the binding's type picks the one.
    unsafe extern "C" fn discard<E>(_context: *mut std::ffi::c_void, _error: E) {}
    // SAFETY: sets the calling thread's structured error handler to a
    // function that reads neither of its arguments; no context pointer.
    unsafe { libxml::bindings::xmlSetStructuredErrorFunc(std::ptr::null_mut(), Some(discard)) }
    // A few places print through the generic handler instead (the schema
    // validator's stub for an entity reference: "Unimplemented block at
    // …"). Its default printer writes to the FILE it is given: /dev/null,
    // opened once for the thread's life. (A handler of our own would have to
    // be a C-variadic function.)
    // SAFETY: a C string literal; the FILE stays open while the thread runs
    // and is only written by libxml2 on this thread.
    unsafe {
        let null = libc::fopen(c"/dev/null".as_ptr(), c"w".as_ptr());
        if !null.is_null() {
            libxml::bindings::xmlSetGenericErrorFunc(null.cast(), None);
        }
    }
}

/// Runs on a validator thread: the contexts are that thread's own.
fn compile_all(
    sources: &[Source],
) -> Result<HashMap<&'static str, SchemaValidationContext>, XsdError> {
    let mut compiled = HashMap::new();
    for source in sources {
        let fail = |messages: String| XsdError::Compile {
            adapter: source.adapter,
            source_name: source.name.clone(),
            messages,
        };
        // libxml2 refuses to create a parser context for an empty buffer
        // (and the binding panics then).
        if source.text.is_empty() {
            return Err(fail("the file is empty".into()));
        }
        let mut parser = SchemaParserContext::from_buffer(&source.text);
        let context = SchemaValidationContext::from_parser(&mut parser).map_err(|errors| {
            // libxml2 reports a schema that is not even well-formed XML as
            // "failed to parse the resource": parse it again for the reason.
            if let Err(libxml::parser::XmlParseFailure::ParseFailed(diagnostics)) =
                Parser::default().parse_string_with_diagnostics(
                    &source.text,
                    ParserOptions {
                        recover: false,
                        no_net: true,
                        ..ParserOptions::default()
                    },
                )
                && let Some(first) = diagnostics.first()
            {
                let text = first.message.as_deref().unwrap_or("unknown error").trim();
                return fail(match first.line {
                    Some(line) => format!("not well-formed XML: line {line}: {text}"),
                    None => format!("not well-formed XML: {text}"),
                });
            }
            let messages: Vec<String> = errors
                .iter()
                .take(MAX_PROBLEMS)
                .map(|e| {
                    let text = e.message.as_deref().unwrap_or("unknown error").trim();
                    match e.line {
                        Some(line) => format!("line {line}: {text}"),
                        None => text.to_owned(),
                    }
                })
                .collect();
            fail(messages.join("; "))
        })?;
        compiled.insert(source.adapter, context);
    }
    Ok(compiled)
}

/// A validator thread's loop: one request after the other until every
/// [`Validator`] handle is gone. The threads wait for the queue in turn: the
/// one holding its lock takes the next request and lets go before checking.
fn serve(mut compiled: HashMap<&'static str, SchemaValidationContext>, queue: &Queue) {
    loop {
        let next = queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .blocking_recv();
        let Some(job) = next else { break };
        let Some(context) = compiled.get_mut(job.adapter) else {
            let _ = job.reply.send(Err(Refusal::UnknownAdapter));
            continue;
        };
        // The binding panics only where libxml2 returns no context (out of
        // memory); the thread must survive that. The reply is then dropped
        // and the caller sees `Unavailable`.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(context, &job.document)));
        if let Ok(outcome) = outcome {
            let _ = job.reply.send(outcome);
        }
    }
}

/// How a document is parsed into a tree for validation (the XTA 2 double's
/// SOAP messages, `delivery::xta2::schema`). Kurier's own output is
/// validated while it is parsed, with the same options as flags ([`check`]).
pub(crate) fn parser_options() -> ParserOptions<'static> {
    ParserOptions {
        // A broken document must fail, not be repaired into a valid one.
        recover: false,
        no_net: true,
        // Diagnostics are collected, never printed.
        no_error: true,
        no_warning: true,
        // Attachments are base64 text nodes that may exceed libxml2's
        // default limit of 10 MB per text node. The document is our own
        // output (no DTD, escaped by the writer), not untrusted XML.
        huge: true,
        ..ParserOptions::default()
    }
}

/// Validate the bytes as they are parsed (libxml2 honours the encoding of
/// the XML declaration, e.g. ISO-8859-15): the parser's SAX events go
/// straight into the validation context (`xmlSchemaSAXPlug`), and no tree is
/// built. Building the tree and freeing it again had been most of the
/// validation's cost (benches/xsd.rs, docs/PERFORMANCE.md). This is what
/// libxml2's own `xmlSchemaValidateStream` does, with the parser options of
/// [`parser_options`] as flags (that function sets none: no `HUGE` for
/// large attachments). Stricter than the parser alone, so that nothing a
/// tree would refuse passes: an undeclared namespace prefix and a DTD are
/// refused (see below). Without a tree a few messages (a missing child, a
/// key reference) carry the line where the element ends, not where it
/// starts.
fn check(context: &mut SchemaValidationContext, document: &[u8]) -> Result<(), Refusal> {
    use libxml::bindings as xml;
    let not_well_formed = |line: i32| {
        let problem = if line > 0 {
            format!("line {line}: the document is not well-formed XML")
        } else {
            "the document is not well-formed XML".to_owned()
        };
        refused(problem)
    };
    if document.is_empty() {
        return not_well_formed(0);
    }
    let Ok(size) = i32::try_from(document.len()) else {
        return refused("the document is larger than libxml2 can parse (2 GiB)");
    };
    let options = (xml::xmlParserOption_XML_PARSE_NONET
        | xml::xmlParserOption_XML_PARSE_NOERROR
        | xml::xmlParserOption_XML_PARSE_NOWARNING
        | xml::xmlParserOption_XML_PARSE_HUGE) as i32;
    let validation = context.as_ptr();
    // SAFETY: everything here runs on this validator thread, which owns
    // `context`; `document` outlives the parser context (libxml2 copies it
    // into its input buffer). The parser context is made and freed here;
    // its SAX handler is taken out while the validation is plugged in (so
    // no tree is built) and put back before it is freed, as
    // `xmlSchemaValidateStream` does; the locator points at the parser
    // context only while it lives.
    let (well_formed, parse_error_line, valid, has_doctype) = unsafe {
        let parser = xml::xmlCreateMemoryParserCtxt(document.as_ptr().cast(), size);
        if parser.is_null() {
            return Err(Refusal::Unavailable("libxml2 could not set up a parser"));
        }
        xml::xmlCtxtUseOptions(parser, options);
        (*parser).linenumbers = 1;
        let tree_builder = (*parser).sax;
        (*parser).sax = std::ptr::null_mut();
        xml::xmlSchemaValidateSetLocator(validation, Some(locate), parser.cast());
        let plug = xml::xmlSchemaSAXPlug(validation, &mut (*parser).sax, &mut (*parser).userData);
        let outcome = if plug.is_null() {
            None
        } else {
            xml::xmlParseDocument(parser);
            // Well-formed in every sense a tree would need: a namespace
            // prefix nobody declared leaves `wellFormed` set (only
            // `nsWellFormed` falls) and the element would be validated under
            // its local name; an error after running out of memory leaves
            // `wellFormed` set too, but never `errNo` clear.
            let outcome = (
                (*parser).wellFormed != 0 && (*parser).nsWellFormed != 0 && (*parser).errNo == 0,
                (*parser).lastError.line,
                xml::xmlSchemaIsValid(validation) == 1,
                !(*parser).intSubName.is_null(),
            );
            xml::xmlSchemaSAXUnplug(plug);
            Some(outcome)
        };
        xml::xmlSchemaValidateSetLocator(validation, None, std::ptr::null_mut());
        (*parser).sax = tree_builder;
        xml::xmlFreeParserCtxt(parser);
        match outcome {
            Some(outcome) => outcome,
            None => return Err(Refusal::Unavailable("libxml2 could not plug in the XSD")),
        }
    };
    // What the validation collected belongs to this document alone, whatever
    // the outcome.
    let errors = context.drain_errors();
    if !well_formed {
        // The parser's messages may quote bytes of the document: keep only
        // where.
        return not_well_formed(parse_error_line);
    }
    if has_doctype {
        // Kurier writes no DTD. Streamed, the validator would see the
        // attributes a DTD defaults and skip the entities it leaves
        // undeclared: what a tree would refuse could pass.
        return refused("the document carries a document type declaration (DTD)");
    }
    if valid {
        // (Warnings, if libxml2 gave any, do not refuse a document.)
        return Ok(());
    }
    if errors.is_empty() {
        return refused("the document does not satisfy its XSD");
    }
    Err(Refusal::Invalid {
        total: errors.len(),
        problems: errors
            .iter()
            .take(MAX_PROBLEMS)
            .map(describe_error)
            .collect(),
    })
}

/// A document refused for one problem (already free of document values).
fn refused(problem: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal::Invalid {
        problems: vec![problem.into()],
        total: 1,
    })
}

/// Where a streamed validation is: the parser's current line, for the
/// validation's messages (without a tree they carry none of their own).
unsafe extern "C" fn locate(
    parser: *mut std::ffi::c_void,
    file: *mut *const std::ffi::c_char,
    line: *mut std::ffi::c_ulong,
) -> std::ffi::c_int {
    let parser: libxml::bindings::xmlParserCtxtPtr = parser.cast();
    // SAFETY: set in `check` to the parser context that is parsing now;
    // libxml2 passes valid (or null) out-pointers.
    unsafe {
        if !file.is_null() {
            *file = std::ptr::null();
        }
        if !line.is_null() {
            *line = 0;
        }
        if parser.is_null() || (*parser).input.is_null() {
            return -1;
        }
        if !line.is_null() {
            *line = (*(*parser).input).line as std::ffi::c_ulong;
        }
    }
    0
}

fn describe_error(error: &StructuredError) -> String {
    describe(
        error.message.as_deref().unwrap_or(""),
        error.line,
        error.code,
    )
}

/// A libxml2 validation message reduced to what is safe to show: line,
/// element and attribute name, and a fixed description of the problem.
/// Nothing quoted after the element and attribute names is kept, because
/// that is where libxml2 puts the offending value.
pub fn describe(message: &str, line: Option<i32>, code: i32) -> String {
    let (element, attribute, rest) = subject(message);
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    if let Some(element) = element {
        out.push_str(&format!("element {element}"));
        if let Some(attribute) = attribute {
            out.push_str(&format!(", attribute {attribute}"));
        }
        out.push_str(": ");
    }
    match problem(rest) {
        Some(problem) => out.push_str(problem),
        None => out.push_str(&format!("not valid against the XSD (libxml2 error {code})")),
    }
    // "The attribute 'x' is required but missing": the name is the schema's.
    if rest.contains("is required but missing")
        && let Some(name) = quoted_after(rest, "The attribute '")
    {
        out.push_str(&format!(" ({name})"));
    }
    out
}

/// `Element '{ns}name'[, attribute 'name']: rest` → safe names and the rest.
fn subject(message: &str) -> (Option<&str>, Option<&str>, &str) {
    let Some(after) = message.strip_prefix("Element '") else {
        return (None, None, message);
    };
    let Some((qname, rest)) = after.split_once('\'') else {
        return (None, None, message);
    };
    let element = Some(safe_local_name(qname));
    match rest.strip_prefix(", attribute '") {
        Some(after) => match after.split_once('\'') {
            Some((attribute, rest)) => (element, Some(safe_local_name(attribute)), rest),
            None => (element, None, rest),
        },
        None => (element, None, rest),
    }
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let (_, after) = text.split_once(prefix)?;
    let (name, _) = after.split_once('\'')?;
    Some(safe_local_name(name))
}

/// The local part of `{namespace}local` or `prefix:local`, if it looks like
/// an XML name an adapter writes; anything else is withheld.
fn safe_local_name(qname: &str) -> &str {
    let local = qname.rsplit_once('}').map_or(qname, |(_, l)| l);
    let local = local.rsplit_once(':').map_or(local, |(_, l)| l);
    let mut chars = local.chars();
    let looks_like_name = local.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if looks_like_name {
        local
    } else {
        "(name withheld)"
    }
}

/// The kind of problem, from libxml2's fixed phrases (xmlschemas.c). The
/// order matters: facet messages also say "The value".
fn problem(rest: &str) -> Option<&'static str> {
    const FACETS: &[(&[&str], &str)] = &[
        (
            &["[facet 'pattern']"],
            "value does not match the pattern of its type",
        ),
        (
            &["[facet 'enumeration']"],
            "value is not one of the allowed values",
        ),
        (
            &[
                "[facet 'length']",
                "[facet 'minLength']",
                "[facet 'maxLength']",
            ],
            "value is shorter or longer than allowed",
        ),
        (
            &[
                "[facet 'minInclusive']",
                "[facet 'maxInclusive']",
                "[facet 'minExclusive']",
                "[facet 'maxExclusive']",
            ],
            "value is outside the allowed range",
        ),
        (
            &["[facet 'totalDigits']", "[facet 'fractionDigits']"],
            "value has more digits than allowed",
        ),
        (&["[facet '"], "value not allowed by a facet of its type"),
    ];
    const PHRASES: &[(&str, &str)] = &[
        ("is not a valid value of", "value not allowed by its type"),
        ("Missing child element", "missing child element"),
        ("This element is not expected", "unexpected element"),
        ("is required but missing", "required attribute missing"),
        ("Character content", "text not allowed in this element"),
        (
            "Element content is not allowed",
            "child elements not allowed here",
        ),
        (
            "No matching global declaration",
            "root element not declared by the XSD",
        ),
        ("key-sequence", "identity constraint violated"),
        ("keyref", "identity constraint violated"),
        ("nillable", "nil not allowed here"),
        ("xsi:nil", "nil not allowed here"),
        // Last: the phrases above may say "is not allowed" too.
        ("is not allowed", "not allowed here"),
    ];
    for (markers, problem) in FACETS {
        if markers.iter().any(|m| rest.contains(m)) {
            return Some(problem);
        }
    }
    PHRASES
        .iter()
        .find(|(marker, _)| rest.contains(marker))
        .map(|(_, problem)| *problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "KANARIE-4711";

    fn golden_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/tests/golden")
    }

    fn golden(adapter: &str, file: &str) -> Vec<u8> {
        std::fs::read(golden_dir().join(adapter).join(file)).unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Replace the first occurrence of `from` in `bytes`.
    fn replace_first(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("the golden file holds the value to replace");
        [&bytes[..at], to, &bytes[at + from.len()..]].concat()
    }

    #[test]
    fn every_golden_file_satisfies_its_adapters_xsd() {
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        let mut checked = 0;
        for adapter in kurier_adapters::REGISTRY {
            let dir = golden_dir().join(adapter.name());
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect();
            files.sort();
            assert!(!files.is_empty(), "no golden files in {}", dir.display());
            for path in files {
                let document = Bytes::from(std::fs::read(&path).unwrap());
                let outcome = rt.block_on(validator.validate(adapter.name(), document));
                assert_eq!(outcome, Ok(()), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 14, "only {checked} golden files");
    }

    /// Several validator threads, each with its own contexts, answering
    /// many documents at once: every answer is the one for its own document
    /// (valid ones pass, each broken one is refused for its own element).
    #[test]
    fn the_validator_threads_answer_each_document_for_itself() {
        let validator = Validator::start_with(None, 3).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let good = golden("xsozial-hzl", "hzl-minimal.xml");
        let broken = replace_first(
            &good,
            b"<xsb:postleitzahl>51063</xsb:postleitzahl>",
            b"<xsb:postleitzahl>x</xsb:postleitzahl>",
        );
        let wbs = golden("wbs-nrw", "wbs-full.xml");
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let validator = validator.clone();
                let (adapter, document, valid) = match i % 3 {
                    0 => ("xsozial-hzl", good.clone(), true),
                    1 => ("xsozial-hzl", broken.clone(), false),
                    _ => ("wbs-nrw", wbs.clone(), true),
                };
                rt.spawn(async move {
                    let outcome = validator.validate(adapter, Bytes::from(document)).await;
                    (i, valid, outcome)
                })
            })
            .collect();
        for task in tasks {
            let (i, valid, outcome) = rt.block_on(task).unwrap();
            if valid {
                assert_eq!(outcome, Ok(()), "document {i}");
            } else {
                let text = outcome.unwrap_err().to_string();
                assert!(
                    text.contains("element postleitzahl"),
                    "document {i}: {text}"
                );
            }
        }
    }

    #[test]
    fn an_iso_8859_15_document_is_read_in_its_declared_encoding() {
        let document = golden("wbs-nrw", "wbs-turkish-polish.xml");
        assert!(document.starts_with(b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>"));
        assert!(
            std::str::from_utf8(&document).is_err(),
            "the golden file holds bytes that are not UTF-8"
        );
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        assert_eq!(
            rt.block_on(validator.validate("wbs-nrw", Bytes::from(document))),
            Ok(())
        );
    }

    #[test]
    fn a_broken_value_names_the_element_but_not_the_value() {
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        let document = replace_first(
            &golden("xsozial-hzl", "hzl-minimal.xml"),
            b"<xsb:postleitzahl>51063</xsb:postleitzahl>",
            format!("<xsb:postleitzahl>{CANARY}</xsb:postleitzahl>").as_bytes(),
        );
        let refusal = rt
            .block_on(validator.validate("xsozial-hzl", Bytes::from(document)))
            .unwrap_err();
        let text = refusal.to_string();
        assert!(matches!(refusal, Refusal::Invalid { .. }), "{refusal:?}");
        assert!(text.contains("element postleitzahl"), "{text}");
        assert!(text.contains("pattern"), "{text}");
        assert!(text.contains("line 75"), "{text}");
        assert!(!text.contains(CANARY), "{text}");
        assert!(!text.contains("KANARIE"), "{text}");
    }

    #[test]
    fn broken_values_in_every_format_never_reach_the_message() {
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        let cases: &[(&str, &str, &str, &str)] = &[
            // An ISO-8859-15 document with a non-ASCII canary.
            (
                "wbs-nrw",
                "wbs-full.xml",
                "<postleitzahl>44137</postleitzahl>",
                "<postleitzahl>KANARIE-4711</postleitzahl>",
            ),
            // An unexpected element whose content is the canary.
            (
                "xfall",
                "hzl-full.xml",
                "<nachricht>",
                "<geheim>KANARIE-4711</geheim><nachricht>",
            ),
            // An attribute value.
            (
                "xfall",
                "xfall-json-types.xml",
                "typ=\"number\"",
                "typ=\"KANARIE-4711\"",
            ),
        ];
        for (adapter, file, from, to) in cases {
            let document = replace_first(&golden(adapter, file), from.as_bytes(), to.as_bytes());
            let refusal = rt
                .block_on(validator.validate(adapter, Bytes::from(document)))
                .unwrap_err();
            let text = refusal.to_string();
            assert!(matches!(refusal, Refusal::Invalid { .. }), "{refusal:?}");
            assert!(text.contains("element "), "{adapter}/{file}: {text}");
            assert!(!text.contains("KANARIE"), "{adapter}/{file}: {text}");
        }
    }

    #[test]
    fn a_document_that_is_not_well_formed_is_refused_without_its_content() {
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        let document = Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<fall>{CANARY}</falsch>"
        ));
        let refusal = rt
            .block_on(validator.validate("xfall", document))
            .unwrap_err();
        let text = refusal.to_string();
        assert!(text.contains("not well-formed"), "{text}");
        assert!(!text.contains("KANARIE"), "{text}");
        assert!(!text.contains("fall"), "{text}");
    }

    /// Validation runs while the document is parsed: a document cut off
    /// after valid content is refused as not well-formed (with where, and
    /// no schema complaint about what is missing), and the thread's context
    /// serves the next document as if nothing had happened.
    #[test]
    fn a_cut_off_document_is_not_well_formed_and_the_next_one_passes() {
        let validator = Validator::start_with(None, 1).unwrap();
        let rt = runtime();
        let good = golden("xsozial-hzl", "hzl-full.xml");
        let cut = good[..good.len() / 2].to_vec();
        let lines = cut.iter().filter(|b| **b == b'\n').count() + 1;
        let text = rt
            .block_on(validator.validate("xsozial-hzl", Bytes::from(cut)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            format!("line {lines}: the document is not well-formed XML")
        );
        assert_eq!(
            rt.block_on(validator.validate("xsozial-hzl", Bytes::from(good))),
            Ok(())
        );
    }

    /// An attachment's base64 above libxml2's default limit for one text
    /// node (10 MB) is validated: the intake admits bodies of up to 16 MiB.
    /// (Parsed into a tree, the document needed `XML_PARSE_HUGE` for it;
    /// the streamed validation must not bring a limit of its own back.)
    #[test]
    fn an_attachment_above_ten_megabytes_is_validated() {
        let validator = Validator::start_with(None, 1).unwrap();
        let rt = runtime();
        let good = golden("xsozial-hzl", "hzl-full.xml");
        let big = "QUJD".repeat(11_000_000 / 4);
        let open = b"<xsb:inhalt>";
        let start = good.windows(open.len()).position(|w| w == open).unwrap() + open.len();
        let end = start + good[start..].windows(2).position(|w| w == b"</").unwrap();
        let document = [&good[..start], big.as_bytes(), &good[end..]].concat();
        assert_eq!(
            rt.block_on(validator.validate("xsozial-hzl", Bytes::from(document))),
            Ok(())
        );
    }

    /// What a tree of the document would not have passed must not pass
    /// while streaming either (found in review): a namespace prefix that is
    /// not declared (the parser calls the document well-formed and hands
    /// the element or attribute on under its local name), and a document
    /// type declaration, whose defaulted attributes the validator would see
    /// and whose undeclared entity references it would skip. Kurier's
    /// adapters write neither; the check is there for when one does.
    #[test]
    fn what_a_tree_would_refuse_is_refused_while_streaming() {
        let validator = Validator::start_with(None, 1).unwrap();
        let rt = runtime();
        let good = golden("xsozial-hzl", "hzl-minimal.xml");
        let declaration_end = good.iter().position(|b| *b == b'\n').unwrap() + 1;
        let with_doctype = |doctype: &[u8], document: &[u8]| {
            [
                &document[..declaration_end],
                doctype,
                b"\n",
                &document[declaration_end..],
            ]
            .concat()
        };
        let unprefixed_head = replace_first(
            &replace_first(
                &good,
                b"<nachrichtenkopf.g2g>",
                b"<oops:nachrichtenkopf.g2g>",
            ),
            b"</nachrichtenkopf.g2g>",
            b"</oops:nachrichtenkopf.g2g>",
        );
        let unprefixed_attribute = replace_first(
            &good,
            b" listVersionID=\"3\">",
            b" oops:listVersionID=\"3\">",
        );
        let defaulted_by_dtd = with_doctype(
            b"<!DOCTYPE xsb:vorgang.transportieren.1000001 [<!ATTLIST verzeichnisdienst listVersionID CDATA \"3\">]>",
            &replace_first(&good, b" listVersionID=\"3\">", b">"),
        );
        let skipped_entity = with_doctype(
            b"<!DOCTYPE x SYSTEM \"http://evil.example/x.dtd\">",
            &replace_first(
                &good,
                b"<xsb:postleitzahl>51063</xsb:postleitzahl>",
                b"<xsb:postleitzahl>&e;51063</xsb:postleitzahl>",
            ),
        );
        for (case, document) in [
            ("undeclared element prefix", unprefixed_head),
            ("undeclared attribute prefix", unprefixed_attribute),
            ("attribute defaulted by a DTD", defaulted_by_dtd),
            ("entity of an external DTD", skipped_entity),
        ] {
            let outcome = rt.block_on(validator.validate("xsozial-hzl", Bytes::from(document)));
            assert!(
                matches!(outcome, Err(Refusal::Invalid { .. })),
                "{case}: {outcome:?}"
            );
        }
        // The context is unharmed for the next document.
        assert_eq!(
            rt.block_on(validator.validate("xsozial-hzl", Bytes::from(good))),
            Ok(())
        );
    }

    #[test]
    fn an_unknown_adapter_is_refused() {
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        assert_eq!(
            rt.block_on(validator.validate("xsozial-kita", Bytes::from_static(b"<a/>"))),
            Err(Refusal::UnknownAdapter)
        );
    }

    #[test]
    fn at_most_five_problems_are_named_and_the_rest_counted() {
        let validator = Validator::start(None).unwrap();
        let rt = runtime();
        // Eleven family names with a value that is not allowed there.
        let text = String::from_utf8(golden("xsozial-hzl", "hzl-max-household.xml"))
            .unwrap()
            .replace("<xsb:familienname>", "<xsb:familienname>KANARIE-4711");
        let refusal = rt
            .block_on(validator.validate("xsozial-hzl", Bytes::from(text)))
            .unwrap_err();
        let Refusal::Invalid { problems, total } = &refusal else {
            panic!("{refusal:?}");
        };
        assert_eq!(problems.len(), MAX_PROBLEMS);
        assert!(*total > MAX_PROBLEMS, "{total}");
        assert!(
            refusal
                .to_string()
                .ends_with(&format!("and {} more", total - MAX_PROBLEMS))
        );
    }

    #[test]
    fn a_broken_xsd_dir_is_reported_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let err = Validator::start(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
        for (file, text) in BUILTIN {
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        Validator::start(Some(dir.path())).unwrap();
        std::fs::write(dir.path().join("xfall.xsd"), "<xs:schema").unwrap();
        let err = Validator::start(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not compile"), "{err}");
        assert!(err.contains("xfall"), "{err}");
        assert!(err.contains("not well-formed XML: line 1"), "{err}");
        std::fs::write(
            dir.path().join("xfall.xsd"),
            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\n<xs:element name=\"a\" type=\"xs:nonsense\"/>\n</xs:schema>",
        )
        .unwrap();
        let err = Validator::start(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not compile: line 2"), "{err}");
        assert!(err.contains("nonsense"), "{err}");
        std::fs::write(dir.path().join("xfall.xsd"), "").unwrap();
        let err = Validator::start(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn every_adapter_has_a_builtin_xsd_identical_to_schemas_xml() {
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/xml");
        for adapter in kurier_adapters::REGISTRY {
            let (_, text) = BUILTIN
                .iter()
                .find(|(f, _)| *f == adapter.xsd())
                .unwrap_or_else(|| panic!("no built-in XSD for {}", adapter.name()));
            assert_eq!(
                *text,
                std::fs::read_to_string(schemas.join(adapter.xsd())).unwrap()
            );
        }
    }

    /// Real libxml2 2.9–2.14 messages (as `xmllint --schema` prints them),
    /// each with the canary where libxml2 quotes the document's value.
    #[test]
    fn the_sanitiser_keeps_names_and_drops_every_quoted_value() {
        let cases: &[(&str, &str)] = &[
            (
                "Element '{urn:t}plz': [facet 'pattern'] The value 'KANARIE-4711' is not accepted by the pattern '[0-9]{5}'.\n",
                "line 3: element plz: value does not match the pattern of its type",
            ),
            (
                "Element '{urn:t}code': [facet 'enumeration'] The value 'KANARIE-4711' is not an element of the set {'a', 'b'}.\n",
                "line 3: element code: value is not one of the allowed values",
            ),
            (
                "Element '{urn:t}datum': 'KANARIE-4711' is not a valid value of the atomic type 'xs:date'.\n",
                "line 3: element datum: value not allowed by its type",
            ),
            (
                "Element '{urn:t}kurz': [facet 'maxLength'] The value has a length of '12'; this exceeds the allowed maximum length of '3'.\n",
                "line 3: element kurz: value is shorter or longer than allowed",
            ),
            (
                "Element '{urn:t}zahl': [facet 'maxInclusive'] The value 'KANARIE-4711' is greater than the maximum value allowed ('10').\n",
                "line 3: element zahl: value is outside the allowed range",
            ),
            (
                "Element '{urn:t}leer': Character content is not allowed, because the content type is empty.\n",
                "line 3: element leer: text not allowed in this element",
            ),
            (
                "Element '{urn:t}kind', attribute 'typ': 'KANARIE-4711' is not a valid value of the atomic type 'xs:boolean'.\n",
                "line 3: element kind, attribute typ: value not allowed by its type",
            ),
            (
                "Element '{urn:t}kind', attribute 'extra': The attribute 'extra' is not allowed.\n",
                "line 3: element kind, attribute extra: not allowed here",
            ),
            (
                "Element '{urn:t}b': This element is not expected. Expected is ( {urn:t}a ).\n",
                "line 3: element b: unexpected element",
            ),
            (
                "Element '{urn:t}root': Missing child element(s). Expected is ( {urn:t}code ).\n",
                "line 3: element root: missing child element",
            ),
            (
                "Element '{urn:t}kind': The attribute 'typ' is required but missing.\n",
                "line 3: element kind: required attribute missing (typ)",
            ),
            (
                "Element '{urn:t}kind': Character content other than whitespace is not allowed because the content type is 'element-only'.\n",
                "line 3: element kind: text not allowed in this element",
            ),
            (
                "Element '{urn:t}eintrag': Duplicate key-sequence ['KANARIE-4711'] in unique identity-constraint '{urn:t}u'.\n",
                "line 3: element eintrag: identity constraint violated",
            ),
            (
                "Element '{urn:t}other': No matching global declaration available for the validation root.\n",
                "line 3: element other: root element not declared by the XSD",
            ),
            // Unknown phrasing: only the code.
            (
                "Element '{urn:t}x': Something new about 'KANARIE-4711'.\n",
                "line 3: element x: not valid against the XSD (libxml2 error 1879)",
            ),
            // Not an element message at all.
            (
                "'KANARIE-4711' is odd.\n",
                "line 3: not valid against the XSD (libxml2 error 1879)",
            ),
            // A name that does not look like one.
            (
                "Element '{urn:t}KANARIE 4711': This element is not expected.\n",
                "line 3: element (name withheld): unexpected element",
            ),
        ];
        for (message, expected) in cases {
            let described = describe(message, Some(3), 1879);
            assert_eq!(&described, expected, "{message}");
            assert!(!described.contains("KANARIE"), "{described}");
        }
        assert_eq!(
            describe("Element 'wert': This element is not expected.", None, 1871),
            "element wert: unexpected element"
        );
    }
}
