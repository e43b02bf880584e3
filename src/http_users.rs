//! Users and their tokens over the API (admin only): list and put users, make, list and
//! revoke bearer tokens. The same as `tidewatch users`, for an operator without a shell.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use tidewatch_alerting::users::{NewToken, Role, TokenRecord, UserRecord};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::http::{bad_body, ApiError, LoginRefusals};
use crate::runtime::AppState;

/// A user's role and, optionally, a new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    /// viewer, duty, analyst or admin.
    pub role: String,
    /// Leave out to keep the current one (or to make a token-only user).
    pub password: Option<String>,
}

/// A token to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeToken {
    /// What it is for (e.g. the machine that uses it).
    #[serde(default)]
    pub label: String,
    /// It stops working after this long (e.g. `90d`); default never.
    pub expires_in: Option<String>,
}

fn no_user(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such user", format!("no user {name:?}"))
}

fn now() -> i64 {
    tidewatch_alerting::manager::now_ms()
}

/// The users, with their roles and how many tokens each has.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = [UserRecord]),
        LoginRefusals,
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<Vec<UserRecord>>, ApiError> {
    principal.require(Role::Admin)?;
    Ok(Json(state.alerting.store.users().await?))
}

/// Add a user, or change one's role and password.
#[utoipa::path(put, path = "/api/users/{name}", tag = "users", request_body = PutUser,
    params(("name" = String, Path, description = "User name")), security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = UserRecord),
        (status = 400, body = ApiError, description = "broken JSON, an unknown role, or a bad name or password"),
        LoginRefusals,
        (status = 413, body = ApiError, description = "the body is larger than 64 KiB"),
        (status = 415, body = ApiError, description = "the body is not `application/json`"),
        (status = 422, body = ApiError, description = "a field missing, unknown or of the wrong type"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn put_user(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(name): Path<String>,
    body: Result<Json<PutUser>, JsonRejection>,
) -> Result<Json<UserRecord>, ApiError> {
    principal.require(Role::Admin)?;
    let Json(put) = body.map_err(bad_body)?;
    let invalid = |reason: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid user", reason);
    let role = Role::parse(&put.role)
        .ok_or_else(|| invalid(format!("role {:?}: viewer, duty, analyst or admin", put.role)))?;
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == ':') {
        return Err(invalid("a name is 1 to 64 characters, without ':' or control characters".into()));
    }
    if put.password.as_deref().is_some_and(|p| p.chars().count() < 12) {
        return Err(invalid("a password has at least 12 characters".into()));
    }
    let store = &state.alerting.store;
    store.put_user(&name, role, put.password.as_deref(), now()).await?;
    // A changed password or role takes effect now, not when the login memory expires.
    state.logins.lock().unwrap_or_else(|e| e.into_inner()).clear();
    tracing::info!(user = %name, role = role.name(), by = %principal.0.name, "user put over the API");
    let users = store.users().await?;
    users.into_iter().find(|u| u.name == name).map(Json).ok_or_else(|| no_user(&name))
}

/// Make a bearer token for a user: shown once, in this answer only.
#[utoipa::path(post, path = "/api/users/{name}/tokens", tag = "users", request_body = MakeToken,
    params(("name" = String, Path, description = "User name")), security(("bearer" = []), ("basic" = [])),
    responses((status = 201, body = NewToken),
        (status = 400, body = ApiError, description = "broken JSON, or an expiry that is not a duration"),
        LoginRefusals,
        (status = 404, body = ApiError, description = "no such user"),
        (status = 413, body = ApiError, description = "the body is larger than 64 KiB"),
        (status = 415, body = ApiError, description = "the body is not `application/json`"),
        (status = 422, body = ApiError, description = "a field unknown or of the wrong type"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn make_token(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(name): Path<String>,
    body: Result<Json<MakeToken>, JsonRejection>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    principal.require(Role::Admin)?;
    let Json(make) = body.map_err(bad_body)?;
    let expires_at = match &make.expires_in {
        Some(text) => match tidewatch_rules::duration::parse_duration(text) {
            Ok(ms) if ms > 0 => Some(now() + ms),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid token",
                    format!("expires_in {text:?} is not a duration such as 90d"),
                ))
            }
        },
        None => None,
    };
    let made = state.alerting.store.new_token(&name, &make.label, now(), expires_at).await?;
    let made = made.ok_or_else(|| no_user(&name))?;
    tracing::info!(user = %name, token = %made.id, by = %principal.0.name, "token made over the API");
    Ok((StatusCode::CREATED, Json(made)))
}

