//! The HTTP API: alerts (list, detail with evidence and history, acknowledge, resolve),
//! silences, health and metrics, with its OpenAPI description at `/api/openapi.json`.
//!
//! Every error is JSON: `{"error": what, "reason": why}` with a fitting status.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tidewatch_alerting::lifecycle::ActionError;
use tidewatch_alerting::store::{NotificationRecord, StateFilter};
use tidewatch_alerting::{Alert, AlertQuery, AlertState, CommandError, NewSilence, Silence};
use tidewatch_ingest::time::to_rfc3339;
use tidewatch_rules::Severity;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Reader};
use crate::console;
use crate::runtime::AppState;
use tidewatch_alerting::users::Role;

/// Longest comment of a silence.
const MAX_COMMENT: usize = 2000;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tidewatch", description = "Alerts of the Tidewatch monitoring and early-warning platform: list and \
        handle them, silence notifications."),
    modifiers(&Security),
    tags((name = "alerts", description = "Alerts and their lifecycle"), (name = "silences", description = "Silences and maintenance windows"),
        (name = "engine", description = "The rules engine's progress"),
        (name = "stations", description = "The stations Tidewatch knows"),
        (name = "rules", description = "The rules in force, and reloading them"),
        (name = "users", description = "Users and their tokens (admin)"))
)]
struct ApiDoc;

/// The ways to log in, for the description.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("a token from `tidewatch users token`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("a user's name and password"))
                    .build(),
            ),
        );
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let (api, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_alerts))
        .routes(routes!(alert_detail))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(delete_silence))
        .routes(routes!(input_complete))
        .routes(routes!(crate::http_users::list_users))
        .routes(routes!(crate::http_users::put_user))
        .routes(routes!(crate::http_users::make_token, crate::http_users::list_tokens))
        .routes(routes!(crate::http_users::revoke_token))
        .routes(routes!(crate::http_users::login, crate::http_users::logout, crate::http_users::who))
        .routes(routes!(events))
        .routes(routes!(stations))
        .routes(routes!(rules_in_force))
        .routes(routes!(reload_rules))
        .split_for_parts();
    let spec = Arc::new(spec);
    api.route("/api/openapi.json", get(move || async move { Json(spec.as_ref().clone()) }))
        .route("/", get(index))
        .route("/console", get(console::page))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/console/geo/{layer}", get(console::layer))
        // Links in notifications open the console in a browser, and lead anything else to the
        // API's view of the same thing.
        .route(
            "/alerts",
            get(|headers: HeaderMap, uri: axum::http::Uri| async move {
                if console::wants_page(&headers) {
                    console::alert_page(None)
                } else {
                    console_redirect("/api/alerts", uri.query())
                }
            }),
        )
        .route(
            "/alerts/{id}",
            get(|headers: HeaderMap, Id(id): Id| async move {
                if console::wants_page(&headers) {
                    console::alert_page(Some(id))
                } else {
                    console_redirect(&format!("/api/alerts/{id}"), None)
                }
            }),
        )
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not found", "no such endpoint; see /api/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "this endpoint does not take that method; see /api/openapi.json",
            )
        })
        // A body is refused by its declared Content-Length before any of it is read, and
        // one without (chunked) is cut off at the limit as it is read.
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn refuse_declared_oversize(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large",
            "request bodies are limited to 64 KiB (by Content-Length; nothing was read)",
        )
        .into_response();
    }
    next.run(request).await
}

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

fn console_redirect(path: &str, query: Option<&str>) -> axum::response::Redirect {
    match query {
        Some(q) => axum::response::Redirect::temporary(&format!("{path}?{q}")),
        None => axum::response::Redirect::temporary(path),
    }
}

/// A browser goes to the console; anything else gets a list of the endpoints.
async fn index(headers: HeaderMap) -> Response {
    if console::wants_page(&headers) {
        return axum::response::Redirect::temporary("/console").into_response();
    }
    ENDPOINTS.into_response()
}

