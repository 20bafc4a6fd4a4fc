//! The operator console: server-rendered HTML at `/` of the admin endpoint,
//! no JavaScript. It shows what `kurier status`, `dead-letters list`,
//! `parked list`, `destinations list` and `receipts list` show, with replay
//! and purge buttons for dead letters, retry-now, hold, release and purge for
//! parked submissions, pause and resume for destinations — never a payload
//! (viewing one stays a deliberate, audited CLI/API call).
//!
//! Login takes an operator token ([`crate::operator::admin::Tokens`]) and sets an
//! `HttpOnly; SameSite=Strict` cookie (`Secure` as well when the console is
//! served over TLS) with a random session id; the token itself never goes
//! back to the browser, the session keeps only its SHA-256. Every request
//! looks that digest up in the token file again, so a session ends the
//! moment its token is removed, and its roles follow the file: the buttons
//! that change something need `operate`. Every form that changes something
//! carries the session's CSRF token as well. Failed logins are rate limited
//! per client address and in total (429). Sessions live in memory for at
//! most 8 hours; a restart logs everyone out.
//!
//! The handlers here check the session, fetch through
//! [`crate::operator::ops::Ops`] and hand the rows to one template function
//! of `pages.rs`, where all the markup is; sessions and cookies are
//! `session.rs`.
//!
//! Touches what [`crate::operator::ops::Ops`] touches.

use std::fmt::Write as _;
use std::slice;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::operator::admin::tokens::TokenDigest;
use crate::operator::admin::{self, AdminState, Role};
use crate::operator::ops::{Actor, DeadLetterFilter, OpsError, ParkedAction, ParkedResult};
use session::{SignedIn, clear_cookie, session_cookie_of, signed_in, with_cookie};

mod pages;
mod session;

pub use session::Sessions;

pub fn router() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/console/replay", post(replay))
        .route("/console/purge", post(purge))
        .route("/console/act", post(act))
}

#[derive(Deserialize, Default)]
struct PageQuery {
    reason: Option<String>,
    destination: Option<String>,
    msg: Option<String>,
}

impl PageQuery {
    /// The dead letters to list: an empty field filters nothing.
    fn filter(&self) -> DeadLetterFilter {
        DeadLetterFilter {
            reason: self.reason.clone().filter(|r| !r.is_empty()),
            destination: self.destination.clone().filter(|d| !d.is_empty()),
            since: None,
            limit: Some(200),
            offset: None,
        }
    }
}

async fn page(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (operator, csrf) = match signed_in(&state, &headers) {
        SignedIn::Yes(operator, csrf) => (operator, csrf),
        SignedIn::No => return pages::sign_in(None, StatusCode::OK),
        revoked => return signed_out(&state, revoked),
    };
    let ops = &state.ops;
    pages::console(pages::Console {
        csrf: operator.may(Role::Operate).then_some(csrf),
        roles: operator.roles().join(", "),
        operator: operator.name,
        pauses: ops.destinations().await.unwrap_or_default(),
        status: admin::live_status(&state).await,
        dead_letters: ops.dead_letters(&q.filter()).await,
        reason: q.reason.unwrap_or_default(),
        destination: q.destination.unwrap_or_default(),
        msg: q.msg,
        backlog: ops.parked(None).await,
        parked: ops.parked_each(None, 200, 0).await,
        receipts: ops.receipts(None, 50).await,
    })
}

