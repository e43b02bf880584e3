//! MQTT: a subscribing source (rumqttc) and the embedded default broker (rumqttd).

mod config;
pub mod embedded;
mod source;

pub use config::{MqttSourceConfig, MqttTls};
pub use source::{MqttAcker, MqttSource, MqttStatus, SourceHandle};
