//! [`SpillMigration`]: whether spill files move between tiers.

use std::fmt;
use std::str::FromStr;

use crate::core::{Error, Result};

/// Whether the chunk cache moves spill files between tiers by the schedule
/// (down when the first tier fills, up again ahead of use).
///
/// Off by default: the spill this engine makes (a staged rechunk's
/// intermediate) is written once and read about once, and moving it cannot
/// lessen what the slower tier reads and writes — measured 7 % slower than
/// no migration with a throttled second tier, 6 % with a page-cached disk
/// (`docs/benchmarks.md`). Turn it on where spilled chunks are read again
/// and again.
///
/// ```
/// use tenrso_ooc::memory::SpillMigration;
/// assert_eq!("always".parse::<SpillMigration>()?, SpillMigration::Always);
/// assert!(SpillMigration::Auto.pays(Some(3e9), Some(0.2e9)));
/// assert!(!SpillMigration::Auto.pays(Some(3e9), Some(2.5e9)), "about as fast");
/// assert!(SpillMigration::Auto.pays(Some(3e9), None), "not measured yet");
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpillMigration {
    /// Only where the faster tier's measured speed is at least
    /// [`SpillMigration::FASTER_BY`] times the slower one's (or either is
    /// not measured yet): a copy between tiers about as fast costs more
    /// than it saves.
    Auto,
    /// Whatever the speeds.
    Always,
    /// Never: a file stays in the tier it was written to (the tiers are
    /// still filled in order).
    #[default]
    Off,
}

impl SpillMigration {
    /// How much faster (measured) a tier must be for `Auto` to migrate.
    pub const FASTER_BY: f64 = 1.5;

    /// Whether moving files between a tier of speed `fast` and one of
    /// `slow` (bytes per second measured so far, `None` before any) pays.
    pub fn pays(self, fast: Option<f64>, slow: Option<f64>) -> bool {
        match self {
            Self::Off => false,
            Self::Always => true,
            Self::Auto => match (fast, slow) {
                (Some(fast), Some(slow)) => fast >= Self::FASTER_BY * slow,
                _ => true,
            },
        }
    }
}

impl FromStr for SpillMigration {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "always" | "on" => Ok(Self::Always),
            "off" | "never" => Ok(Self::Off),
            _ => Err(Error::invalid(format!(
                "unknown spill migration `{s}`: expected auto, always or off"
            ))),
        }
    }
}

impl fmt::Display for SpillMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Off => "off",
        })
    }
}
