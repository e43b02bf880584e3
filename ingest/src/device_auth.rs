//! Devices prove which station they are: HJ 212's `PW`, SL 651's password, and optionally
//! the address they connect from.
//!
//! A station's password comes from the registry (`password`), else from the listener it
//! connects to; without either, packets are accepted as before. A refused payload is a dead
//! letter with reason `auth` and gets no protocol answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::dead_letter::Rejection;
use crate::hj212::Packet;
use crate::reassembly::Protocol;
use crate::sl651::Frame;
use crate::station::Registry;

/// The passwords and address lists to check against.
#[derive(Clone, Debug, Default)]
pub struct DeviceAuth {
    registry: Arc<Registry>,
    /// Listener (source) name → the password its devices must give when their station has
    /// none of its own.
    listeners: HashMap<String, String>,
    /// Whether anything is checked at all (any password or address list).
    enabled: bool,
}

impl DeviceAuth {
    pub fn new(registry: Arc<Registry>, listeners: HashMap<String, String>) -> DeviceAuth {
        let enabled = !listeners.is_empty()
            || registry.stations().iter().any(|s| s.password.is_some() || !s.allow_from.is_empty());
        DeviceAuth { registry, listeners, enabled }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Checks every packet of a payload that came through `source` from `peer` (TCP) and
    /// returns the first refusal.
    pub fn check(
        &self,
        protocol: Protocol,
        source: &str,
        peer: Option<IpAddr>,
        payload: &[u8],
    ) -> Result<(), Rejection> {
        if !self.enabled {
            return Ok(());
        }
        match protocol {
            Protocol::Hj212 => {
                for line in payload.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    // What does not parse is the decoder's to refuse.
                    if let Ok(packet) = Packet::parse(line) {
                        self.station(source, peer, packet.mn, |expected| packet.pw == Some(expected))?;
                    }
                }
                Ok(())
            }
            Protocol::Sl651 => {
                if let Ok(frame) = Frame::parse(payload) {
                    self.station(source, peer, &frame.station, |expected| {
                        u16::from_str_radix(expected, 16).is_ok_and(|p| p == frame.password)
                    })?;
                }
                Ok(())
            }
        }
    }

    fn station(
        &self,
        source: &str,
        peer: Option<IpAddr>,
        station: &str,
        password_matches: impl Fn(&str) -> bool,
    ) -> Result<(), Rejection> {
        let refuse = |why: &str| Err(Rejection::Auth { station: station.to_owned(), why: why.to_owned() });
        let known = self.registry.key_of(station).map(|k| self.registry.station(k));
        if let (Some(s), Some(peer)) = (known, peer) {
            if !s.allow_from.is_empty() && !s.allow_from.contains(&peer) {
                return refuse(&format!("connected from {peer}, not an address this station may use"));
            }
        }
        let expected =
            known.and_then(|s| s.password.as_deref()).or_else(|| self.listeners.get(source).map(String::as_str));
        match expected {
            Some(expected) if !password_matches(expected) => refuse("wrong or missing password"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hj212::encode;
    use crate::sl651::encode_uplink;

    fn registry() -> Arc<Registry> {
        Arc::new(
            Registry::from_toml_str(
                r#"
[[station]]
id = "LOGGER1"
name = "a"
domain = "environment"
location = [120.0, 30.0]
region = "33"
password = "s3cret"
allow_from = ["10.0.0.7"]

[[station]]
id = "LOGGER2"
name = "b"
domain = "environment"
location = [120.0, 30.0]
region = "33"

[[station]]
id = "0011223344"
name = "c"
domain = "water"
location = [120.0, 30.0]
region = "33"
password = "03E8"
"#,
            )
            .unwrap(),
        )
    }

    fn hj(mn: &str, pw: &str) -> Vec<u8> {
        encode(&format!("QN=1;ST=22;CN=2011;PW={pw};MN={mn};Flag=4;CP=&&a34004-Rtd=1&&")).into_bytes()
    }

    #[test]
    fn passwords_and_addresses_are_checked_per_station_then_per_listener() {
        let auth = DeviceAuth::new(registry(), HashMap::from([("loggers".to_owned(), "listener-pw".to_owned())]));
        let ok: IpAddr = "10.0.0.7".parse().unwrap();
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        assert!(auth.check(Protocol::Hj212, "loggers", Some(ok), &hj("LOGGER1", "s3cret")).is_ok());
        let wrong = auth.check(Protocol::Hj212, "loggers", Some(ok), &hj("LOGGER1", "123456")).unwrap_err();
        assert_eq!(wrong.kind(), "auth");
        assert_eq!(wrong.to_string(), "station \"LOGGER1\": wrong or missing password");
        let elsewhere = auth.check(Protocol::Hj212, "loggers", Some(other), &hj("LOGGER1", "s3cret")).unwrap_err();
        assert!(elsewhere.to_string().contains("connected from 10.0.0.8"), "{elsewhere}");
        // No password of its own: the listener's.
        assert!(auth.check(Protocol::Hj212, "loggers", Some(other), &hj("LOGGER2", "listener-pw")).is_ok());
        assert!(auth.check(Protocol::Hj212, "loggers", Some(other), &hj("LOGGER2", "")).is_err());
        // Over MQTT (no listener password, no address): only the station's own.
        assert!(auth.check(Protocol::Hj212, "mqtt", None, &hj("LOGGER2", "")).is_ok());
        assert!(auth.check(Protocol::Hj212, "mqtt", None, &hj("LOGGER1", "x")).is_err());
        // SL 651: the 2-byte password.
        let body = [0u8, 1, 0x17, 7, 0x18, 0x11, 0, 0x16];
        assert!(auth
            .check(Protocol::Sl651, "stations", None, &encode_uplink(5, "0011223344", 0x03E8, 0x32, &body))
            .is_ok());
        assert!(auth
            .check(Protocol::Sl651, "stations", None, &encode_uplink(5, "0011223344", 0x1234, 0x32, &body))
            .is_err());
        // Nothing configured: nothing checked.
        let open = DeviceAuth::new(Arc::new(Registry::default()), HashMap::new());
        assert!(!open.enabled());
    }
}
