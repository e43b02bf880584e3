//! Decode throughput per core for each protocol, through normalisation (registry lookup,
//! unit conversion, validation) to `Reading`s — everything between a payload and the engine.
//!
//! `cargo bench --bench decode` — figures are recorded in BENCHMARKS.md.
//! Payloads are the real test vectors in `ingest/tests/data/` (sources noted there).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidewatch_ingest::hj212::Hj212Decoder;
use tidewatch_ingest::json::JsonMapping;
use tidewatch_ingest::senml::SenmlDecoder;
use tidewatch_ingest::sl651::Sl651Decoder;
use tidewatch_ingest::{Decoder, Limits, Normaliser, Registry};

const PACKETS: &str = include_str!("../ingest/tests/data/hj212_public_packets.tsv");
const FRAMES: &str = include_str!("../ingest/tests/data/sl651_frames.txt");
const SENML: &[u8] = include_bytes!("../ingest/tests/data/senml/ex3.json");

fn registry() -> Arc<Registry> {
    let ids = ["JLYP01_AIR01_0001", "ZLDSZ20210127", "0011223344", "urn:dev:ow:10e2073a0108006", "S1"];
    let toml: String = ids
        .iter()
        .map(|id| format!("[[station]]\nid = \"{id}\"\nname = \"x\"\ndomain = \"water\"\nlocation = [120.0, 30.0]\nregion = \"33\"\n"))
        .collect();
    Arc::new(Registry::from_toml_str(&toml).unwrap())
}

/// Runs `decoder` over `payloads` once per iteration; asserts the expected reading count so
/// the figure measures real decoding.
fn bench(c: &mut Criterion, name: &str, decoder: Decoder, payloads: Vec<Vec<u8>>, readings_per_pass: usize) {
    let normaliser = Normaliser::new(registry(), Limits { max_future_ms: i64::MAX / 4 });
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(readings_per_pass);
    let run = |out: &mut Vec<_>| {
        out.clear();
        for p in &payloads {
            let _rejected = normaliser.decode_into(&decoder, p, 1_700_000_000_000, out);
        }
    };
    run(&mut out);
    assert_eq!(out.len(), readings_per_pass, "{name}");
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(name, |b| b.iter(|| run(&mut out)));
    group.finish();
}

fn protocols(c: &mut Criterion) {
    // HJ 212: the 2051 air packet (11 values) and the 2025 surface-water packet (11 values,
    // 3 of them raw quantities), repeated to 1,000 packets.
    let hj: Vec<Vec<u8>> = [1usize, 10]
        .iter()
        .map(|&i| format!("{}\r\n", PACKETS.lines().nth(i).unwrap().split('\t').nth(1).unwrap()).into_bytes())
        .cycle()
        .take(1000)
        .collect();
    bench(c, "hj212", Decoder::Hj212(Hj212Decoder::default()), hj, 500 * 11 + 500 * 11);

    // SL 651: the timed (4 values) and hourly (18 values) frames as binary, 1,000 frames.
    let sl: Vec<Vec<u8>> = FRAMES
        .lines()
        .map(|l| {
            let hex = l.split(' ').nth(1).unwrap();
            (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
        })
        .cycle()
        .take(1000)
        .collect();
    bench(c, "sl651", Decoder::Sl651(Sl651Decoder::default()), sl, 500 * 4 + 500 * 18);

    // SenML: RFC 8428 example 3 (7 records: voltage, and 6 currents as a raw quantity).
    let senml: Vec<Vec<u8>> = std::iter::repeat_n(SENML.to_vec(), 1000).collect();
    bench(c, "senml", Decoder::Senml(SenmlDecoder::default()), senml, 7000);

    // Mapped JSON: single-reading documents as most devices publish them.
    let json: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"station":"S1","quantity":"water_level","value":{:.3},"unit":"m","time":{}}}"#,
                5.0 + i as f64 * 0.001,
                1_700_000_000_000i64 + i
            )
            .into_bytes()
        })
        .collect();
    bench(c, "json", Decoder::Json(JsonMapping::default().into_decoder().unwrap()), json, 1000);
}

criterion_group!(benches, protocols);
criterion_main!(benches);
