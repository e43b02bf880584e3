//! Messages that devices split over several packets, put back together before decoding.
//!
//! - **HJ 212** split packets (Flag bit D, `PNUM` packets, this one `PNO`): the parts of one
//!   message share MN, QN and CN; each carries whole CP items. Once all `PNUM` are in, they
//!   become one packet (the first part's header, D cleared, the CPs joined) for the decoder.
//! - **SL 651** multi-packet frames (`SYN` with a 12-bit count and sequence, `ETB` until the
//!   last packet's `ETX`): the bodies of packets 1..count, in order, become one `STX` frame.
//!
//! Bounded: a set waits at most [`Limits::max_wait_ms`], holds at most
//! [`Limits::max_bytes`], a station has at most [`Limits::max_sets_per_station`] sets waiting
//! and all stations together [`Limits::max_sets`] (the oldest gives way): at most
//! `max_sets × max_bytes` in all. A set that cannot complete comes back as [`Incomplete`], with the parts it had,
//! to be kept as a dead letter.

use std::collections::{BTreeMap, HashMap};

use crate::hj212::{self, Packet};
use crate::sl651::{encode_uplink, Frame};

/// Which protocol's splitting a payload may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Hj212,
    Sl651,
}

/// How long and how much a set may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_wait_ms: i64,
    /// Bytes of parts per set.
    pub max_bytes: usize,
    /// Sets waiting at once, all stations together.
    pub max_sets: usize,
    /// Sets one station may have waiting.
    pub max_sets_per_station: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_wait_ms: 60_000, max_bytes: 64 * 1024, max_sets: 1024, max_sets_per_station: 8 }
    }
}

/// A set given up: what it had, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incomplete {
    pub protocol: Protocol,
    /// The station (HJ 212 MN, SL 651 address).
    pub station: String,
    pub total: u16,
    /// Part numbers received, in order.
    pub had: Vec<u16>,
    /// The raw parts received, one after the other (HJ 212 lines, SL 651 frames).
    pub parts: Vec<u8>,
    pub why: String,
}

impl Incomplete {
    pub fn message(&self) -> String {
        let what = match self.protocol {
            Protocol::Hj212 => "HJ 212 split packet",
            Protocol::Sl651 => "SL 651 multi-packet frame",
        };
        format!(
            "{what} from {}: {} of {} parts ({:?}) {}",
            self.station,
            self.had.len(),
            self.total,
            self.had,
            self.why
        )
    }
}

/// What to decode instead of a payload.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Nothing split in it: decode the payload as it is.
    Whole,
    /// Decode these bytes instead (its unsplit packets and any set it completed); empty when
    /// every packet in it is waiting for its set.
    Replaced(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    protocol: Protocol,
    station: String,
    /// HJ 212: QN and CN; SL 651: function code.
    message: String,
    total: u16,
}

struct Set {
    created: i64,
    bytes: usize,
    /// Part number → (raw part, what it contributes: an HJ 212 CP or an SL 651 body).
    parts: BTreeMap<u16, (Vec<u8>, Vec<u8>)>,
    /// What the whole message is rebuilt around: the first part's header.
    head: Head,
}

#[derive(Clone)]
enum Head {
    Hj212 {
        fields: String,
    },
    Sl651 {
        centre: u8,
        password: u16,
        function: u8,
    },
    /// Not seen yet (the first part has not arrived).
    Unknown,
}

/// The sets waiting for their parts. One per ingest task; no locking.
pub struct Reassembler {
    limits: Limits,
    sets: HashMap<Key, Set>,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Self {
        Reassembler { limits, sets: HashMap::new() }
    }

    /// Sets waiting.
    pub fn waiting(&self) -> usize {
        self.sets.len()
    }

    /// Takes a payload in; what comes back decides what the decoder sees. Sets given up on
    /// the way (too big, crowded out) are appended to `gave_up`.
    pub fn offer(&mut self, protocol: Protocol, payload: &[u8], now: i64, gave_up: &mut Vec<Incomplete>) -> Offered {
        match protocol {
            Protocol::Hj212 => self.offer_hj212(payload, now, gave_up),
            Protocol::Sl651 => self.offer_sl651(payload, now, gave_up),
        }
    }

    /// Sets that waited longer than allowed, given up.
    pub fn expire(&mut self, now: i64) -> Vec<Incomplete> {
        let max_wait = self.limits.max_wait_ms;
        let old: Vec<Key> =
            self.sets.iter().filter(|(_, s)| now - s.created > max_wait).map(|(k, _)| k.clone()).collect();
        old.into_iter()
            .filter_map(|k| {
                let set = self.sets.remove(&k)?;
                Some(incomplete(k, set, format!("did not all arrive within {} s", max_wait / 1000)))
            })
            .collect()
    }

