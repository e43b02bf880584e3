//! MQTT: a subscribing source (rumqttc) and the embedded default broker (rumqttd).

mod config;
pub mod embedded;
mod source;

pub use config::MqttSourceConfig;
pub use source::{MqttAcker, MqttSource, MqttStatus, SourceHandle};
