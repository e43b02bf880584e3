//! The national four-colour warning levels.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// China's early-warning colours, least to most severe: blue (IV), yellow (III),
/// orange (II), red (I). `Ord` follows severity, so `Red > Blue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Blue,
    Yellow,
    Orange,
    Red,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Blue, Severity::Yellow, Severity::Orange, Severity::Red];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Blue => "blue",
            Severity::Yellow => "yellow",
            Severity::Orange => "orange",
            Severity::Red => "red",
        }
    }

    /// The Roman-numeral response level (IV general … I extremely severe).
    pub fn level(self) -> &'static str {
        match self {
            Severity::Blue => "IV",
            Severity::Yellow => "III",
            Severity::Orange => "II",
            Severity::Red => "I",
        }
    }

    /// 蓝色/黄色/橙色/红色预警.
    pub fn chinese(self) -> &'static str {
        match self {
            Severity::Blue => "蓝色",
            Severity::Yellow => "黄色",
            Severity::Orange => "橙色",
            Severity::Red => "红色",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Severity::ALL.into_iter().find(|v| v.name() == s).ok_or(())
    }
}
