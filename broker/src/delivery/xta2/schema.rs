//! Validation of whole SOAP messages against the XTA-WS 2.1.1 schemas
//! (`schemas/xta2/kurier-soap12-strict.xsd`: the SOAP 1.2 envelope with
//! strict wildcards, importing WS-Addressing, the OSCI metadata and the XTA
//! elements). Used by the unit tests of the envelopes Kurier builds and by
//! the XTA test double, which refuses every invalid request with a fault.
//!
//! libxml2 is not thread-safe (DEPENDENCIES.md): like `crate::xsd`, one
//! dedicated thread compiles the schema once (from files: the XSDs import
//! each other by relative `schemaLocation`) and owns all libxml2 state;
//! callers send documents over a channel and await the answer. Problems
//! are reduced by `crate::xsd::describe` to line, element and kind, never
//! a value.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use libxml::parser::Parser;
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use tokio::sync::{mpsc, oneshot};

/// The validation root, relative to the schema directory.
pub const ROOT_XSD: &str = "kurier-soap12-strict.xsd";

/// `schemas/xta2` of this source tree.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/xta2")
}

struct Job {
    document: Vec<u8>,
    reply: oneshot::Sender<Result<(), Vec<String>>>,
}

/// Handle to the validator thread; cheap to clone.
#[derive(Clone)]
pub struct SoapValidator {
    jobs: mpsc::Sender<Job>,
}

impl SoapValidator {
    /// Compile `<dir>/kurier-soap12-strict.xsd` on a thread of its own.
    pub fn start(dir: &Path) -> Result<SoapValidator, String> {
        let root = dir.join(ROOT_XSD);
        let root = root
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", root.display()))?
            .to_owned();
        let (jobs, mut queue) = mpsc::channel::<Job>(64);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kurier-xta2-xsd".into())
            .spawn(move || {
                libxml::init_parser();
                let mut parser = SchemaParserContext::from_file(&root);
                let mut context = match SchemaValidationContext::from_parser(&mut parser) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(errors) => {
                        let messages: Vec<String> = errors
                            .iter()
                            .take(5)
                            .map(|e| e.message.clone().unwrap_or_default().trim().to_owned())
                            .collect();
                        let _ = ready_tx.send(Err(format!(
                            "{root} does not compile: {}",
                            messages.join("; ")
                        )));
                        return;
                    }
                };
                while let Some(job) = queue.blocking_recv() {
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        check(&mut context, &job.document)
                    }));
                    if let Ok(outcome) = outcome {
                        let _ = job.reply.send(outcome);
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        ready_rx
            .recv()
            .map_err(|_| "the validator thread stopped".to_owned())??;
        Ok(SoapValidator { jobs })
    }

    /// Check one SOAP envelope (XOP includes already resolved).
    pub async fn validate(&self, document: Vec<u8>) -> Result<(), Vec<String>> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { document, reply }).await.is_err() {
            return Err(vec!["the validator thread has stopped".into()]);
        }
        answer
            .await
            .unwrap_or_else(|_| Err(vec!["the validator failed on this document".into()]))
    }

    /// [`SoapValidator::validate`] from synchronous code (tests).
    pub fn validate_blocking(&self, document: Vec<u8>) -> Result<(), Vec<String>> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.blocking_send(Job { document, reply }).is_err() {
            return Err(vec!["the validator thread has stopped".into()]);
        }
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(vec!["the validator failed on this document".into()]))
    }
}

fn check(context: &mut SchemaValidationContext, document: &[u8]) -> Result<(), Vec<String>> {
    let doc = match Parser::default()
        .parse_string_with_diagnostics(document, crate::xsd::parser_options())
    {
        Ok((doc, _)) => doc,
        Err(_) => return Err(vec!["not well-formed XML".into()]),
    };
    context.validate_document(&doc).map_err(|errors| {
        errors
            .iter()
            .take(5)
            .map(|e| crate::xsd::describe(e.message.as_deref().unwrap_or(""), e.line, e.code))
            .collect()
    })
}
