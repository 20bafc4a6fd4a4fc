//! OAuth 2 client credentials (RFC 6749 § 4.4) against `fit_token_url`:
//! one access token per destination, cached until shortly before it
//! expires, fetched by one attempt while the others wait for it. The client
//! secret is read from `fit_client_secret_file` each time a token is
//! fetched (so a rotated secret is used without a restart) and refused if
//! others may read the file (`crate::secret_file`).
//!
//! Neither the secret nor a token is ever logged or put into an error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use zeroize::Zeroize;

use super::classify::{self, Step};
use super::http::{self, Body};
use crate::queue::decision::{Cause, Outcome};

/// A token is used until this long before its `expires_in` ends.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

pub struct TokenSource {
    url: reqwest::Url,
    client_id: String,
    secret_file: PathBuf,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(url: reqwest::Url, client_id: String, secret_file: PathBuf) -> TokenSource {
        TokenSource {
            url,
            client_id,
            secret_file,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token, or the outcome that stops the attempt.
    pub async fn get(&self, client: &reqwest::Client) -> Result<String, Outcome> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        *cached = None;
        if let Err(problem) = crate::secret_file::check("fit_client_secret_file", &self.secret_file)
        {
            tracing::error!("{problem}; no token requested");
            return Err(Outcome::Unavailable(Cause::Transport));
        }
        let mut secret = match std::fs::read_to_string(&self.secret_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(file = %self.secret_file.display(), error = %e, "cannot read fit_client_secret_file; no token requested");
                return Err(Outcome::Unavailable(Cause::Transport));
            }
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", secret.trim())
            .finish();
        secret.zeroize();
        let answer = http::call(
            client,
            reqwest::Method::POST,
            self.url.clone(),
            None,
            Body::Form(body),
        )
        .await?;
        if !(200..300).contains(&answer.status) {
            tracing::warn!(
                status = answer.status,
                "the token endpoint refused Kurier's client credentials"
            );
            return Err(classify::outcome(
                Step::Token,
                answer.status,
                answer.retry_after,
            ));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let Ok(token) = serde_json::from_slice::<Token>(&answer.body) else {
            tracing::warn!("the token endpoint's answer has no access_token");
            return Err(Outcome::Unavailable(Cause::Transport));
        };
        if token.access_token.is_empty()
            || token.access_token.len() > 16 * 1024
            || reqwest::header::HeaderValue::from_str(&token.access_token).is_err()
        {
            return Err(Outcome::Unavailable(Cause::Transport));
        }
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(60));
        let usable = if lifetime > EXPIRY_MARGIN * 2 {
            lifetime - EXPIRY_MARGIN
        } else {
            lifetime / 2
        };
        *cached = Some((token.access_token.clone(), Instant::now() + usable));
        Ok(token.access_token)
    }

    /// The API said 401: the next call fetches a new token.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}
