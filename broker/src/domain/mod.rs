//! The domain's vocabulary, shared by every room and depending on none:
//! reason codes (CONTRACT.md § 4), submission and destination ids,
//! timestamps, digests.
//!
//! - [`reason`]: why a submission was refused or dead-lettered, as the
//!   contract's stable codes with a detail that never carries a value.
//! - [`status`]: how a receipt says a submission ended.
//! - [`id`]: submission and destination ids, made where they come in.
//! - [`time`]: the instant type of tables, receipts and events, and its one
//!   written form.
//! - [`digest`]: SHA-256 and hex.
//!
//! Pure: no I/O, no configuration, no other module of the crate.

pub mod digest;
pub mod id;
pub mod reason;
pub mod status;
pub mod time;