const ENDPOINTS: &str = "Tidewatch\n\n\
     GET  /console                    the web console (a browser is sent there from /)\n\
     GET  /api/alerts                 alerts (?state=open|firing|acknowledged|resolved|all&severity=orange&region=330700&rule=ID&station=ID&limit=N&after=CURSOR; paged: X-Total-Count, Link rel=next)\n\
     GET  /api/alerts/{id}            one alert: evidence, history, notifications\n\
     POST /api/alerts/{id}/ack        {\"by\": \"...\", \"note\": \"...\"}\n\
     POST /api/alerts/{id}/resolve    {\"by\": \"...\", \"note\": \"...\"}\n\
     GET  /api/silences               silences and maintenance windows\n\
     POST /api/silences               {\"station\"|\"rule\"|\"region\": ..., \"ends_at\": RFC 3339, \"created_by\": ...}\n\
     DELETE /api/silences/{id}\n\
     POST /api/input/complete         the input has ended: decide everything up to the newest reading now\n\
     GET  /api/rules                  the rules in force and the last reload\n\
     POST /api/rules/reload           read the rule files again now (analyst)\n\
     GET  /api/stations               the stations: where they are, what they measure, their thresholds\n\
     GET  /api/events                 alert notices as they happen (server-sent events)\n\
     GET  /api/openapi.json           this API, described\n\
     GET  /healthz  /metrics\n";

/// An error: what went wrong and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    pub error: String,
    pub reason: String,
    /// Seconds, sent as `Retry-After` (429).
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &str, reason: impl Into<String>) -> ApiError {
        ApiError { status, error: error.into(), reason: reason.into(), retry_after: None }
    }

    pub(crate) fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
}

/// What every call that needs a login may answer besides its own results, for the OpenAPI
/// description (`responses(…, LoginRefusals, …)`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // describes answers; never built
pub enum LoginRefusals {
    /// not logged in, or an unknown token or password
    #[response(status = 401)]
    NotLoggedIn(ApiError),
    /// a password login from an address that got too many wrong lately; `Retry-After` says when to try again
    #[response(status = 429)]
    Throttled(ApiError),
    /// the caller's role does not allow this
    #[response(status = 403)]
    Forbidden(ApiError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.retry_after {
            Some(s) => (self.status, [(axum::http::header::RETRY_AFTER, s.to_string())], Json(self)).into_response(),
            None => (self.status, Json(self)).into_response(),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        let reason = e.to_string();
        match e {
            CommandError::Action(ActionError::NotOpen(_)) => ApiError::new(StatusCode::NOT_FOUND, "not open", reason),
            CommandError::Action(ActionError::AlreadyAcknowledged { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "already acknowledged", reason)
            }
            CommandError::Action(ActionError::Missing(_)) | CommandError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid request", reason)
            }
            CommandError::NoSuchSilence(_) => ApiError::new(StatusCode::NOT_FOUND, "no such silence", reason),
            CommandError::Store(_) | CommandError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "alert store unavailable", reason)
            }
        }
    }
}

impl From<tidewatch_alerting::StoreError> for ApiError {
    fn from(e: tidewatch_alerting::StoreError) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "alert store unavailable", e.to_string())
    }
}

/// An `{id}` in the path; one that is not a number is a JSON 400, like every other error.
struct Id(i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Id, ApiError> {
        match Path::<i64>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Id(id)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad path", e.body_text())),
        }
    }
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad query", e.body_text())
}

pub(crate) fn bad_body(e: JsonRejection) -> ApiError {
    ApiError::new(e.status(), "bad body", e.body_text())
}

/// Which alerts to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertFilter {
    /// `open` (default: firing or acknowledged), `firing`, `acknowledged`, `resolved` or `all`.
    state: Option<String>,
    /// At least this colour: blue, yellow, orange or red.
    severity: Option<String>,
    /// Region code; a city (`330700`) or province (`330000`) includes its counties.
    region: Option<String>,
    rule: Option<String>,
    station: Option<String>,
    /// At most this many per page (default 100, at most 10,000).
    limit: Option<i64>,
    /// Where the page starts: the `X-Next-Cursor` of the page before.
    after: Option<String>,
}

/// What a query value escapes: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Alerts listed per page unless `limit` says otherwise.
const DEFAULT_PAGE: i64 = 100;

