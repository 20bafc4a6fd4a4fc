//! FIT-Connect transport (`transport = "fit-connect"`, CONTRACT.md § 6):
//! delivery through the FIT-Connect Submission API v1 with end-to-end
//! encryption, as online services under the OZG reach authorities. The
//! Submission API only ever holds ciphertext: the data, the metadata and
//! every attachment are JWEs for the destination's own key.
//!
//! Same inner shape as every transport: what the user writes is in
//! [`crate::config::DestinationConfig`] (`fit_token_url`,
//! `fit_submission_api`, `fit_destination_id`, …) and checked by
//! `crate::config::fit_connect`; [`request`] builds the bodies (announcement, metadata,
//! submit); [`client`] does the I/O of one attempt ([`token`] for OAuth 2,
//! [`key`] for the destination's encryption key, [`http`] for one call);
//! [`classify`] turns answers into the one
//! [`crate::queue::decision::Outcome`] type, so retries, parking, circuits
//! and receipts work as for `https`. [`jose`] is the JWE/JWS code on
//! aws-lc-rs. [`events`] reads the authority's later answer
//! (`accept-submission`, `reject-submission`) from the case's event log.
//!
//! [`crate::delivery::Deliverer`] dispatches to [`FitConnect`] when the
//! destination's transport is `fit-connect`.

pub mod classify;
pub mod client;

pub mod events;
pub mod http;
pub mod jose;
pub mod key;
pub mod request;
pub mod token;

pub use client::{FitConnect, TRANSPORT};
pub use events::{Awaiting, EventError, EventReader};
