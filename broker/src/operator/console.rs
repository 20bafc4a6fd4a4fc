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
//! Touches what [`crate::operator::ops::Ops`] touches.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::operator::admin::tokens::TokenDigest;
use crate::operator::admin::{AdminState, Operator, Role};
use crate::operator::ops::{Actor, DeadLetterFilter, ParkedAction, ParkedResult};

const COOKIE: &str = "kurier_session";
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

struct Session {
    /// The SHA-256 of the token signed in with, looked up on every request.
    token: TokenDigest,
    csrf: String,
    expires: Instant,
}

/// Logged-in console sessions, by random id.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A poisoned lock only means a panic elsewhere; the map stays usable.
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, token: TokenDigest) -> Option<String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(
            id.clone(),
            Session {
                token,
                csrf,
                expires: now + SESSION_LIFETIME,
            },
        );
        Some(id)
    }

    /// The token digest and CSRF token of the request's session.
    fn of(&self, headers: &HeaderMap) -> Option<(TokenDigest, String)> {
        let id = session_cookie(headers)?;
        let map = self.lock();
        let s = map.get(&id).filter(|s| s.expires > Instant::now())?;
        Some((s.token.clone(), s.csrf.clone()))
    }

    fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.lock().remove(&id);
        }
    }
}

/// Who a console request comes from.
enum SignedIn {
    /// A live session whose token is still in the token file.
    Yes(Operator, String),
    /// No session (or an expired one).
    No,
    /// The session's token is no longer in the token file: the session is
    /// ended.
    Revoked,
}

fn signed_in(state: &AdminState, headers: &HeaderMap) -> SignedIn {
    let Some((token, csrf)) = state.sessions.of(headers) else {
        return SignedIn::No;
    };
    match state.tokens.by_digest(&token) {
        Some(operator) => SignedIn::Yes(operator, csrf),
        None => {
            state.sessions.remove(headers);
            tracing::info!("console session ended: its token was revoked");
            SignedIn::Revoked
        }
    }
}

