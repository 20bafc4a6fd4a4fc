//! The `xfall` adapter: a generic container for a submission of any service,
//! for authorities that take Kurier's own format instead of a standard one.
//! UTF-8, described by `schemas/xml/xfall.xsd`, default namespace
//! [`NAMESPACE`]. It touches only its arguments and the output buffer.
//!
//! The document holds the message header, the submission's metadata, the
//! form as a typed tree of fields, and the attachments:
//!
//! ```text
//! fall @version="1" @produkt @produktversion
//!   nachricht      message header (see crate::meta)
//!   uebermittlung  submission metadata (see crate::meta)
//!   formular       one feld per member of the form
//!     feld @name @zeiger @typ
//!       wert       for typ string, number, boolean
//!       feld*      for typ object (members) and array (elements, named by index)
//!   dokument*      one per attachment (see crate::meta)
//! ```
//!
//! - `name` is the member's key, or the element's index in an array.
//! - `zeiger` is the field's RFC 6901 JSON pointer in the envelope
//!   (`/form/applicant/given_names`, `/form/income_changes/0/kind`), the same
//!   pointer Kurier's error messages and the form schemas use.
//! - `typ` is the JSON type: `string`, `number`, `boolean`, `object`, `array`
//!   or `null`. Strings are written verbatim; numbers in serde_json's shortest
//!   form (`2.50` in the JSON text arrives as `2.5`); booleans as
//!   `true`/`false`. `null`, `{}` and `[]` are empty elements.
//! - Members of an object are written in byte order of their keys, whatever
//!   order the portal sent, so that the document does not depend on how
//!   serde_json was built (its `preserve_order` feature).
//!
//! Adding no meaning to the form is the point: the receiving authority maps
//! fields by pointer, and every service Kurier accepts can be delivered this
//! way. [`Adapter::services`] therefore returns `["*"]`, which the broker reads
//! as "every service".

use serde_json::Value;

use crate::meta;
use crate::xml::{ShortId, XmlWriter, is_xml_text};
use crate::{Adapter, Profile, RenderContext, RenderError, Submission};

/// The adapter's configured name.
pub const NAME: &str = "xfall";

/// Kurier's namespace for xfall documents, used as the default namespace.
pub const NAMESPACE: &str = "urn:xoev-de:kurier:schemata:xfall:1";

/// Renders a submission of any service as an xfall container.
#[derive(Debug, Clone, Copy, Default)]
pub struct Xfall;

/// What this adapter is.
pub static PROFILE: Profile = Profile {
    name: NAME,
    services: &["*"],
    encoding: "UTF-8",
    xsd: "xfall.xsd",
};

impl Adapter for Xfall {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn write(
        &self,
        submission: &Submission<'_>,
        context: &RenderContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let mut w = XmlWriter::new(out, NAME);
        document(&mut w, submission, context)?;
        w.finish().map(drop)
    }
}

/// The JSON type name written into `typ`.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

type W<'o> = XmlWriter<&'o mut Vec<u8>>;

fn document(
    w: &mut W<'_>,
    s: &Submission<'_>,
    context: &RenderContext<'_>,
) -> Result<(), RenderError> {
    let form = s.form.as_object().ok_or_else(|| shape_error("/form"))?;

    w.declaration("UTF-8")?;
    w.start_with(
        "fall",
        &[
            ("xmlns", NAMESPACE),
            ("version", "1"),
            ("produkt", "Kurier"),
            ("produktversion", env!("CARGO_PKG_VERSION")),
        ],
    )?;

    meta::message(w, context)?;
    meta::transmission(w, s)?;

    w.start("formular")?;
    let mut pointer = String::from("/form");
    members(w, form, &mut pointer)?;
    w.end("formular")?;

    for attachment in s.attachments {
        meta::document(w, attachment)?;
    }
    w.end("fall")
}

fn shape_error(pointer: &str) -> RenderError {
    RenderError::UnexpectedShape {
        adapter: NAME,
        pointer: pointer.to_owned(),
    }
}

/// The members of an object, in byte order of their keys. `pointer` is the
/// object's pointer; it is extended per member and restored.
fn members(
    w: &mut W<'_>,
    object: &serde_json::Map<String, Value>,
    pointer: &mut String,
) -> Result<(), RenderError> {
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort_unstable();
    for key in keys {
        let len = pointer.len();
        pointer.push('/');
        for c in key.chars() {
            match c {
                '~' => pointer.push_str("~0"),
                '/' => pointer.push_str("~1"),
                c => pointer.push(c),
            }
        }
        if !is_xml_text(key) {
            return Err(shape_error(&pointer[..len]));
        }
        field(w, key, &object[key.as_str()], pointer)?;
        pointer.truncate(len);
    }
    Ok(())
}

/// One `feld` for `value` at `pointer`.
fn field(
    w: &mut W<'_>,
    name: &str,
    value: &Value,
    pointer: &mut String,
) -> Result<(), RenderError> {
    let attributes = [
        ("name", name),
        ("zeiger", pointer.as_str()),
        ("typ", type_name(value)),
    ];
    let empty = match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => false,
    };
    if empty {
        return w.empty_with("feld", &attributes);
    }
    w.start_with("feld", &attributes)?;
    match value {
        Value::String(s) => {
            if !is_xml_text(s) {
                return Err(shape_error(pointer));
            }
            w.text("wert", s)?;
        }
        Value::Number(n) => w.text("wert", &n.to_string())?,
        Value::Bool(b) => w.boolean("wert", *b)?,
        Value::Object(map) => members(w, map, pointer)?,
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = pointer.len();
                let name = ShortId::number(index as u64);
                pointer.push('/');
                pointer.push_str(name.as_str());
                field(w, name.as_str(), item, pointer)?;
                pointer.truncate(len);
            }
        }
        Value::Null => {}
    }
    w.end("feld")
}
