//! Pairwise summation (NumPy's scheme: blocks of 128 summed in eight lanes,
//! halves combined recursively), over a whole slice ([`pairwise`]) or over
//! elements arriving in pieces ([`PairwiseStream`]: the same tree, so the
//! same bits, whatever the pieces).

use crate::core::Element;

/// Leaves of the tree hold at most this many elements.
const LEAF: usize = 128;

/// Where the tree splits a node of `len` elements.
fn split(len: usize) -> usize {
    (len / 2).next_multiple_of(8)
}

/// One leaf: eight lanes, then the remainder in order.
fn leaf<T: Element, F: Fn(f64) -> f64>(v: &[T], f: &F) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += f(x.to_f64());
        }
    }
    let mut s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for x in chunks.remainder() {
        s += f(x.to_f64());
    }
    s
}

/// Pairwise sum of `f(v)` over `v`.
pub(crate) fn pairwise<T: Element, F: Fn(f64) -> f64 + Copy>(v: &[T], f: F) -> f64 {
    if v.len() <= LEAF {
        leaf(v, &f)
    } else {
        let mid = split(v.len());
        pairwise(&v[..mid], f) + pairwise(&v[mid..], f)
    }
}

/// A node of the tree being summed: its length, and its left half's sum
/// once that is known.
struct Frame {
    len: usize,
    left: Option<f64>,
}

/// [`pairwise`] over `len` elements fed in pieces of any size, bitwise equal
/// to `pairwise` over them all: the tree is walked in the same order, a
/// leaf at a time, with at most one leaf of elements carried between pieces.
pub(crate) struct PairwiseStream<T, F> {
    f: F,
    /// The nodes above the leaf being filled, from the root.
    stack: Vec<Frame>,
    /// Elements of the leaf being filled (it straddles two pieces).
    carry: Vec<T>,
    /// Length of the leaf being filled.
    leaf_len: usize,
    /// The total, once every element has arrived.
    total: Option<f64>,
}

impl<T: Element, F: Fn(f64) -> f64> PairwiseStream<T, F> {
    /// A sum of `f` over `len` elements to come.
    pub(crate) fn new(len: usize, f: F) -> Self {
        let mut stream = Self {
            f,
            stack: Vec::new(),
            carry: Vec::with_capacity(LEAF),
            leaf_len: 0,
            total: None,
        };
        if len == 0 {
            stream.total = Some(0.0);
        } else {
            stream.descend(len);
        }
        stream
    }

    /// Walks down the left edge of a node of `len` elements to its first
    /// leaf.
    fn descend(&mut self, mut len: usize) {
        while len > LEAF {
            self.stack.push(Frame { len, left: None });
            len = split(len);
        }
        self.leaf_len = len;
    }

    /// Combines a finished leaf's sum up the tree, then walks down to the
    /// next leaf.
    fn finish_leaf(&mut self, mut value: f64) {
        loop {
            match self.stack.last_mut() {
                None => {
                    self.total = Some(value);
                    self.leaf_len = 0;
                    return;
                }
                Some(frame) => match frame.left {
                    None => {
                        frame.left = Some(value);
                        let right = frame.len - split(frame.len);
                        self.descend(right);
                        return;
                    }
                    Some(left) => {
                        value += left; // left + right: addition commutes exactly
                        self.stack.pop();
                    }
                },
            }
        }
    }

    /// Feeds the next elements, in order.
    pub(crate) fn feed(&mut self, mut v: &[T]) {
        while !v.is_empty() && self.total.is_none() {
            if self.carry.is_empty() && v.len() >= self.leaf_len {
                let (now, rest) = v.split_at(self.leaf_len);
                let value = leaf(now, &self.f);
                v = rest;
                self.finish_leaf(value);
            } else {
                let take = (self.leaf_len - self.carry.len()).min(v.len());
                self.carry.extend_from_slice(&v[..take]);
                v = &v[take..];
                if self.carry.len() == self.leaf_len {
                    let value = leaf(&self.carry, &self.f);
                    self.carry.clear();
                    self.finish_leaf(value);
                }
            }
        }
    }

    /// The sum, once all `len` elements have been fed (`None` before).
    pub(crate) fn total(&self) -> Option<f64> {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::fuzz_config::fuzz_config(256))]

        /// Any split into pieces gives pairwise's bits.
        #[test]
        fn streamed_sums_equal_pairwise(
            values in prop::collection::vec(-1e6f64..1e6, 0..5000),
            cuts in prop::collection::vec(0usize..700, 0..20),
        ) {
            let mut stream = PairwiseStream::new(values.len(), |x: f64| x * x);
            let mut rest = &values[..];
            for cut in cuts {
                let (piece, tail) = rest.split_at(cut.min(rest.len()));
                stream.feed(piece);
                rest = tail;
            }
            stream.feed(rest);
            prop_assert_eq!(
                stream.total().map(f64::to_bits),
                Some(pairwise(&values, |x: f64| x * x).to_bits())
            );
        }
    }
}
