//! Which decoder handles which MQTT topic.

use rustc_hash::FxHashMap;
use tidewatch_ingest::Decoder;

use crate::config::{Format, Route};

/// Routes in configuration order; the first whose filter matches a topic wins.
pub struct Router {
    routes: Vec<(String, String, Decoder, bool)>,
    /// TCP listeners by name: each speaks one protocol (and whether it may reorder).
    listeners: Vec<(&'static str, Decoder, bool)>,
    /// Topic → route index; devices repeat their topics, so matching is done once per topic.
    cache: FxHashMap<String, Option<usize>>,
}

const CACHE_LIMIT: usize = 200_000;

impl Router {
    pub fn new(routes: &[Route], listeners: Vec<(&'static str, Decoder, bool)>) -> anyhow::Result<Router> {
        let routes = routes
            .iter()
            .map(|r| {
                let decoder = match r.format {
                    Format::Json => Decoder::Json(r.json.clone().into_decoder()?),
                    Format::Hj212 => Decoder::Hj212(tidewatch_ingest::hj212::Hj212Decoder { zone: r.time_zone }),
                    Format::Sl651 => Decoder::Sl651(tidewatch_ingest::sl651::Sl651Decoder { zone: r.time_zone }),
                    Format::Senml => Decoder::Senml(tidewatch_ingest::senml::SenmlDecoder { mapping: r.senml.clone() }),
                };
                Ok((r.name.clone(), r.filter.clone(), decoder, r.reorder))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Router { routes, listeners, cache: FxHashMap::default() })
    }

    pub fn filters(&self) -> Vec<String> {
        self.routes.iter().map(|(_, f, _, _)| f.clone()).collect()
    }

    /// The route (or listener) name, decoder and `reorder` for a message from `source` on
    /// `topic`.
    pub fn route_envelope(&mut self, source: &str, topic: &str) -> Option<(&str, &Decoder, bool)> {
        if source == "mqtt" {
            return self.route(topic);
        }
        self.listeners.iter().find(|(name, _, _)| *name == source).map(|(name, d, r)| (*name, d, *r))
    }

    /// The route name, decoder and `reorder` for an MQTT topic, if any route matches.
    pub fn route(&mut self, topic: &str) -> Option<(&str, &Decoder, bool)> {
        let index = match self.cache.get(topic) {
            Some(&i) => i,
            None => {
                let i = self.routes.iter().position(|(_, filter, _, _)| rumqttc::matches(topic, filter));
                if self.cache.len() >= CACHE_LIMIT {
                    self.cache.clear();
                }
                self.cache.insert(topic.to_owned(), i);
                i
            }
        };
        index.map(|i| (self.routes[i].0.as_str(), &self.routes[i].2, self.routes[i].3))
    }
}