/// List alerts, most severe and most recently changed first, each with its history, a page
/// at a time: `X-Total-Count` says how many match in all; while there are more, `Link`
/// (`rel="next"`) gives the next page's URL and `X-Next-Cursor` its `after`.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts", params(AlertFilter),
    responses((status = 200, body = Vec<Alert>, headers(
        ("X-Total-Count" = i64, description = "Alerts matching the filter, on all pages"),
        ("Link" = String, description = "`<URL>; rel=\"next\"` while there are more"),
        ("X-Next-Cursor" = String, description = "`after` for the next page, while there are more"),
    )), (status = 400, body = ApiError, description = "a bad or unknown query parameter"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn list_alerts(
    State(state): State<Arc<AppState>>,
    _: Reader,
    filter: Result<Query<AlertFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = filter.map_err(bad_query)?;
    let after = match filter.after.as_deref().map(str::parse::<tidewatch_alerting::store::Cursor>) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(())) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad cursor", "after must be an X-Next-Cursor value"))
        }
    };
    let min_severity = match filter.severity.as_deref().map(str::parse::<Severity>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(())) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad severity",
                "severity must be blue, yellow, orange or red",
            ))
        }
    };
    let state_filter = match filter.state.as_deref() {
        None | Some("open") => StateFilter::Open,
        Some("all") => StateFilter::All,
        Some(s) => match AlertState::parse(s) {
            Some(s) => StateFilter::Is(s),
            None => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad state",
                    "state must be open, firing, acknowledged, resolved or all",
                ))
            }
        },
    };
    let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, 10_000);
    let query = AlertQuery {
        state: Some(state_filter),
        min_severity,
        region: filter.region.clone(),
        rule: filter.rule.clone(),
        station: filter.station.clone(),
        limit,
    };
    let page = state.alerting.store.alerts_page(&query, after).await?;
    let mut response = Json(page.alerts).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", page.total.into());
    if let Some(next) = page.next {
        let mut params: Vec<(&str, String)> = Vec::new();
        let fields = [
            ("state", &filter.state),
            ("severity", &filter.severity),
            ("region", &filter.region),
            ("rule", &filter.rule),
            ("station", &filter.station),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                params.push((name, v.clone()));
            }
        }
        params.push(("limit", limit.to_string()));
        params.push(("after", next.to_string()));
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, QUERY_VALUE)))
            .collect::<Vec<_>>()
            .join("&");
        if let Ok(link) = format!("</api/alerts?{query}>; rel=\"next\"").parse() {
            headers.insert(header::LINK, link);
        }
        if let Ok(cursor) = next.to_string().parse() {
            headers.insert("x-next-cursor", cursor);
        }
    }
    Ok(response)
}

/// Why the alert is what it is.
#[derive(Debug, Serialize, ToSchema)]
struct Evidence {
    /// The measured value behind the latest change.
    value: f64,
    threshold: f64,
    unit: String,
    /// `above` or `below`.
    direction: String,
    /// Since when the condition held (event time, RFC 3339).
    since: String,
    /// In words, e.g. `water_level 30.62 m above 30.50 m since 2026-11-25 14:10:00`.
    summary: String,
}

/// An alert with its evidence, history and notifications.
#[derive(Debug, Serialize, ToSchema)]
struct AlertDetail {
    #[serde(flatten)]
    alert: Alert,
    evidence: Evidence,
    /// Every notification about it, with each delivery attempt (the audit trail).
    notifications: Vec<NotificationRecord>,
}

/// One alert: evidence, full history, notifications and their delivery attempts.
#[utoipa::path(get, path = "/api/alerts/{id}", tag = "alerts", params(("id" = i64, Path, description = "Alert id")),
    responses((status = 200, body = AlertDetail), (status = 400, body = ApiError, description = "the id is not a number"),
        (status = 404, body = ApiError), (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn alert_detail(
    State(state): State<Arc<AppState>>,
    _: Reader,
    Id(id): Id,
) -> Result<Json<AlertDetail>, ApiError> {
    let Some(alert) = state.alerting.store.alert(id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such alert", format!("no alert {id}")));
    };
    let notifications = state.alerting.store.notifications(id).await?;
    let since = chrono::DateTime::parse_from_rfc3339(&alert.since)
        .map(|t| tidewatch_alerting::render::local_time(t.timestamp_millis()))
        .unwrap_or_else(|_| alert.since.clone());
    let evidence = Evidence {
        value: alert.value,
        threshold: alert.threshold,
        unit: alert.subject.unit.clone(),
        direction: alert.direction.clone(),
        since: alert.since.clone(),
        summary: format!(
            "{} {:.2} {unit} {} {:.2} {unit} since {since} (Beijing time)",
            alert.subject.quantity,
            alert.value,
            alert.direction,
            alert.threshold,
            unit = alert.subject.unit
        ),
    };
    Ok(Json(AlertDetail { alert, evidence, notifications }))
}

/// Who acts, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Action {
    /// Who, if not the logged-in user (recorded as "by (via user)").
    by: Option<String>,
    note: Option<String>,
}

impl Action {
    fn actor(&self, principal: &Principal) -> Result<String, ApiError> {
        if self.by.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid request", "by must not be empty"));
        }
        Ok(principal.actor(self.by.as_deref()))
    }
}

