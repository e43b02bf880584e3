//! The web console: one page for duty officers and analysts (`/console`), built into the
//! binary. It is a client of the HTTP API like any other — it logs in with a session cookie,
//! reads alerts and silences, acts through the same endpoints — and follows `/api/events` so
//! that alerts show as they happen.
//!
//! Links in notifications (`/alerts/{id}`) open the console in a browser and lead to the API's
//! JSON for everything else.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The map's layers (Natural Earth, public domain; see `console/geo/README.md`).
const LAYERS: &[(&str, &str)] = &[
    ("province", include_str!("console/geo/province.geojson")),
    ("lakes", include_str!("console/geo/lakes.geojson")),
    ("rivers", include_str!("console/geo/rivers.geojson")),
    ("coastline", include_str!("console/geo/coastline.geojson")),
];

/// Only the console's own files run or load: no inline script, nothing from elsewhere, no
/// framing.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file_response(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

pub async fn page() -> Response {
    file_response("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> Response {
    file_response("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    file_response("text/css; charset=utf-8", STYLE)
}

/// `/console/geo/{layer}.geojson`.
pub async fn layer(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let name = file.strip_suffix(".geojson").unwrap_or("");
    match LAYERS.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => file_response("application/geo+json", body),
        None => (axum::http::StatusCode::NOT_FOUND, "no such map layer").into_response(),
    }
}

/// Whether the request comes from a browser navigating (it asks for HTML first).
pub fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').next().is_some_and(|first| first.trim().starts_with("text/html")))
}

/// Where a browser following a notification's link to alert `id` goes.
pub fn alert_page(id: Option<i64>) -> Redirect {
    match id {
        Some(id) => Redirect::temporary(&format!("/console#alert={id}")),
        None => Redirect::temporary("/console#alerts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_apart_by_what_they_ask_for_first() {
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            h
        };
        // Chromium's and Firefox's navigation Accept headers.
        assert!(wants_page(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        )));
        assert!(!wants_page(&accept("*/*")));
        assert!(!wants_page(&accept("application/json")));
        assert!(!wants_page(&accept("application/json, text/html")));
        assert!(!wants_page(&HeaderMap::new()));
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        // No inline script or style: the policy forbids them, so the page must not need them.
        assert!(!PAGE.contains("<script>") && !PAGE.contains("style="), "inline code in index.html");
        for asset in ["/console/console.js", "/console/console.css"] {
            assert!(PAGE.contains(asset), "{asset} not loaded by the page");
        }
        // Values from the server go in as text.
        assert!(!SCRIPT.contains("innerHTML"), "console.js writes markup");
    }
}
