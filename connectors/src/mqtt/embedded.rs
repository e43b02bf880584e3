//! The embedded default broker (rumqttd), for a deployment that names no external broker.
//!
//! rumqttd runs on its own thread and has no shutdown API and no way to report the port it
//! bound, so the caller chooses the address (see [`free_local_port`]).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedBrokerError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Starts an MQTT 3.1.1 broker listening on `listen`, for the life of the process.
pub fn start(listen: SocketAddr) -> Result<(), EmbeddedBrokerError> {
    // rumqttd binds inside its own thread and only logs a failure; check first so that a
    // taken port is an error the operator sees.
    drop(TcpListener::bind(listen).map_err(|source| EmbeddedBrokerError::Bind { addr: listen, source })?);
    let server = ServerSettings {
        name: "tidewatch-embedded".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 1000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
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
    Ok(())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_local_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
