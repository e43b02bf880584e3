//! `threshold`: the reading's own value against the ladder.
//!
//! Stateless: a sensor quietly below every level has no state at all.

use tidewatch_ingest::Reading;

use super::Kind;
use crate::file::Fields;

#[derive(Clone, Debug, PartialEq)]
pub struct Params;

impl Kind for Params {
    const NAME: &'static str = "threshold";
    const FIELDS: &'static [&'static str] = &[];
    const STATELESS: bool = true;
    type State = ();

    fn parse(_fields: &mut Fields<'_, '_>) -> Option<Self> {
        Some(Params)
    }

    #[inline]
    fn on_reading(&self, _state: &mut (), reading: &Reading, _sign: f64) -> Option<f64> {
        Some(reading.value)
    }
}
