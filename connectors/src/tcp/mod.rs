//! TCP listeners for devices that connect to the platform and stream frames (HJ 212 data
//! loggers, SL 651 telemetry stations).
//!
//! The listener is generic: a [`StreamProtocol`] says where frames begin and end and what
//! to answer. Each frame becomes an [`Envelope`](crate::Envelope) whose acknowledgement is
//! the answer, written back only after the frame's readings have been handed on. Bytes that
//! are no frame become envelopes with a `framing_error`, so they are kept as dead letters.

mod listener;

pub use listener::{start, TcpListenerConfig, TcpSource, TcpStatus};

/// What the start of a connection's buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A whole frame of this many bytes.
    Frame(usize),
    /// This many bytes that cannot start a frame.
    Garbage(usize),
    /// Not enough bytes yet.
    Incomplete,
}

/// A framed protocol over a byte stream.
pub trait StreamProtocol: Send + Sync + 'static {
    fn scan(&self, buf: &[u8]) -> Framing;
    /// The answer the device expects for a frame, if any.
    fn answer(&self, frame: &[u8]) -> Option<Vec<u8>>;
}
