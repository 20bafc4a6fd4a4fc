//! The admin HTTP endpoint of `kurier run` (CONTRACT.md § 7), on
//! `[admin] listen` (`""` or `"off"`: none):
//!
//! - `GET /healthz` — 200 while the process runs;
//! - `GET /readyz` — 200 when the AMQP consumer is connected and the database
//!   answers `SELECT 1`, else 503 naming what is down;
//! - `GET /metrics` — Prometheus text ([`crate::telemetry::metrics`]);
//! - `/api/…` — what the CLI does, as JSON, through the same [`Ops`];
//! - `/` — the operator console ([`crate::operator::console`]).
//!
//! `/api` and the console carry tokens and (payload view) personal data, so
//! off loopback they are served with TLS only ([`listener`]), unless the
//! operator opts out with `allow_plaintext`. The three probe routes carry
//! neither and may also be served on a plain `probe_listen` of their own.
//!
//! `/api` and the console need an operator: `Authorization: Bearer <token>`
//! with a token from `[admin] token_file` ([`tokens`]); the name is what the
//! audit trail records and the token's roles say what it may do (403
//! otherwise). Without a token file every `/api` request is 401 (secure by
//! default). Wrong tokens are rate limited ([`throttle`]: 429).
//!
//! Touches the database (through [`Ops`]), RabbitMQ (replay), the token file,
//! the listening sockets.

pub mod listener;
pub mod throttle;
pub mod tokens;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

use crate::config::AdminTransport;
use crate::domain::id::DestinationId;
use crate::operator::ops::{Actor, DeadLetterFilter, Ops, OpsError, ParkedAction};
use crate::pipeline::Pipeline;
use crate::queue::circuit::CircuitState;
use crate::shutdown::Shutdown;
use listener::ClientAddr;
pub use tokens::{Operator, Role, Tokens};

/// What the handlers share.
pub struct AdminState {
    pub ops: Ops,
    pub pipeline: Arc<Pipeline>,
    pub tokens: Tokens,
    pub metrics: Option<PrometheusHandle>,
    pub sessions: crate::operator::console::Sessions,
    pub throttle: throttle::Throttle,
    /// Served over TLS: console cookies are `Secure`.
    pub tls: bool,
}

/// Why the admin endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `[admin]` names no usable transport (the message says which key).
    #[error("{0}")]
    Transport(String),
    #[error("[admin] TLS: {0}")]
    Tls(#[from] crate::delivery::tls::TlsError),
    #[error(
        "[admin] {setting} = {listen:?}: cannot listen ({source}); choose a free address or set {setting} = \"off\""
    )]
    Bind {
        setting: &'static str,
        listen: String,
        source: std::io::Error,
    },
    #[error("[admin] listen: {0}")]
    Listener(std::io::Error),
}

/// Bind `[admin] listen` (and `probe_listen`) and serve until shutdown.
/// Empty: both disabled.
pub async fn start(
    pipeline: Arc<Pipeline>,
    metrics: Option<PrometheusHandle>,
    shutdown: Shutdown,
) -> Result<Vec<tokio::task::JoinHandle<()>>, AdminError> {
    let admin = pipeline.config.admin.clone();
    let transport = admin.transport().map_err(AdminError::Transport)?;
    let tls_config = match &transport {
        AdminTransport::Tls { cert, key } => Some(crate::delivery::tls::server_config(cert, key)?),
        _ => None,
    };
    // A malformed token file is logged by `run`'s preflight check.
    if admin.token_file.is_none() && transport != AdminTransport::Off {
        tracing::warn!(
            "[admin] token_file is not set: /api and the console refuse every request (401)"
        );
    }
    let state = Arc::new(AdminState {
        ops: Ops::new(
            pipeline.store.clone(),
            Some(Arc::clone(&pipeline.vault)),
            &pipeline.config,
        )
        .with_destinations({
            let pipeline = Arc::clone(&pipeline);
            move || pipeline.routes.ids()
        }),
        tokens: Tokens::new(admin.token_file.clone()),
        pipeline,
        metrics,
        sessions: crate::operator::console::Sessions::default(),
        throttle: throttle::Throttle::default(),
        tls: tls_config.is_some(),
    });
    let mut tasks = Vec::new();
    let listen = admin.listen.trim();
    match transport {
        AdminTransport::Off => {
            tracing::info!("admin endpoint disabled ([admin] listen = \"off\")");
        }
        AdminTransport::Plain { warning } => {
            if let Some(w) = warning {
                tracing::warn!("{w}");
            }
            let tcp = listener::bind("listen", listen).await?;
            tracing::info!(listen = %listen, tls = false, "admin endpoint listening");
            let app =
                router(Arc::clone(&state)).into_make_service_with_connect_info::<ClientAddr>();
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(tcp, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await;
                log_stopped(served);
            }));
        }
        AdminTransport::Tls { cert, key } => {
            let tcp = listener::bind("listen", listen).await?;
            let Some(config) = tls_config else {
                unreachable!("a TLS transport has its server configuration, built above");
            };
            let tls = listener::TlsListener::new(tcp, config, (cert, key), shutdown.clone())
                .map_err(AdminError::Listener)?;
            tracing::info!(listen = %listen, tls = true, "admin endpoint listening");
            let app =
                router(Arc::clone(&state)).into_make_service_with_connect_info::<ClientAddr>();
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(tls, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await;
                log_stopped(served);
            }));
        }
    }
    if let Some(probe) = admin
        .probe_listen
        .as_deref()
        .map(str::trim)
        .filter(|p| crate::config::AdminConfig::enabled(p))
    {
        let tcp = listener::bind("probe_listen", probe).await?;
        tracing::info!(listen = %probe, "probe endpoint listening (/healthz, /readyz, /metrics)");
        let app = probes().with_state(state);
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(tcp, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            log_stopped(served);
        }));
    }
    Ok(tasks)
}

