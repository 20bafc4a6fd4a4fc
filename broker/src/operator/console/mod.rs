//! The operator console: server-rendered HTML at `/` of the admin endpoint,
//! no JavaScript. It shows what `kurier status`, `dead-letters list`,
//! `parked list`, `destinations list` and `receipts list` show, with replay
//! and purge buttons for dead letters, retry-now, hold, release and purge for
//! parked submissions, pause and resume for destinations — never a payload
//! (viewing one stays a deliberate, audited CLI/API call). It also finds a
//! submission by its id ([`crate::operator::ops::Ops::lookup`]), draws each
//! destination's last hour as inline SVG charts
//! ([`crate::operator::history`], `chart.rs`), pages the dead-letter and
//! parked lists, and writes every time in the operator's zone (`zone.rs`).
//! Every link and the page after an action keep the search, the filters,
//! the pages, the zone and the automatic refresh (`PageQuery::href`).
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
//! of `pages.rs`, where all the markup is (the charts' SVG is `chart.rs`);
//! sessions and cookies are `session.rs`.
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

use crate::domain::id::DestinationId;
use crate::operator::admin::tokens::TokenDigest;
use crate::operator::admin::{self, AdminState, Role};
use crate::operator::ops::{Actor, DeadLetterFilter, OpsError, ParkedAction, ParkedResult};
use session::{SignedIn, clear_cookie, session_cookie_of, signed_in, with_cookie};
use zone::Zone;

mod chart;
mod pages;
mod session;
mod zone;

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

/// Rows per page of the dead-letter and parked lists.
const PAGE: i64 = 50;

/// What the console's address says: the search, the filters, the pages of
/// the lists, the time zone and the refresh. Every link of the page is
/// built from it ([`PageQuery::href`]), so paging, refreshing and changing
/// one filter keep all the others.
#[derive(Deserialize, Default, Clone)]
struct PageQuery {
    /// A submission id to look up.
    q: Option<String>,
    reason: Option<String>,
    /// Filters the dead letters and the parked submissions.
    destination: Option<String>,
    /// How many dead letters (`dl`) and parked submissions (`pk`) the page
    /// skips.
    dl: Option<i64>,
    pk: Option<i64>,
    /// The operator's time zone (IANA name).
    tz: Option<String>,
    /// Reload the page every this many seconds (5 to 3600).
    refresh: Option<u32>,
    msg: Option<String>,
}

