//! [`ModelMemory`]: what a decomposition holds in memory besides the
//! streamed tensor — factors, Gram matrices, core, MTTKRP and projection
//! results, solver workspace — counted from the shape and ranks before
//! anything is allocated, and refused with the numbers when it cannot fit.

use crate::core::{ByteSize, Error, Result};

/// The parts of a decomposition's in-memory state, in bytes (saturating:
/// sizes from input never overflow, they only grow past any limit).
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelMemory {
    parts: Vec<(&'static str, u64)>,
}

impl ModelMemory {
    /// Adds `elements` f64 values held as `what`.
    pub(crate) fn add(&mut self, what: &'static str, elements: u64) -> &mut Self {
        self.parts.push((what, elements.saturating_mul(8)));
        self
    }

    /// The bytes of every part together.
    pub(crate) fn total(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes))
    }

    /// Refuses `method` when its parts plus `task_bytes` (the least a
    /// streamed pass holds at once) exceed `limit`.
    ///
    /// # Errors
    /// [`Error::MemoryLimit`] naming every part and its size.
    pub(crate) fn check(&self, method: &str, task_bytes: u64, limit: u64) -> Result<()> {
        let required = self.total().saturating_add(task_bytes);
        if required <= limit {
            return Ok(());
        }
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(what, bytes)| format!("{what} {}", ByteSize(*bytes)))
            .chain([format!("one streamed chunk {}", ByteSize(task_bytes))])
            .collect();
        Err(Error::MemoryLimit {
            remedy: crate::core::Remedy::LowerRank,
            limit,
            required,
            what: format!("{method}, holding {}", parts.join(", ")),
        })
    }
}

/// The product of `values`, saturating.
pub(crate) fn saturating_product(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(1u64, u64::saturating_mul)
}

/// The sum of `values`, saturating.
pub(crate) fn saturating_sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_every_part() {
        let mut m = ModelMemory::default();
        m.add("factors", 1 << 20).add("Gram matrices", u64::MAX);
        assert_eq!(m.total(), u64::MAX);
        let err = m.check("CP-ALS of rank 3", 4096, 1 << 30).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("factors 8.00 MiB") && text.contains("one streamed chunk"),
            "{text}"
        );
        let mut small = ModelMemory::default();
        small.add("factors", 100);
        small.check("x", 100, 1000).unwrap();
        assert_eq!(saturating_product([u64::MAX, 2]), u64::MAX);
        assert_eq!(saturating_sum([u64::MAX, 2]), u64::MAX);
    }
}