/// A duty officer's action on an alert: (who it is recorded as, the note).
fn duty_action(
    principal: &Principal,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<(String, Option<String>), ApiError> {
    principal.require(Role::Duty)?;
    let Json(action) = body.map_err(bad_body)?;
    Ok((action.actor(principal)?, action.note))
}

/// Acknowledge an open alert: somebody has taken it on, and it stops escalating.
#[utoipa::path(post, path = "/api/alerts/{id}/ack", tag = "alerts", params(("id" = i64, Path, description = "Alert id")),
    request_body = Action, security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = Alert),
        LoginRefusals,
        (status = 400, body = ApiError, description = "broken JSON, an id that is not a number, or `by` empty"),
        (status = 404, body = ApiError, description = "no open alert with this id"),
        (status = 409, body = ApiError, description = "already acknowledged"),
        (status = 413, body = ApiError, description = "the body is larger than 64 KiB"),
        (status = 415, body = ApiError, description = "the body is not `application/json`"),
        (status = 422, body = ApiError, description = "a field missing, unknown or of the wrong type"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn acknowledge(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Id(id): Id,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let (by, note) = duty_action(&principal, body)?;
    Ok(Json(state.alerting.acknowledge(id, by, note).await?))
}

/// Resolve an open alert by hand.
#[utoipa::path(post, path = "/api/alerts/{id}/resolve", tag = "alerts", params(("id" = i64, Path, description = "Alert id")),
    request_body = Action, security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = Alert),
        LoginRefusals,
        (status = 400, body = ApiError, description = "broken JSON, an id that is not a number, or `by` empty"),
        (status = 404, body = ApiError, description = "no open alert with this id"),
        (status = 413, body = ApiError, description = "the body is larger than 64 KiB"),
        (status = 415, body = ApiError, description = "the body is not `application/json`"),
        (status = 422, body = ApiError, description = "a field missing, unknown or of the wrong type"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn resolve(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Id(id): Id,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let (by, note) = duty_action(&principal, body)?;
    Ok(Json(state.alerting.resolve(id, by, note).await?))
}

/// Silences in force or to come, with the duty file's maintenance windows (negative ids).
#[utoipa::path(get, path = "/api/silences", tag = "silences", responses((status = 200, body = Vec<Silence>),
    (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn list_silences(State(state): State<Arc<AppState>>, _: Reader) -> Result<Json<Vec<Silence>>, ApiError> {
    Ok(Json(state.alerting.silences(tidewatch_alerting::manager::now_ms()).await?))
}

/// Silence notifications about matching alerts for a while (the alerts still show).
#[utoipa::path(post, path = "/api/silences", tag = "silences", request_body = NewSilence,
    security(("bearer" = []), ("basic" = [])),
    responses((status = 201, body = Silence),
        LoginRefusals,
        (status = 400, body = ApiError, description = "broken JSON, or a silence that matches nothing, has no future, lasts too long, or matches everything without a reason"),
        (status = 413, body = ApiError, description = "the body is larger than 64 KiB"),
        (status = 415, body = ApiError, description = "the body is not `application/json`"),
        (status = 422, body = ApiError, description = "a field missing, unknown or of the wrong type"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn create_silence(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    principal.require(Role::Analyst)?;
    let Json(mut new) = body.map_err(bad_body)?;
    let invalid = |reason: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid silence", reason);
    if new.comment.chars().count() > MAX_COMMENT {
        return Err(invalid(format!("comment is longer than {MAX_COMMENT} characters")));
    }
    // A silence that mutes everything is an admin's, with a reason.
    let everything = new.station.as_deref().is_none_or(str::is_empty)
        && new.region.as_deref().is_none_or(str::is_empty)
        && new.rule.as_deref().is_none_or(|r| r.chars().all(|c| c == '*'));
    if everything && (principal.0.role != Role::Admin || new.comment.trim().is_empty()) {
        return Err(invalid("a silence matching every alert needs the admin role and a comment saying why".into()));
    }
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_millis());
    let starts = new.starts_at.as_deref().and_then(time).unwrap_or_else(tidewatch_alerting::manager::now_ms);
    if let Some(ends) = time(&new.ends_at) {
        if ends - starts > state.max_silence_ms {
            return Err(invalid(format!(
                "a silence may last at most {} h (alerting.max_silence)",
                state.max_silence_ms / 3_600_000
            )));
        }
    }
    new.created_by = principal.actor(Some(&new.created_by));
    Ok((StatusCode::CREATED, Json(state.alerting.silence(new).await?)))
}

/// End a silence created over the API.
#[utoipa::path(delete, path = "/api/silences/{id}", tag = "silences", params(("id" = i64, Path, description = "Silence id")),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 204), LoginRefusals,
        (status = 400, body = ApiError, description = "the id is not a number"),
        (status = 404, body = ApiError, description = "no silence with this id (maintenance windows are the duty file's)"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
async fn delete_silence(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Analyst)?;
    state.alerting.unsilence(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the engine has decided up to.
#[derive(Debug, Serialize, ToSchema)]
struct Decided {
    /// Event time every reading and timer before which is decided (RFC 3339); null before
    /// the first reading.
    watermark: Option<String>,
}

/// Declare the input complete (a recorded feed has ended): everything up to the newest
/// reading is decided at once — pending `for` and `clear_for` timers, windows, missing data
/// — instead of after the idle timeout and the allowed lateness. Readings older than that
/// which arrive later are late.
#[utoipa::path(post, path = "/api/input/complete", tag = "engine",
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = Decided, description = "the new watermark"), LoginRefusals))]
async fn input_complete(State(state): State<Arc<AppState>>, principal: Principal) -> Result<Json<Decided>, ApiError> {
    principal.require(Role::Admin)?;
    let watermark = state.watermark.complete();
    state.watermark_moved.notify_one();
    tracing::info!(watermark = %to_rfc3339(watermark), by = %principal.0.name, "input declared complete");
    Ok(Json(Decided { watermark: (watermark != i64::MIN).then(|| to_rfc3339(watermark)) }))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let watermark = state.watermark.get();
    let connected = state.sources.iter().any(|s| s.kind == "mqtt" && s.health.up());
    let counts = state.open_counts();
    let source = |s: &crate::runtime::SourceInfo| {
        let mut report = s.health.report();
        if let Some(fields) = report.as_object_mut() {
            fields.insert("kind".into(), s.kind.into());
            fields.insert("up".into(), s.health.up().into());
        }
        (s.name.to_owned(), report)
    };
    let body = serde_json::json!({
        "status": "ok",
        "mqtt_connected": connected,
        "watermark": (watermark != i64::MIN).then(|| to_rfc3339(watermark)),
        "readings": state.readings_total.load(Ordering::Relaxed),
        "dead_letters": state.dead_letters_total.load(Ordering::Relaxed),
        "open_alerts": counts.iter().sum::<usize>(),
        "sources": state.sources.iter().map(source).collect::<serde_json::Map<_, _>>(),
        // The TCP listeners again, under the name they had before [[source]].
        "listeners": state.sources.iter().filter(|s| s.kind.ends_with("_tcp")).map(source).collect::<serde_json::Map<_, _>>(),
        "sinks": state.sinks.iter().map(|(name, kind, c)| (name.clone(), serde_json::json!({
            "kind": kind,
            "delivered": c.delivered.load(Ordering::Relaxed),
            "failed": c.failed.load(Ordering::Relaxed),
            "dropped": c.dropped.load(Ordering::Relaxed),
        }))).collect::<serde_json::Map<_, _>>(),
    });
    Json(body).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.refresh_gauges();
    match state.alerting.store.pending_count().await {
        Ok(n) => {
            state.metrics.outbox_pending.set(n);
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the outbox"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.encode()).into_response()
}

/// Alert notices as they happen, as server-sent events: `alert` with the notice (the JSON an
/// alert topic carries) for every change; `resync` (with how many were missed) when this
/// reader fell more than 1,024 notices behind and should read the list again. The stream ends
/// when Tidewatch stops.
#[utoipa::path(get, path = "/api/events", tag = "alerts",
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "`event: alert` with a notice as `data`, `event: resync` after missed notices, a comment every 10 s"),
        (status = 503, body = ApiError, description = "the alert store is unavailable (checking a login)")))]