/// The sign-in page for a request without a (valid) session.
fn signed_out(state: &AdminState, how: SignedIn) -> Response {
    match how {
        SignedIn::Revoked => with_cookie(
            pages::sign_in(
                Some(
                    "Your token is no longer valid (removed from the token file); the session has ended.",
                ),
                StatusCode::UNAUTHORIZED,
            ),
            &clear_cookie(state),
        ),
        _ => pages::sign_in(Some("Please sign in again."), StatusCode::FORBIDDEN),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<Arc<AdminState>>,
    extensions: axum::http::Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = admin::client_ip(&extensions);
    if let Err(seconds) = state.throttle.check(client) {
        tracing::warn!(client = %client, "console: too many failed logins; refusing for {seconds} s");
        let error = format!("Too many failed sign-ins. Try again in {seconds} seconds.");
        let page = pages::sign_in(Some(&error), StatusCode::TOO_MANY_REQUESTS);
        return admin::too_many(seconds, page);
    }
    let token = form.token.trim();
    let Some(operator) = state.tokens.operator(token) else {
        state.throttle.failed(client);
        tracing::warn!(client = %client, "console: failed login");
        return pages::sign_in(
            Some("Unknown token. Use a token of [admin] token_file."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let Some(id) = state.sessions.create(TokenDigest::of(token)) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    tracing::info!(operator = %operator.name, client = %client, "console login");
    let cookie = session_cookie_of(&state, &id);
    with_cookie(Redirect::to("/").into_response(), &cookie)
}

async fn logout(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    state.sessions.remove(&headers);
    with_cookie(Redirect::to("/").into_response(), &clear_cookie(&state))
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    id: String,
    /// The button pressed (`name=action`).
    #[serde(default)]
    action: String,
}

/// A state-changing form and the operator allowed to send it: a live
/// session whose token is still valid, the session's CSRF token, and the
/// role `operate`. Anything less is answered with the sign-in page or 403.
struct Acting {
    actor: Actor,
    form: ActionForm,
}

impl FromRequest<Arc<AdminState>> for Acting {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AdminState>) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let Form(form) = Form::<ActionForm>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let (operator, csrf) = match signed_in(state, &headers) {
            SignedIn::Yes(operator, csrf) => (operator, csrf),
            other => return Err(signed_out(state, other)),
        };
        if aws_lc_rs::constant_time::verify_slices_are_equal(csrf.as_bytes(), form.csrf.as_bytes())
            .is_err()
        {
            return Err(pages::sign_in(
                Some("Please sign in again."),
                StatusCode::FORBIDDEN,
            ));
        }
        if !operator.may(Role::Operate) {
            return Err(pages::not_allowed(&operator.lacks(Role::Operate)));
        }
        let actor = Actor(operator.name);
        Ok(Acting { actor, form })
    }
}

/// The reason written to the audit trail for the console's actions.
const WHY: Option<&str> = Some("console");

/// Back to the console, with what the action did (or why it failed) as its
/// message.
fn back(done: Result<String, OpsError>) -> Response {
    let msg = done.unwrap_or_else(|e| e.to_string());
    Redirect::to(&format!("/?msg={}", url_encode(&msg))).into_response()
}

async fn replay(State(state): State<Arc<AdminState>>, acting: Acting) -> Response {
    let Acting { actor, form } = acting;
    let done = state.ops.replay_ids(slice::from_ref(&form.id), &actor, WHY);
    back(done.await.map(|results| {
        let messages: Vec<_> = results.into_iter().map(|r| r.message).collect();
        messages.join("; ")
    }))
}

async fn purge(State(state): State<Arc<AdminState>>, acting: Acting) -> Response {
    let Acting { actor, form } = acting;
    let done = state.ops.purge_ids(slice::from_ref(&form.id), &actor, WHY);
    back(done.await.map(|r| {
        let (dead_letters, submissions) = (r.dead_letter_ids.len(), r.submission_ids.join(" "));
        format!("{dead_letters} dead letters purged: {submissions}")
    }))
}

/// The parked-queue and destination buttons: retry now, hold, release or
/// purge one parked submission (`id`), or retry all of a destination, pause
/// or resume it (`id` is then the destination).
async fn act(State(state): State<Arc<AdminState>>, acting: Acting) -> Response {
    let Acting { actor, form } = acting;
    let (ops, id) = (&state.ops, form.id.as_str());
    let messages = |results: Vec<ParkedResult>| results.into_iter().map(|r| r.message).collect();
    let done: Result<Vec<String>, _> = match form.action.as_str() {
        "pause" => ops.pause(id, &actor, WHY).await.map(|r| vec![r.message]),
        "resume" => ops.resume(id, &actor, WHY).await.map(|r| vec![r.message]),
        "retry-destination" => ops.retry_destination(id, &actor, WHY).await.map(messages),
        verb => match ParkedAction::from_verb(verb) {
            Some(act) => ops
                .parked_act(act, slice::from_ref(&form.id), &actor, WHY)
                .await
                .map(messages),
            None => return back(Ok(format!("unknown action {verb:?}"))),
        },
    };
    back(done.map(|m| {
        if m.is_empty() {
            "nothing parked; nothing changed".to_owned()
        } else {
            m.join("; ")
        }
    }))
}

fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_percent_encoded_into_the_query() {
        assert_eq!(url_encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