    fn offer_hj212(&mut self, payload: &[u8], now: i64, gave_up: &mut Vec<Incomplete>) -> Offered {
        // The common case costs one scan: no split packet in the payload.
        if !payload.windows(5).any(|w| w == b"PNUM=") {
            return Offered::Whole;
        }
        let mut out = Vec::with_capacity(payload.len());
        for line in payload.split(|&b| b == b'\n') {
            let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
            if trimmed.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let packet = match Packet::parse(trimmed) {
                Ok(p) if p.is_split() && p.pnum.is_some_and(|n| n > 1) => p,
                // Unsplit, or broken: the decoder says what it makes of it.
                _ => {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                    continue;
                }
            };
            let (Some(total), Some(number)) = (packet.pnum, packet.pno) else {
                out.extend_from_slice(line);
                out.push(b'\n');
                continue;
            };
            let (total, number) = (total.min(u32::from(u16::MAX)) as u16, number.min(u32::from(u16::MAX)) as u16);
            let key = Key {
                protocol: Protocol::Hj212,
                station: packet.mn.to_owned(),
                message: format!("{}/{}", packet.qn.unwrap_or(""), packet.cn),
                total,
            };
            let head = (number == 1).then(|| Head::Hj212 { fields: hj212_fields(&packet) });
            let cp = packet.cp.as_bytes().to_vec();
            if let Some(whole) = self.add(key, number, trimmed.to_vec(), cp, head, now, gave_up) {
                out.extend_from_slice(&whole);
            }
        }
        Offered::Replaced(out)
    }

    fn offer_sl651(&mut self, payload: &[u8], now: i64, gave_up: &mut Vec<Incomplete>) -> Offered {
        // A binary frame: `7E7E`, and SYN where STX would be.
        if payload.starts_with(&[0x7E, 0x7E]) {
            if payload.get(13) != Some(&0x16) {
                return Offered::Whole;
            }
            return match self.sl651_packet(payload, now, gave_up) {
                None => Offered::Whole,
                Some(whole) => Offered::Replaced(whole.unwrap_or_default()),
            };
        }
        // Hex text, a frame per line (optionally after a label): the same, line by line.
        let Ok(text) = std::str::from_utf8(payload) else { return Offered::Whole };
        let hex_of = |line: &str| line.rsplit(' ').next().unwrap_or(line).to_owned();
        let is_syn = |h: &str| h.len() > 28 && h[..4].eq_ignore_ascii_case("7E7E") && &h[26..28] == "16";
        if !text.lines().any(|l| is_syn(&hex_of(l.trim()))) {
            return Offered::Whole;
        }
        let mut out = String::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let hex = hex_of(line);
            let bytes = crate::sl651::decode::decode_hex(&hex).ok();
            match bytes.filter(|_| is_syn(&hex)).map(|b| self.sl651_packet(&b, now, gave_up)) {
                Some(Some(Some(whole))) => {
                    out.extend(whole.iter().map(|b| format!("{b:02X}")));
                    out.push('\n');
                }
                Some(Some(None)) => {} // waiting for its set
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Offered::Replaced(out.into_bytes())
    }

    /// One SL 651 frame that may be a packet of a set: `None` if it is not (the decoder
    /// takes it as it is), else the rebuilt frame once its set is complete.
    fn sl651_packet(&mut self, bytes: &[u8], now: i64, gave_up: &mut Vec<Incomplete>) -> Option<Option<Vec<u8>>> {
        let frame = Frame::parse(bytes).ok()?; // a broken frame: the decoder says why
        let (total, number) = frame.packet.filter(|&(total, _)| total > 1)?;
        let key = Key {
            protocol: Protocol::Sl651,
            station: frame.station.clone(),
            message: format!("{:02X}", frame.function),
            total,
        };
        let head = (number == 1).then_some(Head::Sl651 {
            centre: frame.centre,
            password: frame.password,
            function: frame.function,
        });
        let body = frame.body.to_vec();
        Some(self.add(key, number, bytes.to_vec(), body, head, now, gave_up))
    }

    /// Adds a part; returns the rebuilt message once the set is complete.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        key: Key,
        number: u16,
        raw: Vec<u8>,
        content: Vec<u8>,
        head: Option<Head>,
        now: i64,
        gave_up: &mut Vec<Incomplete>,
    ) -> Option<Vec<u8>> {
        if number == 0 || number > key.total {
            gave_up.push(Incomplete {
                protocol: key.protocol,
                station: key.station,
                total: key.total,
                had: vec![number],
                parts: raw,
                why: format!("part number {number} is outside 1..={}", key.total),
            });
            return None;
        }
        if !self.sets.contains_key(&key) {
            // Crowded: the station's (or everybody's) oldest set gives way.
            let station = &key.station;
            let of_station = self.sets.keys().filter(|k| &k.station == station).count();
            let crowd = if of_station >= self.limits.max_sets_per_station {
                Some((true, format!("gave way: {of_station} sets of this station were waiting")))
            } else if self.sets.len() >= self.limits.max_sets {
                Some((false, format!("gave way: {} sets were waiting", self.sets.len())))
            } else {
                None
            };
            if let Some((same_station, why)) = crowd {
                let oldest = self
                    .sets
                    .iter()
                    .filter(|(k, _)| !same_station || &k.station == station)
                    .min_by_key(|(_, s)| s.created)
                    .map(|(k, _)| k.clone());
                if let Some(set) = oldest.and_then(|k| self.sets.remove(&k).map(|s| (k, s))) {
                    gave_up.push(incomplete(set.0, set.1, why));
                }
            }
        }
        let set = self.sets.entry(key.clone()).or_insert_with(|| Set {
            created: now,
            bytes: 0,
            parts: BTreeMap::new(),
            head: Head::Unknown,
        });
        if let Some(head) = head {
            set.head = head;
        }
        set.bytes += raw.len() + content.len();
        // A part sent again replaces the first copy.
        set.parts.insert(number, (raw, content));
        if set.bytes > self.limits.max_bytes {
            let set = self.sets.remove(&key)?;
            gave_up.push(incomplete(key, set, format!("exceeded {} bytes", self.limits.max_bytes)));
            return None;
        }
        if set.parts.len() < usize::from(key.total) {
            return None;
        }
        let set = self.sets.remove(&key)?;
        match rebuild(&key, &set) {
            Ok(whole) => Some(whole),
            Err(why) => {
                gave_up.push(incomplete(key, set, why));
                None
            }
        }
    }
}

