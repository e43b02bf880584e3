//! Which decoder handles what a source delivers: by topic (MQTT filters, Kafka topic names),
//! or one format for the whole source (TCP listeners, files).

use rustc_hash::FxHashMap;
use tidewatch_ingest::Decoder;

use crate::config::{Format, Route};
use crate::sources::Decoding;

/// How one envelope decodes.
pub struct Routed<'a> {
    /// The route's name (the source's, for a one-format source).
    pub name: &'a str,
    pub decoder: &'a Decoder,
    pub reorder: bool,
    /// The payload is lines, each decoded alone (JSON lines).
    pub lines: bool,
}

enum Routing {
    Topics {
        /// (name, filter or topic, decoder, reorder), in configuration order: the first match wins.
        routes: Vec<(String, String, Decoder, bool)>,
        /// MQTT filters (`+`, `#`); otherwise exact topic names.
        wildcards: bool,
        /// Topic → route index; devices repeat their topics, so matching is done once per topic.
        cache: FxHashMap<String, Option<usize>>,
    },
    Fixed {
        name: &'static str,
        decoder: Decoder,
        reorder: bool,
        lines: bool,
    },
}

/// Every source's routing.
pub struct Router {
    sources: Vec<(&'static str, Routing)>,
}

const CACHE_LIMIT: usize = 200_000;

impl Router {
    pub fn new(sources: Vec<(&'static str, Decoding)>) -> anyhow::Result<Router> {
        let sources = sources
            .into_iter()
            .map(|(source, decoding)| {
                let routing = match decoding {
                    Decoding::Routes { routes, wildcards } => Routing::Topics {
                        routes: routes.iter().map(route_decoder).collect::<anyhow::Result<_>>()?,
                        wildcards,
                        cache: FxHashMap::default(),
                    },
                    Decoding::Fixed { decoder, reorder, lines } => {
                        Routing::Fixed { name: source, decoder, reorder, lines }
                    }
                };
                Ok((source, routing))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Router { sources })
    }

    /// How a message from `source` on `topic` decodes, if any route takes it.
    pub fn route_envelope(&mut self, source: &str, topic: &str) -> Option<Routed<'_>> {
        let (_, routing) = self.sources.iter_mut().find(|(name, _)| std::ptr::eq(*name, source) || *name == source)?;
        match routing {
            Routing::Fixed { name, decoder, reorder, lines } => {
                Some(Routed { name, decoder, reorder: *reorder, lines: *lines })
            }
            Routing::Topics { routes, wildcards, cache } => {
                let index = match cache.get(topic) {
                    Some(&i) => i,
                    None => {
                        let i = routes.iter().position(|(_, filter, _, _)| {
                            if *wildcards {
                                rumqttc::matches(topic, filter)
                            } else {
                                topic == filter
                            }
                        });
                        if cache.len() >= CACHE_LIMIT {
                            cache.clear();
                        }
                        cache.insert(topic.to_owned(), i);
                        i
                    }
                };
                index.map(|i| {
                    let (name, _, decoder, reorder) = &routes[i];
                    Routed { name, decoder, reorder: *reorder, lines: false }
                })
            }
        }
    }
}

fn route_decoder(r: &Route) -> anyhow::Result<(String, String, Decoder, bool)> {
    let decoder = match r.format {
        Format::Json => Decoder::Json(r.json.clone().into_decoder()?),
        Format::Hj212 => Decoder::Hj212(tidewatch_ingest::hj212::Hj212Decoder { zone: r.time_zone }),
        Format::Sl651 => Decoder::Sl651(tidewatch_ingest::sl651::Sl651Decoder { zone: r.time_zone }),
        Format::Senml => Decoder::Senml(tidewatch_ingest::senml::SenmlDecoder { mapping: r.senml.clone() }),
    };
    Ok((r.name.clone(), r.filter.clone(), decoder, r.reorder))
}
