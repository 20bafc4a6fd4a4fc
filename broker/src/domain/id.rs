//! Submission ids: the idempotency key from portal to authority
//! (CONTRACT.md § 1), a UUID, as a type of its own so a destination, a
//! portal or a transport's message id cannot be passed where a submission
//! id is meant. Pure; touches nothing.
//!
//! A `SubmissionId` is made at the edge, where text from outside becomes an
//! id: the envelope's `submission_id` (the envelope schema's pattern), the
//! AMQP `message_id`, an operator's argument. Each checks that the text is a
//! UUID. The id keeps the text the portal wrote (it is echoed to the
//! authority and in receipt events byte for byte); an operator's argument
//! is brought to the stored, hyphenated lower-case form.
//!
//! On the wire and in the database it is the plain string it was: serde and
//! sqlx see through it (`transparent`), so JSON and columns are unchanged.
//! Rows read back from the database are trusted as written.

use std::fmt;

use serde::{Deserialize, Serialize};

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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read as text where text is wanted (SQL binds, headers, log fields).
impl std::ops::Deref for SubmissionId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SubmissionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SubmissionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for SubmissionId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for SubmissionId {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for SubmissionId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

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

impl From<SubmissionId> for String {
    fn from(id: SubmissionId) -> String {
        id.0
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
}
