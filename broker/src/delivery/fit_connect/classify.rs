//! What a Submission API (or token endpoint) answer means for the one
//! [`Outcome`] type that [`crate::queue::decision::decide`] turns into
//! retry, park, receipt or dead letter. Success answers of a step are not
//! classified: the attempt goes on to the next step.
//!
//! | answer | step | outcome |
//! |---|---|---|
//! | 200, 202 | `PUT /v1/submissions/{id}` | `Accepted` (reference: the FIT submission id) |
//! | 409 | `PUT` of an attachment or of the submission | `AlreadyAccepted`: the submission was submitted before (a lost answer) |
//! | 401 | any API call | `Unavailable`: the token is dropped, the next attempt gets a new one |
//! | 400, 401, 403 | token endpoint | `Unavailable`: the client credentials are wrong or revoked; an operator fixes them while submissions park |
//! | 408, 425, 429, 5xx with `Retry-After` | any | `Busy` (back-pressure, honours `Retry-After`) |
//! | 500, 502, 503, 504, timeouts, connect/TLS errors | any | `Unavailable` |
//! | other 4xx (e.g. 422 service type not allowed, 404 unknown destination, 413 too large) | any | `Refused` (dead letter `authority_rejected`, status kept) |
//!
//! Problem details (RFC 7807) in answers are untrusted and may quote the
//! request: only the status and `Retry-After` are read.

use std::time::Duration;

use crate::queue::decision::{self, Cause, Outcome};

/// The call of an attempt an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Token,
    Destination,
    Key,
    Create,
    Attachment,
    Submit,
}

/// The outcome of a non-success answer `status` to `step`.
pub fn outcome(step: Step, status: u16, retry_after: Option<Duration>) -> Outcome {
    match (step, status) {
        (Step::Token, 400 | 401 | 403) | (_, 401) => Outcome::Unavailable(Cause::Status(status)),
        (Step::Attachment | Step::Submit, 409) => Outcome::AlreadyAccepted { reference: None },
        (_, 409) => Outcome::Refused { status },
        _ => match decision::classify(status, retry_after, None) {
            // A 2xx that the step does not expect (e.g. 204 to the submit):
            // the API said something else than documented; try again.
            Outcome::Accepted { .. } | Outcome::AlreadyAccepted { .. } => {
                Outcome::Unavailable(Cause::Status(status))
            }
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let ra = Some(Duration::from_secs(3));
        assert_eq!(
            outcome(Step::Create, 503, ra),
            Outcome::Busy {
                status: 503,
                retry_after: ra
            }
        );
        assert_eq!(
            outcome(Step::Submit, 429, None),
            Outcome::Busy {
                status: 429,
                retry_after: None
            }
        );
        assert_eq!(
            outcome(Step::Attachment, 500, None),
            Outcome::Unavailable(Cause::Status(500))
        );
        assert_eq!(
            outcome(Step::Submit, 409, None),
            Outcome::AlreadyAccepted { reference: None }
        );
        assert_eq!(
            outcome(Step::Create, 409, None),
            Outcome::Refused { status: 409 }
        );
        assert_eq!(
            outcome(Step::Create, 422, None),
            Outcome::Refused { status: 422 }
        );
        assert_eq!(
            outcome(Step::Token, 401, None),
            Outcome::Unavailable(Cause::Status(401))
        );
        assert_eq!(
            outcome(Step::Token, 400, None),
            Outcome::Unavailable(Cause::Status(400))
        );
        assert_eq!(
            outcome(Step::Key, 401, None),
            Outcome::Unavailable(Cause::Status(401))
        );
        assert_eq!(
            outcome(Step::Destination, 404, None),
            Outcome::Refused { status: 404 }
        );
        assert_eq!(
            outcome(Step::Submit, 204, None),
            Outcome::Unavailable(Cause::Status(204))
        );
    }
}