async fn events(
    State(state): State<Arc<AppState>>,
    _: Reader,
) -> axum::response::Sse<impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>
{
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let follow = (state.alert_events.subscribe(), state.stopping.subscribe(), state.clone());
    let stream = futures_util::stream::unfold(follow, |(mut notices, mut stopping, state)| async move {
        let event = tokio::select! {
            notice = notices.recv() => match notice {
                Ok(json) => Event::default().event("alert").data(&*json),
                Err(RecvError::Lagged(missed)) => {
                    state.metrics.console_events_missed.inc_by(missed);
                    Event::default().event("resync").data(missed.to_string())
                }
                Err(RecvError::Closed) => return None,
            },
            _ = stopping.wait_for(|stopping| *stopping) => return None,
        };
        Some((Ok(event), (notices, stopping, state)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(10)))
}

/// A station as the registry describes it (its device password and address allow-list are
/// not shown).
#[derive(Debug, Serialize, ToSchema)]
struct StationInfo {
    id: String,
    name: String,
    /// water, environment, traffic or emergency.
    domain: &'static str,
    /// GB/T 2260 division code.
    region: String,
    basin: Option<String>,
    /// WGS 84 degrees.
    lon: f64,
    lat: f64,
    /// What it measures (empty: not declared).
    quantities: Vec<&'static str>,
    /// Its thresholds and other figures that rules refer to (`warning_level`, …).
    attributes: std::collections::BTreeMap<String, f64>,
}

/// Every station: where it is, what it measures, the figures its rules use.
#[utoipa::path(get, path = "/api/stations", tag = "stations", responses((status = 200, body = Vec<StationInfo>),
    (status = 503, body = ApiError, description = "the alert store is unavailable (checking a login)")))]
