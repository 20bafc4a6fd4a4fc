//! One HTTP exchange with the Submission API or the token endpoint: the
//! answer's status, `Retry-After` and the first bytes of its body, or the
//! outcome of a request that got no answer.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::queue::decision::{self, Outcome};

/// How much of an answer is read: ids, keys, event logs.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

pub enum Body {
    None,
    Json(serde_json::Value),
    /// A JWE compact serialisation (`application/jose`).
    Jose(String),
    /// `application/x-www-form-urlencoded`.
    Form(String),
}

pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    token: Option<&str>,
    body: Body,
) -> Result<Answer, Outcome> {
    let mut builder = client.request(method, url);
    if let Some(token) = token {
        let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
            return Err(Outcome::Unavailable(decision::Cause::Transport));
        };
        builder = builder.header(AUTHORIZATION, value);
    }
    builder = match body {
        Body::None => builder,
        Body::Json(v) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(v.to_string()),
        Body::Jose(t) => builder.header(CONTENT_TYPE, "application/jose").body(t),
        Body::Form(f) => builder
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(f),
    };
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) => return Err(Outcome::Unavailable(crate::delivery::transport_cause(&e))),
    };
    let status = response.status().as_u16();
    let retry_after = crate::delivery::retry_after(response.headers());
    let (body, broken) = crate::delivery::read_limited(response, MAX_ANSWER_BYTES).await;
    // The answer broke off: what it said is unknown.
    if let Some(e) = broken {
        return Err(Outcome::Unavailable(crate::delivery::transport_cause(&e)));
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}
