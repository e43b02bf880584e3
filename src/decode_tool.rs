//! `tidewatch decode`: check a new device's traffic before wiring it in.
//!
//! Reads raw traffic (HJ 212: one packet per line; SL 651: one hex frame per line,
//! optionally after a label and a space; JSON: one document per line), prints one JSON line
//! per reading and one per rejected input with its reason, and a summary on stderr. Needs no
//! station registry: readings are converted to canonical units and checked for physical
//! range, but stations are not looked up.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use tidewatch_ingest::json::{JsonMapping, RawReading};
use tidewatch_ingest::time::to_rfc3339;
use tidewatch_ingest::{canonical_value, Decoder, Rejection};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DecodeFormat {
    Hj212,
    Sl651,
    Senml,
    Json,
}

pub fn run(
    format: DecodeFormat,
    map: Option<PathBuf>,
    input: Option<PathBuf>,
    zone: chrono_tz::Tz,
) -> anyhow::Result<()> {
    let decoder = match format {
        DecodeFormat::Hj212 => Decoder::Hj212(tidewatch_ingest::hj212::Hj212Decoder { zone }),
        DecodeFormat::Sl651 => Decoder::Sl651(tidewatch_ingest::sl651::Sl651Decoder { zone }),
        DecodeFormat::Senml => Decoder::Senml(tidewatch_ingest::senml::SenmlDecoder::default()),
        DecodeFormat::Json => {
            let mapping = match &map {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    toml::from_str::<JsonMapping>(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None => JsonMapping::default(),
            };
            Decoder::Json(mapping.into_decoder()?)
        }
    };
    let reader: Box<dyn BufRead> = match input.as_deref() {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", p.display()))?,
        )),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut lines, mut readings, mut rejected) = (0u64, 0u64, 0u64);
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        let mut write = |value: serde_json::Value| writeln!(out, "{value}");
        let mut result = Ok(());
        decoder.decode(line, tidewatch_connectors::envelope::now_ms(), &mut |r| {
            let value = match r.and_then(|raw| reading_json(&raw)) {
                Ok(json) => {
                    readings += 1;
                    json
                }
                Err(reason) => {
                    rejected += 1;
                    rejection_json(index + 1, &reason)
                }
            };
            if result.is_ok() {
                result = write(value);
            }
        });
        result?;
    }
    out.flush()?;
    eprintln!("{lines} inputs: {readings} readings, {rejected} rejected");
    Ok(())
}

fn reading_json(raw: &RawReading<'_>) -> Result<serde_json::Value, Rejection> {
    let value = canonical_value(raw)?;
    Ok(serde_json::json!({
        "sensor": format!("{}/{}", raw.station, raw.quantity.name()),
        "station": raw.station,
        "quantity": raw.quantity.name(),
        "value": value,
        "unit": raw.quantity.canonical_unit(),
        "time": raw.time.map(to_rfc3339),
        "quality": raw.quality,
    }))
}

fn rejection_json(line: usize, reason: &Rejection) -> serde_json::Value {
    serde_json::json!({"line": line, "rejected": reason.kind(), "reason": reason.to_string()})
}