async fn stations(State(state): State<Arc<AppState>>, _: Reader) -> Json<Vec<StationInfo>> {
    let stations = state.registry.stations().iter().map(|s| StationInfo {
        id: s.id.clone(),
        name: s.name.clone(),
        domain: s.domain.name(),
        region: s.region.clone(),
        basin: s.basin.clone(),
        lon: s.location.x(),
        lat: s.location.y(),
        quantities: s.quantities.iter().map(|q| q.name()).collect(),
        attributes: s.attributes.clone(),
    });
    Json(stations.collect())
}

/// The rules in force: each rule's id, kind, colours, place and fingerprint, when they were
/// loaded, and how the last reload went.
#[utoipa::path(get, path = "/api/rules", tag = "rules", responses((status = 200, body = crate::reload::RulesInForce),
    (status = 503, body = ApiError, description = "the alert store is unavailable (checking a login)")))]
async fn rules_in_force(State(state): State<Arc<AppState>>, _: Reader) -> Json<crate::reload::RulesInForce> {
    Json(state.rules.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// Read the rule files again now (they are also read when they change, and on SIGHUP). A file
/// with any error is rejected whole and the rules in force stay; otherwise the engine takes
/// the new rules: state of unchanged rules is kept, a changed rule holds the colour of its
/// open alerts, open alerts of a removed rule resolve.
#[utoipa::path(post, path = "/api/rules/reload", tag = "rules", security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = crate::reload::ReloadReport, description = "applied, or unchanged"),
        LoginRefusals,
        (status = 409, body = ApiError, description = "the rules are built into the binary (the demo), or fixed for a replay"),
        (status = 422, body = ApiError, description = "the rule files have errors (each `file:line:col: message`); the rules in force stay"),
        (status = 503, body = ApiError, description = "Tidewatch is stopping, or the alert store is unavailable")))]
async fn reload_rules(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<crate::reload::ReloadReport>, ApiError> {
    principal.require(Role::Analyst)?;
    let Some(reload) = &state.reload else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no rule files",
            "the rules are built into the binary (the demo), or fixed for a replay: there are no files to read",
        ));
    };
    let stopping = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "Tidewatch is stopping");
    let (reply, report) = tokio::sync::oneshot::channel();
    reload.send((principal.0.name.clone(), reply)).await.map_err(|_| stopping())?;
    let report = report.await.map_err(|_| stopping())?;
    if report.outcome == crate::reload::Outcome::Rejected {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid rules",
            format!("the rules in force stay: {}", report.errors.join("; ")),
        ));
    }
    Ok(Json(report))
}
