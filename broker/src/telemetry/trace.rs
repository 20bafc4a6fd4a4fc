//! W3C trace context: a portal that traces its submissions sets the AMQP
//! header `traceparent`; Kurier passes it on, unchanged, as the HTTP header
//! of the same name on each delivery attempt, so the portal's trace reaches
//! the authority. Only a well-formed value (W3C Trace Context level 1,
//! version `00`) is passed on; anything else is dropped without a word (it is
//! the portal's header, and its value is never logged). Pure; touches
//! nothing.

use lapin::types::AMQPValue;

/// The `traceparent` header of an AMQP message, if present and well formed.
pub fn traceparent(properties: &lapin::BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    let value = match headers.inner().get("traceparent")? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok()?,
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        _ => return None,
    };
    well_formed(&value).then_some(value)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower case,
/// neither id all zeros.
pub fn well_formed(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace_id, parent_id, flags] = parts.as_slice() else {
        return false;
    };
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let not_zero = |s: &str| s.bytes().any(|b| b != b'0');
    *version == "00"
        && hex(trace_id, 32)
        && not_zero(trace_id)
        && hex(parent_id, 16)
        && not_zero(parent_id)
        && hex(flags, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldTable, LongString};

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_header(value: AMQPValue) -> lapin::BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("traceparent".into(), value);
        lapin::BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn a_well_formed_traceparent_is_passed_on() {
        let p = with_header(AMQPValue::LongString(LongString::from(GOOD)));
        assert_eq!(traceparent(&p).as_deref(), Some(GOOD));
    }

    #[test]
    fn anything_else_is_dropped() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx: y",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
            let p = with_header(AMQPValue::LongString(LongString::from(bad)));
            assert_eq!(traceparent(&p), None, "{bad:?}");
        }
        assert_eq!(traceparent(&lapin::BasicProperties::default()), None);
        assert_eq!(traceparent(&with_header(AMQPValue::LongUInt(7))), None);
    }
}
