//! The embedded default broker (rumqttd), for a deployment that names no external broker.
//!
//! rumqttd runs on its own thread and has no shutdown API and no way to report the port it
//! bound, so the caller chooses the address (see [`free_local_port`]).
//!
//! Nothing is open: a client must give a username and password from [`Access::users`]
//! (unless `anonymous`), and the client ids in [`Access::reserved`] are only for the user
//! `tidewatch` — nobody can take over Tidewatch's own session. Memory is bounded: each
//! subscription filter's log holds at most [`LOG_BYTES_PER_FILTER`]; a subscriber that falls
//! further behind loses the oldest messages (a deployment that cannot accept that runs its
//! own broker).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedBrokerError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Who may connect.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// username → password.
    pub users: HashMap<String, String>,
    /// Client ids only the user `tidewatch` may use.
    pub reserved: Vec<String>,
    /// Let clients without credentials in (never for reserved ids).
    pub anonymous: bool,
}

impl Access {
    fn allows(&self, client_id: &str, user: &str, password: &str) -> bool {
        let known = !user.is_empty()
            && self.users.get(user).is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()));
        if self.reserved.iter().any(|r| r == client_id) {
            return known && user == "tidewatch";
        }
        known || (self.anonymous && user.is_empty())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The most each subscription filter's in-memory log holds (4 segments of 4 MiB).
pub const LOG_BYTES_PER_FILTER: usize = 4 * SEGMENT_BYTES;
const SEGMENT_BYTES: usize = 4 << 20;

/// Starts an MQTT 3.1.1 broker listening on `listen`, for the life of the process.
pub fn start(listen: SocketAddr, access: Access) -> Result<(), EmbeddedBrokerError> {
    // rumqttd binds inside its own thread and only logs a failure; check first so that a
    // taken port is an error the operator sees.
    drop(TcpListener::bind(listen).map_err(|source| EmbeddedBrokerError::Bind { addr: listen, source })?);
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    connections.set_auth_handler(move |client_id: String, user: String, password: String| {
        let allowed = access.allows(&client_id, &user, &password);
        if !allowed {
            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(client_id, user, "embedded MQTT broker refused a client");
        }
        async move { allowed }
    });
    let server = ServerSettings {
        name: "tidewatch-embedded".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: SEGMENT_BYTES,
            max_segment_count: LOG_BYTES_PER_FILTER / SEGMENT_BYTES,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("tidewatch".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .expect("spawning a thread");
    // Ready once it accepts: clients started right after (Tidewatch's own) then connect at
    // the first try instead of logging a refused connection.
    for _ in 0..100 {
        if std::net::TcpStream::connect_timeout(&listen, std::time::Duration::from_millis(50)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_local_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
