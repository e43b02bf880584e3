//! The HTTP API: open alerts, health and metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tidewatch_ingest::time::to_rfc3339;
use tidewatch_rules::Severity;

use crate::runtime::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/alerts", get(alerts))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn index() -> &'static str {
    "Tidewatch\n\nGET /api/alerts   open alerts (JSON; ?severity=orange for orange and above, ?region=3301, ?rule=ID)\nGET /healthz      health (JSON)\nGET /metrics      Prometheus metrics\n"
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertFilter {
    /// Minimum severity.
    severity: Option<String>,
    /// Region code prefix.
    region: Option<String>,
    rule: Option<String>,
}

async fn alerts(State(state): State<Arc<AppState>>, Query(filter): Query<AlertFilter>) -> Response {
    let min = match filter.severity.as_deref().map(str::parse::<Severity>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(())) => {
            let body =
                serde_json::json!({"error": "bad severity", "reason": "severity must be blue, yellow, orange or red"});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let board = state.board.lock().unwrap_or_else(|e| e.into_inner());
    let alerts: Vec<_> = board
        .open_alerts()
        .into_iter()
        .filter(|a| min.is_none_or(|m| a.severity >= m))
        .filter(|a| filter.region.as_deref().is_none_or(|r| a.subject.region.starts_with(r)))
        .filter(|a| filter.rule.as_deref().is_none_or(|r| &*a.rule == r))
        .collect();
    Json(alerts).into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let watermark = state.watermark.get();
    let connected = state.mqtt.connected.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "status": "ok",
        "mqtt_connected": connected,
        "watermark": (watermark != i64::MIN).then(|| to_rfc3339(watermark)),
        "readings": state.readings_total.load(Ordering::Relaxed),
        "dead_letters": state.dead_letters_total.load(Ordering::Relaxed),
        "listeners": state.listeners.iter().map(|(name, s)| (name.to_string(), serde_json::json!({
            "open": s.open.load(Ordering::Relaxed),
            "accepted": s.accepted.load(Ordering::Relaxed),
            "frames": s.frames.load(Ordering::Relaxed),
            "garbage_bytes": s.garbage_bytes.load(Ordering::Relaxed),
            "idle_closed": s.idle_closed.load(Ordering::Relaxed),
        }))).collect::<serde_json::Map<_, _>>(),
    });
    Json(body).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.refresh_gauges();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.encode()).into_response()
}
