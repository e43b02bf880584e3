//! Who is calling the HTTP API: `Authorization: Bearer <token>` (machines) or HTTP Basic
//! with a user's password (people, scripts). Every mutating call needs a role and records
//! who made it; reads are open unless `http.open_reads = false`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;
use tidewatch_alerting::users::{Role, User};

use crate::http::ApiError;
use crate::runtime::AppState;

/// How long a checked password is remembered.
const LOGIN_MEMORY: std::time::Duration = std::time::Duration::from_secs(60);

/// Logins checked recently: digest of the credentials → (user, when).
pub type Logins = std::sync::Mutex<std::collections::HashMap<[u8; 32], (User, std::time::Instant)>>;

/// The address a request came from (put in each request by the HTTP server).
pub struct Peer(pub IpAddr);

impl Peer {
    fn of(parts: &Parts) -> Peer {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Peer(peer.unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer::of(parts))
    }
}

/// Checks a user's password, unless `peer` has failed too often lately (429 with
/// `Retry-After`; see [`crate::login_throttle`]). Every check and refusal is counted.
pub async fn check_password(
    state: &AppState,
    peer: IpAddr,
    name: &str,
    password: &str,
) -> Result<Option<User>, ApiError> {
    let count = |outcome: &str| {
        state.metrics.http_logins.get_or_create(&crate::metrics::OutcomeLabels { outcome: outcome.into() }).inc();
    };
    if let Some(wait) = state.login_throttle.wait(peer, name, std::time::Instant::now()) {
        count("throttled");
        let seconds = wait.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins",
            format!("too many wrong passwords from this address: try again in {seconds} s"),
        )
        .retry_after(seconds));
    }
    let user = state.alerting.store.check_password(name, password).await?;
    match &user {
        Some(_) => {
            count("ok");
            state.login_throttle.succeeded(peer, name);
        }
        None => {
            count("failed");
            state.login_throttle.failed(peer, name, std::time::Instant::now());
            tracing::info!(user = %name, %peer, "wrong user or password");
        }
    }
    Ok(user)
}

/// An authenticated caller.
pub struct Principal(pub User);

impl Principal {
    /// Refuses (403) unless the caller's role allows `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.0.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{} is {:?}; this needs the {} role", self.0.name, self.0.role.name(), needed.name()),
            ))
        }
    }

    /// Who an action is recorded as: the caller, or the person they name (`by`) via them.
    pub fn actor(&self, by: Option<&str>) -> String {
        match by.map(str::trim).filter(|b| !b.is_empty()) {
            Some(by) if by != self.0.name => format!("{by} (via {})", self.0.name),
            _ => self.0.name.clone(),
        }
    }
}

fn unauthorized(reason: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", reason)
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Principal, ApiError> {
        let store = &state.alerting.store;
        let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            // A console session (SameSite=Strict: other sites' pages cannot send it).
            if let Some(token) = session_cookie(&parts.headers) {
                let user = store.check_token(token, tidewatch_alerting::manager::now_ms()).await?;
                return user.map(Principal).ok_or_else(|| unauthorized("the session has ended; log in again"));
            }
            return Err(unauthorized(
                "log in: Authorization: Bearer <token>, Basic with a user's password, or a session (POST /api/session)",
            ));
        };
        let user = if let Some(token) = value.strip_prefix("Bearer ") {
            store.check_token(token.trim(), tidewatch_alerting::manager::now_ms()).await?
        } else if let Some(basic) = value.strip_prefix("Basic ") {
            // Checking a password is slow by design (argon2): a check that passed is
            // remembered for a minute, by a digest of the credentials.
            let key: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(basic.trim().as_bytes()).into();
            let cached = state.logins.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
            match cached.filter(|(_, at)| at.elapsed() < LOGIN_MEMORY) {
                Some((user, _)) => Some(user),
                None => {
                    let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).unwrap_or_default();
                    let text = String::from_utf8(decoded).unwrap_or_default();
                    let user = match text.split_once(':') {
                        Some((name, password)) => check_password(state, Peer::of(parts).0, name, password).await?,
                        None => None,
                    };
                    if let Some(user) = &user {
                        let mut logins = state.logins.lock().unwrap_or_else(|e| e.into_inner());
                        if logins.len() >= 1024 {
                            logins.clear();
                        }
                        logins.insert(key, (user.clone(), std::time::Instant::now()));
                    }
                    user
                }
            }
        } else {
            None
        };
        user.map(Principal).ok_or_else(|| unauthorized("unknown token, or wrong user or password"))
    }
}

/// The console session's token from the `Cookie` header, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(crate::http_users::SESSION_COOKIE)?.strip_prefix('='))
        .filter(|t| !t.is_empty())
}

/// A reader: anyone while reads are open, else a logged-in user of any role.
pub struct Reader;

impl FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Reader, ApiError> {
        if state.open_reads {
            return Ok(Reader);
        }
        Principal::from_request_parts(parts, state).await.map(|_| Reader)
    }
}
