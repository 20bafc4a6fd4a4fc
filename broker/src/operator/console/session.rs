//! Console sessions: the random session id in an `HttpOnly; SameSite=Strict`
//! cookie, the SHA-256 of the token signed in with and the CSRF token behind
//! it, kept in memory for at most 8 hours.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use axum::response::Response;

use crate::operator::admin::tokens::TokenDigest;
use crate::operator::admin::{AdminState, Operator};

const COOKIE: &str = "kurier_session";
/// The operator's time zone ([`super::zone`]): a preference, not a secret.
const ZONE_COOKIE: &str = "kurier_tz";
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

    /// A new session for `token`; its id, or `None` without randomness.
    pub(super) fn create(&self, token: TokenDigest) -> Option<String> {
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

    pub(super) fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.lock().remove(&id);
        }
    }
}

/// Who a console request comes from.
pub(super) enum SignedIn {
    /// A live session whose token is still in the token file, and its CSRF
    /// token.
    Yes(Operator, String),
    /// No session (or an expired one).
    No,
    /// The session's token is no longer in the token file: the session is
    /// ended.
    Revoked,
}

pub(super) fn signed_in(state: &AdminState, headers: &HeaderMap) -> SignedIn {
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

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(crate::domain::digest::hex(&bytes))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The time zone the operator picked last, as they wrote it.
pub(super) fn zone_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, ZONE_COOKIE)
}

/// The cookie that keeps the time zone `name` (checked by
/// [`super::zone::Zone::named`]: no `;`, no space) for a year.
pub(super) fn zone_cookie_of(state: &AdminState, name: &str) -> String {
    format!(
        "{ZONE_COOKIE}={name}; {}; Max-Age={}",
        cookie_attributes(state),
        365 * 24 * 3600
    )
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
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

/// The cookie that carries session `id` for its lifetime.
pub(super) fn session_cookie_of(state: &AdminState, id: &str) -> String {
    format!(
        "{COOKIE}={id}; {}; Max-Age={}",
        cookie_attributes(state),
        SESSION_LIFETIME.as_secs()
    )
}

/// The cookie that makes the browser forget its session.
pub(super) fn clear_cookie(state: &AdminState) -> String {
    format!("{COOKIE}=; {}; Max-Age=0", cookie_attributes(state))
}

pub(super) fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}
