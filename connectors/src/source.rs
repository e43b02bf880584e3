//! What every running source offers the process: a name, its health, and a stop.

use std::sync::Arc;

/// A source's state for health checks and metrics.
pub trait Health: Send + Sync {
    /// Whether it can take messages now (connected, listening, reading).
    fn up(&self) -> bool;
    /// Its counters, for `/healthz`.
    fn report(&self) -> serde_json::Value;
}

/// A started source.
pub struct Running {
    pub name: &'static str,
    /// `mqtt`, `kafka`, `hj212_tcp`, `sl651_tcp` or `file`.
    pub kind: &'static str,
    pub health: Arc<dyn Health>,
    stop: Stop,
}

enum Stop {
    Mqtt(crate::mqtt::SourceHandle),
    Tcp(crate::tcp::TcpSource),
    Task(tokio::task::AbortHandle),
}

impl Running {
    pub fn mqtt(name: &'static str, source: &crate::mqtt::MqttSource) -> Running {
        Running { name, kind: "mqtt", health: source.status.clone(), stop: Stop::Mqtt(source.task_handle()) }
    }

    pub fn tcp(name: &'static str, kind: &'static str, source: crate::tcp::TcpSource) -> Running {
        Running { name, kind, health: source.status.clone(), stop: Stop::Tcp(source) }
    }

    pub fn task(
        name: &'static str,
        kind: &'static str,
        health: Arc<dyn Health>,
        task: tokio::task::AbortHandle,
    ) -> Running {
        Running { name, kind, health, stop: Stop::Task(task) }
    }

    /// Stops taking messages. What was delivered but not acknowledged comes again: the
    /// broker keeps it, the device resends it, the consumer group's offset stays before it.
    pub async fn stop(self) {
        match self.stop {
            Stop::Mqtt(handle) => handle.stop().await,
            Stop::Tcp(source) => source.stop(),
            Stop::Task(task) => task.abort(),
        }
    }
}