/// A query value that says something: blank counts as none.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl PageQuery {
    /// The dead letters to list: an empty field filters nothing. One more
    /// than a page, to know whether there is a next one.
    fn filter(&self) -> DeadLetterFilter {
        DeadLetterFilter {
            reason: given(&self.reason).map(str::to_owned),
            destination: given(&self.destination).map(DestinationId::new),
            since: None,
            limit: Some(PAGE + 1),
            offset: Some(self.dl.unwrap_or(0).max(0)),
        }
    }

    fn refresh(&self) -> Option<u32> {
        self.refresh.filter(|s| *s > 0).map(|s| s.clamp(5, 3600))
    }

    /// `/?…` with this query's search, filters, pages, zone and refresh
    /// (never its message), changed by `change`.
    fn href(&self, change: impl FnOnce(&mut PageQuery)) -> String {
        let mut q = self.clone();
        change(&mut q);
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("q", &q.q),
            ("reason", &q.reason),
            ("destination", &q.destination),
            ("tz", &q.tz),
        ] {
            if let Some(v) = given(value) {
                pairs.push((name, v.to_owned()));
            }
        }
        for (name, value) in [("dl", q.dl), ("pk", q.pk)] {
            if let Some(v) = value.filter(|v| *v > 0) {
                pairs.push((name, v.to_string()));
            }
        }
        if let Some(s) = q.refresh() {
            pairs.push(("refresh", s.to_string()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", url_encode(value)))
            .collect();
        format!("/?{}", query.join("&"))
    }

    /// The links of a list's page at `offset`, of which `more` says whether
    /// a next page exists.
    fn pager(&self, offset: i64, more: bool, set: fn(&mut PageQuery, i64)) -> pages::Pager {
        pages::Pager {
            previous: (offset > 0).then(|| self.href(|q| set(q, (offset - PAGE).max(0)))),
            next: more.then(|| self.href(|q| set(q, offset + PAGE))),
        }
    }
}

/// A page of a list: its rows (at most [`PAGE`]) and whether more follow.
fn page_of<T>(rows: Result<Vec<T>, OpsError>) -> (Result<Vec<T>, OpsError>, bool) {
    match rows {
        Ok(mut rows) => {
            let more = rows.len() as i64 > PAGE;
            rows.truncate(PAGE as usize);
            (Ok(rows), more)
        }
        Err(e) => (Err(e), false),
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
    // The zone asked for now, else the one kept in the cookie, else Berlin.
    let asked = given(&q.tz).and_then(Zone::named);
    let keep = asked
        .as_ref()
        .map(|z| session::zone_cookie_of(&state, z.name()));
    let zone = asked
        .or_else(|| session::zone_cookie(&headers).and_then(|name| Zone::named(&name)))
        .unwrap_or_else(Zone::default_zone);
    let search = match given(&q.q) {
        Some(id) => Some(pages::Search {
            id: id.to_owned(),
            found: ops.lookup(id).await,
        }),
        None => None,
    };
    let (dl, pk) = (q.dl.unwrap_or(0).max(0), q.pk.unwrap_or(0).max(0));
    let (dead_letters, more_dead) = page_of(ops.dead_letters(&q.filter()).await);
    let parked_filter = given(&q.destination).map(DestinationId::new);
    let (parked, more_parked) =
        page_of(ops.parked_each(parked_filter.as_ref(), PAGE + 1, pk).await);
    let refresh = q.href(|_| ());
    let links = pages::Links {
        back: refresh.trim_start_matches("/?").to_owned(),
        refresh,
        auto_refresh: match q.refresh() {
            Some(_) => q.href(|q| q.refresh = None),
            None => q.href(|q| q.refresh = Some(30)),
        },
        dead_letters: q.pager(dl, more_dead, |q, n| q.dl = Some(n)),
        parked: q.pager(pk, more_parked, |q, n| q.pk = Some(n)),
    };
    let response = pages::console(pages::Console {
        csrf: operator.may(Role::Operate).then_some(csrf),
        roles: operator.roles().join(", "),
        operator: operator.name,
        pauses: ops.destinations().await.unwrap_or_default(),
        status: admin::live_status(&state).await,
        hour: ops.last_hour().await,
        search,
        dead_letters,
        dead_from: dl,
        reason: q.reason.clone().unwrap_or_default(),
        destination: q.destination.clone().unwrap_or_default(),
        msg: q.msg.clone(),
        backlog: ops.parked(None).await,
        parked,
        parked_from: pk,
        receipts: ops.receipts(None, 50).await,
        refresh: q.refresh(),
        links,
        zone,
    });
    match keep {
        Some(cookie) => with_cookie(response, &cookie),
        None => response,
    }
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
    /// The query of the page the button was on ([`pages::Links::back`]).
    #[serde(default)]
    back: String,
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

/// Back to the console page the action was sent from (`back`: its query),
/// with what the action did (or why it failed) as its message. The query
/// is read into a [`PageQuery`] and written anew, so only the console's
/// own parameters go into the redirect.
fn back(from: &str, done: Result<String, OpsError>) -> Response {
    let msg = done.unwrap_or_else(|e| e.to_string());
    let page = format!("/?{from}")
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| Query::<PageQuery>::try_from_uri(&uri).ok())
        .map(|Query(q)| q)
        .unwrap_or_default()
        .href(|_| ());
    let separator = if page.ends_with('?') { "" } else { "&" };
    Redirect::to(&format!("{page}{separator}msg={}", url_encode(&msg))).into_response()
}

async fn replay(State(state): State<Arc<AdminState>>, acting: Acting) -> Response {
    let Acting { actor, form } = acting;
    let done = state.ops.replay_ids(slice::from_ref(&form.id), &actor, WHY);
    back(
        &form.back,
        done.await.map(|results| {
            let messages: Vec<_> = results.into_iter().map(|r| r.message).collect();
            messages.join("; ")
        }),
    )
}

async fn purge(State(state): State<Arc<AdminState>>, acting: Acting) -> Response {
    let Acting { actor, form } = acting;
    let done = state.ops.purge_ids(slice::from_ref(&form.id), &actor, WHY);
    back(
        &form.back,
        done.await.map(|r| {
            let (dead_letters, submissions) = (r.dead_letter_ids.len(), r.submission_ids.join(" "));
            format!("{dead_letters} dead letters purged: {submissions}")
        }),
    )
}

/// The parked-queue and destination buttons: retry now, hold, release or
/// purge one parked submission (`id`), or retry all of a destination, pause
/// or resume it (`id` is then the destination).
async fn act(State(state): State<Arc<AdminState>>, acting: Acting) -> Response {
    let Acting { actor, form } = acting;
    let (ops, id) = (&state.ops, form.id.as_str());
    let messages = |results: Vec<ParkedResult>| results.into_iter().map(|r| r.message).collect();
    let destination = || DestinationId::new(id);
    let done: Result<Vec<String>, _> = match form.action.as_str() {
        "pause" => ops
            .pause(&destination(), &actor, WHY)
            .await
            .map(|r| vec![r.message]),
        "resume" => ops
            .resume(&destination(), &actor, WHY)
            .await
            .map(|r| vec![r.message]),
        "retry-destination" => ops
            .retry_destination(&destination(), &actor, WHY)
            .await
            .map(messages),
        verb => match ParkedAction::from_verb(verb) {
            Some(act) => ops
                .parked_act(act, slice::from_ref(&form.id), &actor, WHY)
                .await
                .map(messages),
            None => return back(&form.back, Ok(format!("unknown action {verb:?}"))),
        },
    };
    back(
        &form.back,
        done.map(|m| {
            if m.is_empty() {
                "nothing parked; nothing changed".to_owned()
            } else {
                m.join("; ")
            }
        }),
    )
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

    fn query(text: &str) -> PageQuery {
        let uri: axum::http::Uri = format!("/?{text}").parse().expect("a test query");
        Query::<PageQuery>::try_from_uri(&uri)
            .expect("a page query")
            .0
    }

    #[test]
    fn links_keep_the_search_filters_zone_and_refresh_but_not_the_message() {
        let q = query(
            "q=abc&reason=authority_rejected&destination=a%20b&dl=50&tz=UTC&refresh=1&msg=done",
        );
        assert_eq!(
            q.href(|_| ()),
            "/?q=abc&reason=authority_rejected&destination=a%20b&tz=UTC&dl=50&refresh=5"
        );
        let pager = q.pager(50, false, |q, n| q.dl = Some(n));
        assert_eq!(
            pager.previous.as_deref(),
            Some("/?q=abc&reason=authority_rejected&destination=a%20b&tz=UTC&refresh=5")
        );
        assert_eq!(pager.next, None);
        let pager = query("reason=").pager(0, true, |q, n| q.pk = Some(n));
        assert_eq!(
            (pager.previous, pager.next.as_deref()),
            (None, Some("/?pk=50"))
        );
    }

    #[test]
    fn after_an_action_the_page_is_the_one_it_was_sent_from() {
        let to = |from: &str| {
            let response = back(from, Ok("1 replayed".into()));
            response.headers()[axum::http::header::LOCATION]
                .to_str()
                .expect("an ASCII location")
                .to_owned()
        };
        assert_eq!(to(""), "/?msg=1%20replayed");
        assert_eq!(
            to("reason=authority_rejected&dl=50"),
            "/?reason=authority_rejected&dl=50&msg=1%20replayed"
        );
        // Only the console's own parameters, written anew.
        assert_eq!(
            to("next=https://elsewhere&reason=a%0D%0ASet-Cookie:x"),
            "/?reason=a%0D%0ASet-Cookie%3Ax&msg=1%20replayed"
        );
        assert_eq!(to("dl=-3&%%%"), "/?msg=1%20replayed");
    }
}
