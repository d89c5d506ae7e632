//! [`ByteSize`]: byte counts as people write them (`512MiB`, `4GiB`).

use std::fmt;
use std::str::FromStr;

use crate::core::{Error, Result};

/// A number of bytes that parses from and prints as `512MiB`, `4GiB`, `1.5GB`
/// or plain `1048576`.
///
/// Binary suffixes (`KiB`, `MiB`, `GiB`, `TiB`, `PiB`, `EiB`, and the
/// shorthand `K`, `M`, `G`, `T`, `P`) are powers of 1024; decimal ones (`kB`,
/// `MB`, `GB`, `TB`, `PB`, `EB`) powers of 1000. Display always uses binary
/// units.
///
/// ```
/// use tenrso_ooc::ByteSize;
/// assert_eq!("512MiB".parse::<ByteSize>().unwrap().0, 512 << 20);
/// assert_eq!("1.5GB".parse::<ByteSize>().unwrap().0, 1_500_000_000);
/// assert_eq!(ByteSize(3 << 30).to_string(), "3.00 GiB");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let bad = || {
            Error::invalid(format!(
                "bad size `{s}`: expected a number with an optional unit, like 512MiB, 4GiB or 1048576"
            ))
        };
        let number = number.replace('_', "");
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "p" | "pib" => 1 << 50,
            "eib" => 1 << 60,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "pb" => 1_000_000_000_000_000,
            "eb" => 1_000_000_000_000_000_000,
            _ => return Err(bad()),
        };
        // Whole numbers exactly (f64 would round past 2^53); fractions in f64.
        if !number.contains('.') {
            let whole: u64 = number.parse().map_err(|_| bad())?;
            return whole.checked_mul(multiplier).map(Self).ok_or_else(bad);
        }
        let number: f64 = number.parse().map_err(|_| bad())?;
        let bytes = number * multiplier as f64;
        // Up to 2⁶⁴ (what `16.00 EiB` shows for the largest sizes), saturating.
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Self(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.2} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let p = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(p("1048576").unwrap(), 1 << 20);
        assert_eq!(p("64KiB").unwrap(), 64 << 10);
        assert_eq!(p("64k").unwrap(), 64 << 10);
        assert_eq!(p("2 GiB").unwrap(), 2 << 30);
        assert_eq!(p("4gib").unwrap(), 4 << 30);
        assert_eq!(p("10MB").unwrap(), 10_000_000);
        assert!(p("12parsecs").is_err());
        assert!(p("").is_err());
        assert!(p("-5MiB").is_err());
        assert_eq!(p("2PiB").unwrap(), 2 << 50);
        assert_eq!(p("1EiB").unwrap(), 1 << 60);
        // The largest size shows as 16.00 EiB and reads back saturated.
        assert_eq!(ByteSize(u64::MAX).to_string(), "16.00 EiB");
        assert_eq!(p("16.00 EiB").unwrap(), u64::MAX);
        assert!(p("17EiB").is_err());
    }

    #[test]
    fn displays_binary_units() {
        assert_eq!(ByteSize(100).to_string(), "100 B");
        assert_eq!(ByteSize(1536).to_string(), "1.50 KiB");
        assert_eq!(ByteSize(64 << 20).to_string(), "64.00 MiB");
    }
}
