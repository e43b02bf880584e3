//! What every sink counts.

use std::sync::atomic::AtomicU64;

/// A sink's outcomes, for metrics: nothing it refuses goes uncounted.
#[derive(Debug, Default)]
pub struct SinkCounts {
    /// Records the far end acknowledged.
    pub delivered: AtomicU64,
    /// Records the far end refused or that failed for good.
    pub failed: AtomicU64,
    /// Records dropped because the sink's bound was reached (the far end too slow or down).
    pub dropped: AtomicU64,
}