/// The login page for a request without a (valid) session.
fn signed_out(state: &AdminState, how: SignedIn) -> Response {
    match how {
        SignedIn::Revoked => with_cookie(
            login_page(
                Some(
                    "Your token is no longer valid (removed from the token file); the session has ended.",
                ),
                StatusCode::UNAUTHORIZED,
            ),
            &clear_cookie(state),
        ),
        _ => login_page(Some("Please sign in again."), StatusCode::FORBIDDEN),
    }
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(crate::domain::digest::hex(&bytes))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

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

async fn page(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (operator, csrf) = match signed_in(&state, &headers) {
        SignedIn::Yes(operator, csrf) => (operator, csrf),
        SignedIn::No => return login_page(None, StatusCode::OK),
        revoked => return signed_out(&state, revoked),
    };
    // Without `operate` the page shows no buttons (the actions would be 403).
    let csrf = operator.may(Role::Operate).then_some(csrf);
    let filter = DeadLetterFilter {
        reason: q.reason.clone().filter(|r| !r.is_empty()),
        destination: q.destination.clone().filter(|d| !d.is_empty()),
        since: None,
        limit: Some(200),
    };
    let mut html = String::new();
    head(&mut html, "Kurier — operator console");
    let _ = write!(
        html,
        "<header><h1>Kurier</h1><span>signed in as <b>{}</b> ({})</span>\
         <form method=post action=/logout><button>Sign out</button></form></header>",
        esc(&operator.name),
        esc(&operator.roles().join(", "))
    );
    if let Some(msg) = &q.msg {
        let _ = write!(html, "<p class=msg role=status>{}</p>", esc(msg));
    }
    // Pauses are a second look-up; without them the table still shows.
    let pauses = state.ops.destinations().await.unwrap_or_default();
    match crate::operator::admin::live_status(&state).await {
        Ok(status) => {
            html.push_str("<h2>Destinations</h2><table id=status><tr><th>destination</th><th>circuit</th><th>paused</th><th>parked</th><th>next attempt</th><th>last cause</th><th>dead letters</th><th></th></tr>");
            for d in &status.destinations {
                let circuit = d.circuit.as_deref().unwrap_or("-");
                let pause = pauses.iter().find(|p| p.destination == d.destination);
                let paused = pause.and_then(|p| {
                    p.paused.then(|| {
                        format!(
                            "since {} by {}{}",
                            p.paused_at.as_deref().unwrap_or(""),
                            p.paused_by.as_deref().unwrap_or(""),
                            p.pause_reason
                                .as_deref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        )
                    })
                });
                let _ = write!(
                    html,
                    "<tr data-destination=\"{dest}\"><td>{dest}</td><td class=\"{}\">{}</td><td class=paused>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                    if crate::operator::admin::circuit_is_open(circuit) && circuit != "-" {
                        "bad"
                    } else {
                        "ok"
                    },
                    esc(circuit),
                    esc(paused.as_deref().unwrap_or("no")),
                    d.parked,
                    esc(d.next_attempt_at.as_deref().unwrap_or("")),
                    esc(d.last_cause.as_deref().unwrap_or("")),
                    d.dead_letters,
                    dest = esc(&d.destination),
                );
                if d.configured || paused.is_some() {
                    let verb = if paused.is_some() { "resume" } else { "pause" };
                    action_button(&mut html, csrf.as_deref(), &d.destination, verb);
                }
                if d.parked > 0 {
                    action_button(
                        &mut html,
                        csrf.as_deref(),
                        &d.destination,
                        "retry-destination",
                    );
                }
                html.push_str("</td></tr>");
            }
            html.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(
                html,
                "<p class=bad>status unavailable: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    let _ = write!(
        html,
        "<h2>Dead letters</h2><form method=get action=/ class=filters>\
         <label>reason <input name=reason value=\"{}\"></label> \
         <label>destination <input name=destination value=\"{}\"></label> \
         <button>Filter</button></form>",
        esc(q.reason.as_deref().unwrap_or("")),
        esc(q.destination.as_deref().unwrap_or(""))
    );
    match state.ops.dead_letters(&filter).await {
        Ok(rows) if rows.is_empty() => html.push_str("<p>No dead letters.</p>"),
        Ok(rows) => {
            html.push_str("<table id=dead-letters><tr><th>#</th><th>submission</th><th>reason</th><th>detail</th><th>destination</th><th>at</th><th></th></tr>");
            for d in rows {
                let sid = d.submission_id.clone().unwrap_or_default();
                let _ = write!(
                    html,
                    "<tr data-submission=\"{sid}\"><td>{}</td><td>{sid}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                    d.id,
                    esc(&d.reason_code),
                    esc(&d.reason_detail),
                    esc(d.destination.as_deref().unwrap_or("")),
                    esc(&d.created_at),
                    sid = esc(&sid)
                );
                let Some(csrf) = &csrf else {
                    html.push_str("</td></tr>");
                    continue;
                };
                if d.payload_kept {
                    let _ = write!(
                        html,
                        "<form method=post action=/console/replay><input type=hidden name=csrf value=\"{csrf}\">\
                         <input type=hidden name=id value=\"{}\"><button name=action value=replay>Replay</button></form>",
                        d.id
                    );
                }
                let _ = write!(
                    html,
                    "<form method=post action=/console/purge><input type=hidden name=csrf value=\"{csrf}\">\
                     <input type=hidden name=id value=\"{}\"><button name=action value=purge>Purge</button></form></td></tr>",
                    d.id
                );
            }
            html.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(html, "<p class=bad>{}</p>", esc(&e.to_string()));
        }
    }
    match state.ops.parked(None).await {
        Ok(backlog) => {
            html.push_str("<h2>Parked</h2><table id=parked><tr><th>destination</th><th>parked</th><th>held</th><th>next attempt</th><th>oldest received</th><th>last cause</th></tr>");
            for b in backlog {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&b.destination),
                    b.count,
                    b.held,
                    esc(&b.next_attempt_at),
                    esc(&b.oldest_received_at),
                    esc(&b.last_cause)
                );
            }
            html.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(html, "<p class=bad>{}</p>", esc(&e.to_string()));
        }
    }
    match state.ops.parked_each(None, 200).await {
        Ok(rows) if rows.is_empty() => {}
        Ok(rows) => {
            html.push_str("<table id=parked-submissions><tr><th>submission</th><th>destination</th><th>attempts</th><th>next attempt</th><th>held</th><th>last cause</th><th></th></tr>");
            for p in rows {
                let _ = write!(
                    html,
                    "<tr data-submission=\"{sid}\"><td>{sid}</td><td>{}</td><td>{}</td><td>{}</td><td class=held>{}</td><td>{}</td><td>",
                    esc(&p.destination),
                    p.attempts,
                    esc(&p.next_attempt_at),
                    if p.held { "held" } else { "no" },
                    esc(&p.last_cause),
                    sid = esc(&p.submission_id)
                );
                let hold = if p.held { "release" } else { "hold" };
                for verb in ["retry-now", hold, "purge"] {
                    action_button(&mut html, csrf.as_deref(), &p.submission_id, verb);
                }
                html.push_str("</td></tr>");
            }
            html.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(html, "<p class=bad>{}</p>", esc(&e.to_string()));
        }
    }
    match state.ops.receipts(None, 50).await {
        Ok(receipts) => {
            html.push_str("<h2>Recent receipts</h2><table id=receipts><tr><th>submission</th><th>status</th><th>destination</th><th>attempts</th><th>reference</th><th>reason</th><th>completed</th></tr>");
            for r in receipts {
                let _ = write!(
                    html,
                    "<tr data-submission=\"{}\"><td>{}</td><td class=status>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.submission_id),
                    esc(&r.submission_id),
                    esc(r.status.as_str()),
                    esc(r.destination.as_deref().unwrap_or("")),
                    r.attempts,
                    esc(r.reference.as_deref().unwrap_or("")),
                    esc(r.reason_code.as_deref().unwrap_or("")),
                    esc(&r.completed_at)
                );
            }
            html.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(html, "<p class=bad>{}</p>", esc(&e.to_string()));
        }
    }
    html.push_str("</body></html>");
    no_store(Html(html).into_response())
}

