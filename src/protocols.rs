//! The stream protocols the TCP listeners speak: framing and answers from `ingest`, behind
//! the connectors' `StreamProtocol` trait (connectors know nothing of HJ 212 or SL 651).

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use tidewatch_connectors::tcp::{Framing, StreamProtocol};
use tidewatch_ingest::framing::{scan_hj212, scan_sl651, Scan};
use tidewatch_ingest::{hj212, sl651};

fn framing(scan: Scan) -> Framing {
    match scan {
        Scan::Frame(n) => Framing::Frame(n),
        Scan::Garbage(n) => Framing::Garbage(n),
        Scan::Incomplete => Framing::Incomplete,
    }
}

/// HJ 212 data loggers: answer `CN=9014` when a packet's Flag asks for it.
pub struct Hj212Stream;

impl StreamProtocol for Hj212Stream {
    fn scan(&self, buf: &[u8]) -> Framing {
        framing(scan_hj212(buf))
    }

    fn answer(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let packet = hj212::Packet::parse(frame).ok()?;
        packet.wants_answer().then(|| hj212::answer_9014(&packet).into_bytes())
    }
}

/// SL 651 stations: confirm every report so the station does not send it again.
pub struct Sl651Stream {
    pub zone: Tz,
}

impl StreamProtocol for Sl651Stream {
    fn scan(&self, buf: &[u8]) -> Framing {
        framing(scan_sl651(buf))
    }

    fn answer(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let parsed = sl651::Frame::parse(frame).ok()?;
        if !matches!(parsed.function, 0x30..=0x36) {
            return None;
        }
        let now = chrono::Utc::now().with_timezone(&self.zone);
        let bcd = |v: u32| ((v / 10) << 4 | (v % 10)) as u8;
        let sent = [
            bcd(now.year() as u32 % 100),
            bcd(now.month()),
            bcd(now.day()),
            bcd(now.hour()),
            bcd(now.minute()),
            bcd(now.second()),
        ];
        Some(sl651::encode_confirmation(&parsed, sent))
    }
}
