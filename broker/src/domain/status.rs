//! How a submission ended, as its receipt says (CONTRACT.md § 3): one of
//! three terminal statuses, written to the database and to receipt events as
//! the contract's stable strings. Pure; touches nothing.

use serde::{Deserialize, Serialize};

/// The terminal status of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The authority took the document.
    Delivered,
    /// The authority refused it (`authority_rejected`).
    Rejected,
    /// Kurier refused it or gave up on it; a dead letter says why.
    DeadLettered,
}

impl ReceiptStatus {
    pub const ALL: [ReceiptStatus; 3] = [
        ReceiptStatus::Delivered,
        ReceiptStatus::Rejected,
        ReceiptStatus::DeadLettered,
    ];

    /// The contract's string, as stored and announced.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Rejected => "rejected",
            ReceiptStatus::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(text: &str) -> Option<ReceiptStatus> {
        ReceiptStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for ReceiptStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ReceiptStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A status read from the database: a row with another text is refused, not
/// guessed at.
impl TryFrom<String> for ReceiptStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        ReceiptStatus::parse(&text).ok_or_else(|| format!("unknown receipt status {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_its_contract_string_in_json_and_back() {
        for status in ReceiptStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(ReceiptStatus::parse(status.as_str()), Some(status));
            assert_eq!(ReceiptStatus::try_from(status.to_string()), Ok(status));
        }
        assert_eq!(
            ["delivered", "rejected", "dead_lettered"],
            ReceiptStatus::ALL.map(ReceiptStatus::as_str)
        );
        assert!(ReceiptStatus::try_from("parked".to_owned()).is_err());
    }
}