/// A user's tokens: ids, labels, expiry — never the tokens.
#[utoipa::path(get, path = "/api/users/{name}/tokens", tag = "users",
    params(("name" = String, Path, description = "User name")), security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = [TokenRecord]),
        LoginRefusals,
        (status = 404, body = ApiError, description = "no such user"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn list_tokens(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    principal.require(Role::Admin)?;
    state.alerting.store.tokens(&name).await?.map(Json).ok_or_else(|| no_user(&name))
}

/// Revoke a token: it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "users",
    params(("id" = String, Path, description = "Token id (16 hex digits)")), security(("bearer" = []), ("basic" = [])),
    responses((status = 204),
        LoginRefusals,
        (status = 404, body = ApiError, description = "no token with this id"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    if !state.alerting.store.revoke_token(&id).await? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such token", format!("no token {id:?}")));
    }
    tracing::info!(token = %id, by = %principal.0.name, "token revoked over the API");
    Ok(StatusCode::NO_CONTENT)
}

/// The cookie a console session lives in.
pub const SESSION_COOKIE: &str = "tidewatch_session";

/// How long a console session lasts.
const SESSION_MS: i64 = 12 * 3_600_000;

/// A person logging in to the console.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub name: String,
    pub password: String,
}

/// Who is logged in, and until when (ms since the epoch).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Session {
    pub name: String,
    pub role: Role,
    pub expires_at: i64,
}

/// Log in with a password: a session cookie (HttpOnly, SameSite=Strict, 12 h) that the API
/// then takes in place of an Authorization header. Each session is a token of the user's,
/// labelled `console session`: an admin sees and revokes it like any other.
#[utoipa::path(post, path = "/api/session", tag = "users", request_body = Login,
    responses((status = 200, body = Session, description = "logged in; the answer sets the session cookie"),
        (status = 400, body = ApiError, description = "broken JSON"),
        (status = 401, body = ApiError, description = "wrong user or password"),
        (status = 413, body = ApiError, description = "the body is larger than 64 KiB"),
        (status = 415, body = ApiError, description = "the body is not `application/json`"),
        (status = 422, body = ApiError, description = "a field missing, unknown or of the wrong type"),
        (status = 429, body = ApiError, description = "too many wrong passwords from this address lately; `Retry-After` says when to try again"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    crate::auth::Peer(peer): crate::auth::Peer,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Json(login) = body.map_err(bad_body)?;
    let store = &state.alerting.store;
    let Some(user) = crate::auth::check_password(&state, peer, &login.name, &login.password).await? else {
        tracing::info!(user = %login.name, "console login refused");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "wrong user or password"));
    };
    let expires_at = now() + SESSION_MS;
    let made = store.new_token(&user.name, "console session", now(), Some(expires_at)).await?;
    let made = made.ok_or_else(|| no_user(&user.name))?;
    let secure = if state.https { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        made.token,
        SESSION_MS / 1000
    );
    tracing::info!(user = %user.name, session = %made.id, "console login");
    let session = Session { name: user.name, role: user.role, expires_at };
    Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(session)).into_response())
}

/// Who is logged in: the caller of a session cookie, a token or a password (the console asks
/// on load whether it has a session).
#[utoipa::path(get, path = "/api/session", tag = "users", security(("bearer" = []), ("basic" = [])),
    responses((status = 200, body = Caller),
        (status = 401, body = ApiError, description = "not logged in, or the session has ended"),
        (status = 429, body = ApiError, description = "too many wrong passwords from this address lately; `Retry-After` says when to try again"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn who(principal: Principal) -> Json<Caller> {
    Json(Caller { name: principal.0.name, role: principal.0.role })
}

/// A logged-in caller.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Log out: the session's token is revoked and the cookie cleared.
#[utoipa::path(delete, path = "/api/session", tag = "users",
    responses((status = 204, description = "logged out; the cookie is cleared"),
        (status = 401, body = ApiError, description = "no session to end"),
        (status = 503, body = ApiError, description = "the alert store is unavailable")))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Some(token) = crate::auth::session_cookie(&headers) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no session cookie"));
    };
    let store = &state.alerting.store;
    if store.check_token(token, now()).await?.is_none() {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the session has ended"));
    }
    store.revoke_session(token).await?;
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(axum::http::header::SET_COOKIE, cookie)]).into_response())
}