fn log_stopped(served: std::io::Result<()>) {
    if let Err(e) = served {
        tracing::error!(error = %e, "admin endpoint stopped");
    }
}

/// The routes without personal data or tokens: health, readiness, metrics.
fn probes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
}

pub fn router(state: Arc<AdminState>) -> Router {
    // Each group of routes names the role it needs; the bearer check
    // (outermost) runs first and hands the operator to the role check.
    let read = Router::new()
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/{id}", get(show_dead_letter))
        .route("/parked", get(parked))
        .route("/parked/{id}", get(parked_show))
        .route("/destinations", get(destinations))
        .route("/receipts", get(receipts))
        .route("/receipts/{id}", get(receipt))
        .route("/status", get(status))
        .route("/audit", get(audit))
        .route_layer(axum::middleware::from_fn(need_read));
    let operate = Router::new()
        .route("/dead-letters/replay", post(replay))
        .route("/dead-letters/purge", post(purge))
        // POST a verb: retry-now, hold, release, purge.
        .route("/parked/{id}", post(parked_act))
        .route("/destinations/{id}/{verb}", post(destination_act))
        .route_layer(axum::middleware::from_fn(need_operate));
    let view_payload = Router::new()
        .route("/dead-letters/{id}/payload", post(show_payload))
        .route_layer(axum::middleware::from_fn(need_view_payload));
    let api = read
        .merge(operate)
        .merge(view_payload)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_bearer,
        ));
    probes()
        .nest("/api", api)
        .merge(crate::operator::console::router())
        .with_state(state)
}

/// The client's IP address (unspecified when the router runs without
/// connection info, as in unit tests).
pub fn client_ip(request_extensions: &axum::http::Extensions) -> IpAddr {
    request_extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(a))| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// 429 with `Retry-After`.
pub fn too_many(seconds: u64, body: Response) -> Response {
    let mut response = body;
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = seconds.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// `/api` needs `Authorization: Bearer <token>`; the operator goes to the
/// role checks and, as an [`Actor`], to the handlers. Too many wrong tokens
/// from one address (or from all) are refused before the token is looked at.
async fn require_bearer(
    State(state): State<Arc<AdminState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({
                "error": "send Authorization: Bearer <token> with a token from [admin] token_file"
            })),
        )
            .into_response()
    };
    let Some(presented) = presented else {
        return unauthorized();
    };
    let client = client_ip(request.extensions());
    if let Err(seconds) = state.throttle.check(client) {
        tracing::warn!(client = %client, "admin API: too many wrong tokens; refusing for {seconds} s");
        let body = Json(serde_json::json!({
            "error": format!("too many wrong tokens; try again in {seconds} s")
        }))
        .into_response();
        return too_many(seconds, body);
    }
    match state.tokens.operator(presented) {
        Some(operator) => {
            request
                .extensions_mut()
                .insert(Actor(operator.name.clone()));
            request.extensions_mut().insert(operator);
            next.run(request).await
        }
        None => {
            state.throttle.failed(client);
            tracing::warn!(client = %client, "admin API: unknown token");
            unauthorized()
        }
    }
}