fn head(html: &mut String, title: &str) {
    let _ = write!(
        html,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:1.5em}}header{{display:flex;gap:1em;align-items:center}}\
         table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left}}\
         td form{{display:inline}}.bad{{color:#b00}}.ok{{color:#070}}.msg{{background:#eef;padding:.5em}}</style></head><body>",
        esc(title)
    );
}

fn login_page(error: Option<&str>, code: StatusCode) -> Response {
    let mut html = String::new();
    head(&mut html, "Kurier — sign in");
    html.push_str("<h1>Kurier operator console</h1>");
    if let Some(e) = error {
        let _ = write!(html, "<p class=bad role=alert>{}</p>", esc(e));
    }
    html.push_str(
        "<form method=post action=/login><label>Operator token \
         <input type=password name=token autocomplete=off autofocus></label> \
         <button>Sign in</button></form></body></html>",
    );
    no_store((code, Html(html)).into_response())
}

fn no_store(mut response: Response) -> Response {
    if let Ok(v) = "no-store".parse() {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// The session cookie's attributes: never readable by scripts, never sent
/// cross-site, and over TLS never sent in the clear.
fn cookie_attributes(state: &AdminState) -> &'static str {
    if state.tls {
        "HttpOnly; Secure; SameSite=Strict; Path=/"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

fn clear_cookie(state: &AdminState) -> String {
    format!("{COOKIE}=; {}; Max-Age=0", cookie_attributes(state))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn login(
    State(state): State<Arc<AdminState>>,
    extensions: axum::http::Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = crate::operator::admin::client_ip(&extensions);
    if let Err(seconds) = state.throttle.check(client) {
        tracing::warn!(client = %client, "console: too many failed logins; refusing for {seconds} s");
        let page = login_page(
            Some(&format!(
                "Too many failed sign-ins. Try again in {seconds} seconds."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        return crate::operator::admin::too_many(seconds, page);
    }
    let token = form.token.trim();
    let Some(operator) = state.tokens.operator(token) else {
        state.throttle.failed(client);
        tracing::warn!(client = %client, "console: failed login");
        return login_page(
            Some("Unknown token. Use a token of [admin] token_file."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let Some(id) = state.sessions.create(TokenDigest::of(token)) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    tracing::info!(operator = %operator.name, client = %client, "console login");
    let cookie = format!(
        "{COOKIE}={id}; {}; Max-Age={}",
        cookie_attributes(&state),
        SESSION_LIFETIME.as_secs()
    );
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

/// A one-button form that posts `id` and `action` to [`act`] with the
/// session's CSRF token.
fn action_button(html: &mut String, csrf: Option<&str>, id: &str, action: &str) {
    let Some(csrf) = csrf else {
        return;
    };
    let label = match action {
        "retry-now" => "Retry now",
        "retry-destination" => "Retry all now",
        "hold" => "Hold",
        "release" => "Release",
        "purge" => "Purge",
        "pause" => "Pause",
        "resume" => "Resume",
        other => other,
    };
    let _ = write!(
        html,
        "<form method=post action=/console/act><input type=hidden name=csrf value=\"{}\">\
         <input type=hidden name=id value=\"{}\"><button name=action value={action}>{label}</button></form>",
        esc(csrf),
        esc(id)
    );
}

/// The operator of a state-changing form: a live session whose token is
/// still valid, the session's CSRF token, and the role `operate`.
fn operator_of(
    state: &AdminState,
    headers: &HeaderMap,
    form: &ActionForm,
) -> Result<Actor, Box<Response>> {
    let (operator, csrf) = match signed_in(state, headers) {
        SignedIn::Yes(operator, csrf) => (operator, csrf),
        other => return Err(Box::new(signed_out(state, other))),
    };
    if aws_lc_rs::constant_time::verify_slices_are_equal(csrf.as_bytes(), form.csrf.as_bytes())
        .is_err()
    {
        return Err(Box::new(login_page(
            Some("Please sign in again."),
            StatusCode::FORBIDDEN,
        )));
    }
    if !operator.may(Role::Operate) {
        let mut page = String::new();
        head(&mut page, "Kurier — not allowed");
        let _ = write!(
            page,
            "<p class=bad role=alert>{}</p><p><a href=/>back</a></p></body></html>",
            esc(&operator.lacks(Role::Operate))
        );
        return Err(Box::new(no_store(
            (StatusCode::FORBIDDEN, Html(page)).into_response(),
        )));
    }
    Ok(Actor(operator.name))
}

fn back(msg: &str) -> Response {
    let query: String = url_encode(msg);
    Redirect::to(&format!("/?msg={query}")).into_response()
}

async fn replay(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let actor = match operator_of(&state, &headers, &form) {
        Ok(actor) => actor,
        Err(refused) => return *refused,
    };
    match state
        .ops
        .replay_ids(std::slice::from_ref(&form.id), &actor, Some("console"))
        .await
    {
        Ok(results) => back(
            &results
                .iter()
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => back(&e.to_string()),
    }
}

async fn purge(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let actor = match operator_of(&state, &headers, &form) {
        Ok(actor) => actor,
        Err(refused) => return *refused,
    };
    match state
        .ops
        .purge_ids(std::slice::from_ref(&form.id), &actor, Some("console"))
        .await
    {
        Ok(r) => back(&format!(
            "{} dead letters purged: {}",
            r.dead_letter_ids.len(),
            r.submission_ids.join(" ")
        )),
        Err(e) => back(&e.to_string()),
    }
}

/// The parked-queue and destination buttons: retry now, hold, release or
/// purge one parked submission (`id`), or retry all of a destination, pause
/// or resume it (`id` is then the destination).
async fn act(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let actor = match operator_of(&state, &headers, &form) {
        Ok(actor) => actor,
        Err(refused) => return *refused,
    };
    let (ops, id, why) = (&state.ops, form.id.as_str(), Some("console"));
    let messages = |results: Vec<ParkedResult>| results.into_iter().map(|r| r.message).collect();
    let done: Result<Vec<String>, _> = match form.action.as_str() {
        "pause" => ops.pause(id, &actor, why).await.map(|r| vec![r.message]),
        "resume" => ops.resume(id, &actor, why).await.map(|r| vec![r.message]),
        "retry-destination" => ops.retry_destination(id, &actor, why).await.map(messages),
        verb => match ParkedAction::from_verb(verb) {
            Some(act) => ops
                .parked_act(act, std::slice::from_ref(&form.id), &actor, why)
                .await
                .map(messages),
            None => return back(&format!("unknown action {verb:?}")),
        },
    };
    match done {
        Ok(m) if m.is_empty() => back("nothing parked; nothing changed"),
        Ok(m) => back(&m.join("; ")),
        Err(e) => back(&e.to_string()),
    }
}

/// HTML-escape text for element content and quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
