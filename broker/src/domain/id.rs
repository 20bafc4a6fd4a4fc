//! Ids as types of their own, so one cannot be passed where another is
//! meant: a destination, a portal or a transport's message id where a
//! submission id is meant, or a submission id where a destination is. Pure;
//! touches nothing.
//!
//! - [`SubmissionId`]: the idempotency key from portal to authority
//!   (CONTRACT.md § 1), a UUID.
//! - [`DestinationId`]: a receiving authority's id as the configuration
//!   names it (`[[destinations]] id`).
//!
//! A `SubmissionId` is made at the edge, where text from outside becomes an
//! id: the envelope's `submission_id` (the envelope schema's pattern), the
//! AMQP `message_id`, an operator's argument. Each checks that the text is a
//! UUID. The id keeps the text the portal wrote (it is echoed to the
//! authority and in receipt events byte for byte); an operator's argument
//! is brought to the stored, hyphenated lower-case form.
//!
//! A `DestinationId` is made where a destination's id comes in: the
//! configuration file, the envelope's `destination` (after the envelope
//! schema's pattern), an operator's `--destination` or admin query
//! parameter. The configuration has never asked a shape of an id, only that
//! no two destinations share one, so any text is a destination's id and
//! none is refused here: it names a destination, configured or not (a dead
//! letter `unknown_destination` keeps what the envelope named; a destination
//! removed by a reload keeps its rows). Whether one is configured is the
//! route's question (`pipeline::route`).
//!
//! On the wire and in the database both are the plain strings they were:
//! serde and sqlx see through them (`transparent`), and so does `Debug`, so
//! JSON, columns and log fields are unchanged. Rows read back from the
//! database are trusted as written (`from_stored`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What every id here is besides its own constructors: read as text where
/// text is wanted (SQL binds, headers, metric labels, log fields; maps keyed
/// by the id are looked up by `&str`), written as its text (`Display`),
/// compared with text, and given back as the `String` it holds.
macro_rules! text_id {
    ($id:ident) => {
        impl $id {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $id {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $id {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $id {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $id {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $id {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $id {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }
    };
}

/// A submission's id: a UUID, as text.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(try_from = "String", into = "String")]
#[sqlx(transparent)]
pub struct SubmissionId(String);

impl SubmissionId {
    /// `text` as it was written, if it is a UUID (any form the `uuid`
    /// crate reads: the check the intake has always made).
    pub fn parse(text: &str) -> Option<SubmissionId> {
        uuid::Uuid::parse_str(text)
            .ok()
            .map(|_| SubmissionId(text.to_owned()))
    }

    /// An operator's argument in the stored form (hyphenated, lower case),
    /// if it is a UUID; surrounding white space is ignored.
    pub fn canonical(text: &str) -> Option<SubmissionId> {
        uuid::Uuid::parse_str(text.trim())
            .ok()
            .map(|u| SubmissionId(u.hyphenated().to_string()))
    }

    /// An id as a row holds it. Not checked again: what is stored was
    /// checked where it came in (and a test's row may hold anything).
    pub fn from_stored(text: impl Into<String>) -> SubmissionId {
        SubmissionId(text.into())
    }

    /// A new random (v4) id, for a portal simulator's envelope.
    pub fn random() -> SubmissionId {
        SubmissionId(uuid::Uuid::new_v4().to_string())
    }
}

text_id!(SubmissionId);

/// An id from JSON (an envelope, a request): refused unless it is a UUID.
impl TryFrom<String> for SubmissionId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match uuid::Uuid::parse_str(&text) {
            Ok(_) => Ok(SubmissionId(text)),
            Err(_) => Err("submission_id is not a UUID".to_owned()),
        }
    }
}

/// A destination's id: the id a `[[destinations]]` entry gives a receiving
/// authority, or one that an envelope, an operator or a row names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct DestinationId(String);

impl DestinationId {
    /// A destination's id from text that comes in (the configuration, the
    /// envelope, an operator): taken as written. Nothing is refused, as the
    /// configuration refuses no id on its own (only one used twice).
    pub fn new(text: impl Into<String>) -> DestinationId {
        DestinationId(text.into())
    }

    /// An id as a row holds it; it may name a destination no longer (or
    /// never) configured.
    pub fn from_stored(text: impl Into<String>) -> DestinationId {
        DestinationId(text.into())
    }
}

text_id!(DestinationId);

/// The plain string's `Debug` (with its quotes), as log fields and the
/// configuration's messages printed it before the type existed.
impl fmt::Debug for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An operator's `--destination` argument (clap reads it through this).
impl std::str::FromStr for DestinationId {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(DestinationId::new(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b5e4d0c-6a2f-4b1e-9c3d-2f1e0a9b8c7d";

    #[test]
    fn a_submission_id_is_a_uuid_kept_as_written() {
        let upper = ID.to_uppercase();
        assert_eq!(SubmissionId::parse(&upper).unwrap().as_str(), upper);
        assert!(SubmissionId::parse("sozialamt-koeln").is_none());
        assert!(SubmissionId::parse("").is_none());
        assert_eq!(
            SubmissionId::canonical(&format!(" {upper} "))
                .unwrap()
                .as_str(),
            ID
        );
    }

    #[test]
    fn in_json_it_is_the_plain_string_and_only_a_uuid_is_read() {
        let id = SubmissionId::parse(ID).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{ID}\""));
        let back: SubmissionId = serde_json::from_str(&format!("\"{ID}\"")).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<SubmissionId>("\"Anna Müller\"").is_err());
    }

    #[test]
    fn a_destination_id_is_any_text_the_configuration_accepts_kept_as_written() {
        // The configuration refuses no id on its own; neither does the type.
        for text in ["sozialamt-koeln", "jobcenter.bonn_2", "Sozialamt Köln", ""] {
            assert_eq!(DestinationId::new(text).as_str(), text);
            assert_eq!(DestinationId::new(text), DestinationId::from_stored(text));
        }
        let parsed: DestinationId = "sozialamt-koeln".parse().unwrap();
        assert_eq!(parsed, "sozialamt-koeln");
    }

    #[test]
    fn a_destination_id_is_the_plain_string_in_json_display_and_debug() {
        let id = DestinationId::new("sozialamt-koeln");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"sozialamt-koeln\"");
        let back: DestinationId = serde_json::from_str("\"sozialamt-koeln\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<DestinationId>("42").is_err());
        assert_eq!(id.to_string(), "sozialamt-koeln");
        assert_eq!(format!("{id:?}"), format!("{:?}", "sozialamt-koeln"));
        let by_id: std::collections::HashMap<DestinationId, u8> = [(id.clone(), 1)].into();
        assert_eq!(by_id.get("sozialamt-koeln"), Some(&1));
    }
}