async fn need_read(request: Request, next: Next) -> Response {
    need(Role::Read, request, next).await
}

async fn need_operate(request: Request, next: Next) -> Response {
    need(Role::Operate, request, next).await
}

async fn need_view_payload(request: Request, next: Next) -> Response {
    need(Role::ViewPayload, request, next).await
}

/// 403 unless the request's operator has `role`.
async fn need(role: Role, request: Request, next: Next) -> Response {
    match request.extensions().get::<Operator>() {
        Some(operator) if operator.may(role) => next.run(request).await,
        Some(operator) => {
            tracing::warn!(operator = %operator.name, role = role.as_str(), "admin API: role missing");
            (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({"error": operator.lacks(role)})),
            )
                .into_response()
        }
        // Only reachable if the bearer layer were missing: refuse.
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let amqp = crate::intake::connected();
    let database = state.pipeline.store.ping().await.is_ok();
    let body = serde_json::json!({"amqp": amqp, "database": database});
    let code = if amqp && database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn render_metrics(State(state): State<Arc<AdminState>>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// An [`OpsError`] as a JSON answer with a fitting status code.
struct ApiError(OpsError);

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code.is_server_error() {
            tracing::error!(error = %self.0, "admin API request failed");
        }
        (code, Json(serde_json::json!({"error": self.0.to_string()}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn json(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

async fn list_dead_letters(
    State(state): State<Arc<AdminState>>,
    Query(filter): Query<DeadLetterFilter>,
) -> ApiResult {
    json(state.ops.dead_letters(&filter).await?)
}

async fn show_dead_letter(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> ApiResult {
    json(state.ops.show(&id).await?)
}

#[derive(Deserialize)]
struct PayloadRequest {
    #[serde(default)]
    reason: String,
}

async fn show_payload(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<PayloadRequest>,
) -> ApiResult {
    let (info, payload) = state.ops.show_payload(&id, &actor, &body.reason).await?;
    // Personal data: not to be cached anywhere on the way.
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        "no-store"
            .parse()
            .map_err(|_| ApiError(OpsError::Invalid("header".into())))?,
    );
    Ok((
        headers,
        Json(serde_json::json!({"dead_letter": info, "payload": payload})),
    )
        .into_response())
}

/// `{"ids": [...]}` or `{"all": true, "reason"?, "destination"?, "since"?}`,
/// with an optional `why`.
#[derive(Deserialize)]
struct ReplayRequest {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
    reason: Option<String>,
    destination: Option<DestinationId>,
    since: Option<String>,
    why: Option<String>,
}

async fn replay(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<ReplayRequest>,
) -> ApiResult {
    let results = match (body.all, body.ids.is_empty()) {
        (true, true) => {
            let filter = DeadLetterFilter {
                reason: body.reason,
                destination: body.destination,
                since: body.since,
                limit: Some(100_000),
                offset: None,
            };
            state
                .ops
                .replay_matching(&filter, &actor, body.why.as_deref())
                .await?
        }
        (false, false) => {
            state
                .ops
                .replay_ids(&body.ids, &actor, body.why.as_deref())
                .await?
        }
        _ => {
            return Err(ApiError(OpsError::Invalid(
                "send either \"ids\": [...] or \"all\": true (with optional reason, destination, since)"
                    .into(),
            )));
        }
    };
    json(results)
}

/// `{"ids": [...]}` or `{"older_than": "7d"}`, with an optional `why`.
#[derive(Deserialize)]
struct PurgeRequest {
    #[serde(default)]
    ids: Vec<String>,
    older_than: Option<String>,
    why: Option<String>,
}

async fn purge(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<PurgeRequest>,
) -> ApiResult {
    let result = match (&body.older_than, body.ids.is_empty()) {
        (Some(age), true) => {
            let age = crate::operator::ops::parse_duration(age)?;
            state
                .ops
                .purge_older_than(age, &actor, body.why.as_deref())
                .await?
        }
        (None, false) => {
            state
                .ops
                .purge_ids(&body.ids, &actor, body.why.as_deref())
                .await?
        }
        _ => {
            return Err(ApiError(OpsError::Invalid(
                "send either \"ids\": [...] or \"older_than\": \"7d\"".into(),
            )));
        }
    };
    json(result)
}

#[derive(Deserialize)]
struct ParkedQuery {
    destination: Option<DestinationId>,
    /// One entry per parked submission instead of the backlog per destination.
    #[serde(default)]
    each: bool,
    limit: Option<i64>,
    /// With `each`: how many to skip (the next page).
    offset: Option<i64>,
}

async fn parked(State(state): State<Arc<AdminState>>, Query(q): Query<ParkedQuery>) -> ApiResult {
    if q.each {
        let limit = q.limit.unwrap_or(1000);
        return json(
            state
                .ops
                .parked_each(q.destination.as_ref(), limit, q.offset.unwrap_or(0))
                .await?,
        );
    }
    json(state.ops.parked(q.destination.as_ref()).await?)
}

async fn parked_show(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    json(state.ops.parked_show(&id).await?)
}

/// `{"ids": [...]}` (or, for retry-now, `{"destination": "…"}`), with an
/// optional `why`.
#[derive(Deserialize)]
struct ParkedRequest {
    #[serde(default)]
    ids: Vec<String>,
    destination: Option<DestinationId>,
    why: Option<String>,
}

/// `POST /api/parked/{verb}`.
async fn parked_act(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(verb): Path<String>,
    Json(body): Json<ParkedRequest>,
) -> ApiResult {
    let Some(act) = ParkedAction::from_verb(&verb) else {
        return Err(ApiError(OpsError::Invalid(format!(
            "no action {verb:?} on parked submissions; POST retry-now, hold, release or purge"
        ))));
    };
    let why = body.why.as_deref();
    let results = match (&body.destination, body.ids.is_empty()) {
        (Some(d), true) if act == ParkedAction::RetryNow => {
            state.ops.retry_destination(d, &actor, why).await?
        }
        (None, false) => state.ops.parked_act(act, &body.ids, &actor, why).await?,
        _ if act == ParkedAction::RetryNow => {
            return Err(ApiError(OpsError::Invalid(
                "send either \"ids\": [...] or \"destination\": \"…\"".into(),
            )));
        }
        _ => {
            return Err(ApiError(OpsError::Invalid(
                "send \"ids\": [...] (submission ids)".into(),
            )));
        }
    };
    json(results)
}

async fn destinations(State(state): State<Arc<AdminState>>) -> ApiResult {
    json(state.ops.destinations().await?)
}

/// The optional body of pause and resume: `{"why": "…"}`.
#[derive(Deserialize, Default)]
struct WhyRequest {
    why: Option<String>,
}

/// `POST /api/destinations/{id}/pause` and `…/resume`, body optional.
async fn destination_act(
    State(state): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path((id, verb)): Path<(DestinationId, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    let why = if body.iter().all(u8::is_ascii_whitespace) {
        WhyRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(OpsError::Invalid(format!(
                "the body is optional; if given, send {{\"why\": \"…\"}} ({e})"
            )))
        })?
    }
    .why;
    let why = why.as_deref();
    match verb.as_str() {
        "pause" => json(state.ops.pause(&id, &actor, why).await?),
        "resume" => json(state.ops.resume(&id, &actor, why).await?),
        _ => Err(ApiError(OpsError::Invalid(format!(
            "no action {verb:?} on destinations; POST pause or resume"
        )))),
    }
}

#[derive(Deserialize)]
struct ReceiptsQuery {
    since: Option<String>,
    limit: Option<i64>,
}

async fn receipts(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<ReceiptsQuery>,
) -> ApiResult {
    json(
        state
            .ops
            .receipts(q.since.as_deref(), q.limit.unwrap_or(100))
            .await?,
    )
}

async fn receipt(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    match state.ops.receipt(&id).await? {
        Some(r) => json(r),
        None => Err(ApiError(OpsError::NotFound(format!("receipt {id}")))),
    }
}

/// The database's view plus the live circuit states of this process.
pub async fn live_status(state: &AdminState) -> Result<crate::operator::ops::Status, OpsError> {
    let mut status = state.ops.status().await?;
    for d in &mut status.destinations {
        if let Ok(route) = state.pipeline.routes.route(&d.destination) {
            d.circuit = Some(route.deliverer.circuit.state().as_str().to_owned());
        }
    }
    Ok(status)
}

async fn status(State(state): State<Arc<AdminState>>) -> ApiResult {
    json(live_status(&state).await?)
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn audit(State(state): State<Arc<AdminState>>, Query(q): Query<LimitQuery>) -> ApiResult {
    json(state.ops.audit_list(q.limit.unwrap_or(100)).await?)
}

/// Whether a destination's circuit is anything but closed (for the console).
pub fn circuit_is_open(state: &str) -> bool {
    state != CircuitState::Closed.as_str()
}