fn incomplete(key: Key, set: Set, why: String) -> Incomplete {
    let had = set.parts.keys().copied().collect();
    let mut parts = Vec::new();
    for (raw, _) in set.parts.values() {
        parts.extend_from_slice(raw);
        if key.protocol == Protocol::Hj212 {
            parts.push(b'\n');
        }
    }
    Incomplete { protocol: key.protocol, station: key.station, total: key.total, had, parts, why }
}

/// The whole message of a complete set.
fn rebuild(key: &Key, set: &Set) -> Result<Vec<u8>, String> {
    match &set.head {
        Head::Hj212 { fields } => {
            let cps: Vec<&str> = set
                .parts
                .values()
                .map(|(_, cp)| std::str::from_utf8(cp).unwrap_or(""))
                .filter(|cp| !cp.is_empty())
                .collect();
            let data = format!("{fields}CP=&&{}&&", cps.join(";"));
            if data.len() > 9999 {
                return Err(format!("rebuilt, it would be {} bytes, more than a packet can state", data.len()));
            }
            Ok(hj212::encode(&data).into_bytes())
        }
        Head::Sl651 { centre, password, function } => {
            let body: Vec<u8> = set.parts.values().flat_map(|(_, b)| b.iter().copied()).collect();
            if body.len() > 0x0FFF {
                return Err(format!("rebuilt, its body would be {} bytes, more than a frame can state", body.len()));
            }
            Ok(encode_uplink(*centre, &key.station, *password, *function, &body))
        }
        Head::Unknown => Err("the first part never came".to_owned()),
    }
}

/// The header fields of the first part, for the rebuilt packet: Flag without D, no PNUM/PNO.
fn hj212_fields(p: &Packet<'_>) -> String {
    let mut out = String::new();
    if let Some(qn) = p.qn {
        out.push_str(&format!("QN={qn};"));
    }
    if let Some(st) = p.st {
        out.push_str(&format!("ST={st};"));
    }
    out.push_str(&format!("CN={};", p.cn));
    if let Some(pw) = p.pw {
        out.push_str(&format!("PW={pw};"));
    }
    out.push_str(&format!("MN={};", p.mn));
    if let Some(flag) = p.flag {
        out.push_str(&format!("Flag={};", flag & !2));
    }
    out
}

#[cfg(test)]
mod tests;
