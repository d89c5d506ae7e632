//! The default chunking of a contraction step's result.

use std::collections::BTreeMap;

use crate::plan::StepOperand;
use crate::plan::contraction_step::product;
use crate::plan::einsum_spec::Label;

/// The default chunking of a step's result: along each index the chunk of
/// the first operand axis carrying it, the largest extent halved until a
/// chunk holds at most `target_bytes`.
pub(super) fn default_output_chunks(
    inputs: &[StepOperand],
    output: &[Label],
    sizes: &BTreeMap<Label, u64>,
    itemsize: u64,
    target_bytes: u64,
) -> Vec<u64> {
    if output.is_empty() {
        return vec![1];
    }
    let mut chunks: Vec<u64> = output
        .iter()
        .map(|l| {
            inputs
                .iter()
                .find_map(|op| {
                    op.labels
                        .iter()
                        .position(|a| *a == Some(*l))
                        .map(|axis| op.chunks[axis])
                })
                .unwrap_or(1)
                .min(sizes[l])
        })
        .collect();
    while product(chunks.iter().copied()).saturating_mul(itemsize) > target_bytes {
        let (axis, &largest) = chunks
            .iter()
            .enumerate()
            .max_by_key(|&(k, &c)| (c, std::cmp::Reverse(k)))
            .expect("non-empty");
        if largest <= 1 {
            break;
        }
        chunks[axis] = largest.div_ceil(2);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::contraction_step::tests::{labels, op, sizes};

    #[test]
    fn default_output_chunks_follow_the_operands() {
        let c = default_output_chunks(
            &[op("ij", &[4096, 4096], &[512, 256])],
            &labels("ji"),
            &sizes(&[('i', 4096), ('j', 4096)]),
            8,
            8 << 20,
        );
        assert_eq!(c, vec![256, 512]);
        let c = default_output_chunks(
            &[op("ij", &[4096, 4096], &[4096, 4096])],
            &labels("ij"),
            &sizes(&[('i', 4096), ('j', 4096)]),
            8,
            8 << 20,
        );
        assert_eq!(c, vec![1024, 1024]);
    }
}
