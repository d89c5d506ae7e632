//! [`Shape`] of an array and [`Region`]s inside it.

use std::fmt;
use std::str::FromStr;

use crate::core::{Error, Result};

/// The extent of an array along each axis, in elements. Axis 0 is the slowest
/// varying (C order).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Shape(Vec<u64>);

impl Shape {
    /// A shape from its extents.
    pub fn new(dims: impl Into<Vec<u64>>) -> Self {
        Self(dims.into())
    }

    /// The extents.
    pub fn dims(&self) -> &[u64] {
        &self.0
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a 0-d shape).
    ///
    /// # Panics
    /// If the product overflows `u64`; shapes that reach a store or a file are
    /// checked with [`Shape::checked_num_elements`] first.
    pub fn num_elements(&self) -> u64 {
        self.checked_num_elements()
            .expect("shape element count overflows u64")
    }

    /// Number of elements, or `None` if it overflows `u64`.
    pub fn checked_num_elements(&self) -> Option<u64> {
        self.0.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// C-order strides in elements.
    pub fn strides(&self) -> Vec<u64> {
        let mut strides = vec![1u64; self.0.len()];
        for axis in (0..self.0.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * self.0[axis + 1];
        }
        strides
    }

    /// The C-order linear position of `index`.
    pub fn linear_index(&self, index: &[u64]) -> u64 {
        debug_assert_eq!(index.len(), self.0.len());
        index
            .iter()
            .zip(&self.0)
            .fold(0u64, |acc, (&i, &d)| acc * d + i)
    }

    /// The multi-index of the C-order linear position `linear`.
    pub fn unravel(&self, mut linear: u64) -> Vec<u64> {
        let mut index = vec![0u64; self.0.len()];
        for axis in (0..self.0.len()).rev() {
            let d = self.0[axis].max(1);
            index[axis] = linear % d;
            linear /= d;
        }
        index
    }
}

impl From<Vec<u64>> for Shape {
    fn from(dims: Vec<u64>) -> Self {
        Self(dims)
    }
}

impl From<&[u64]> for Shape {
    fn from(dims: &[u64]) -> Self {
        Self(dims.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", join_dims(&self.0))
    }
}

impl FromStr for Shape {
    type Err = Error;

    /// Parses `4096,4096` (or `4096x4096`).
    fn from_str(s: &str) -> Result<Self> {
        parse_dims(s).map(Self)
    }
}

/// Parses a comma- (or `x`-) separated list of non-negative integers.
pub(crate) fn parse_dims(s: &str) -> Result<Vec<u64>> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Error::invalid("empty shape: give extents like 4096,4096"));
    }
    s.split([',', 'x', '×'])
        .map(|part| {
            let part = part.trim();
            part.replace('_', "").parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "bad extent `{part}` in `{s}`: expected comma-separated integers like 4096,4096"
                ))
            })
        })
        .collect()
}

/// Formats extents as `4096x4096` (`scalar` for 0-d).
pub(crate) fn join_dims(dims: &[u64]) -> String {
    if dims.is_empty() {
        return "scalar".to_string();
    }
    dims.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// A box-shaped part of an array: a start index and an extent per axis.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Region {
    start: Vec<u64>,
    shape: Vec<u64>,
}

impl Region {
    /// The region of extent `shape` starting at `start`.
    ///
    /// # Panics
    /// If `start` and `shape` have different lengths.
    pub fn new(start: impl Into<Vec<u64>>, shape: impl Into<Vec<u64>>) -> Self {
        let (start, shape) = (start.into(), shape.into());
        assert_eq!(
            start.len(),
            shape.len(),
            "region start and shape ranks differ"
        );
        Self { start, shape }
    }

    /// The region `start..end` (end exclusive) along each axis.
    ///
    /// # Panics
    /// If the ranks differ or some `end < start`.
    pub fn from_bounds(start: &[u64], end: &[u64]) -> Self {
        assert_eq!(start.len(), end.len(), "region start and end ranks differ");
        let shape = start
            .iter()
            .zip(end)
            .map(|(&s, &e)| e.checked_sub(s).expect("region end before start"))
            .collect::<Vec<_>>();
        Self::new(start.to_vec(), shape)
    }

    /// The whole of an array of `shape`.
    pub fn full(shape: &[u64]) -> Self {
        Self::new(vec![0; shape.len()], shape.to_vec())
    }

    /// First index along each axis.
    pub fn start(&self) -> &[u64] {
        &self.start
    }

    /// Extent along each axis.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// One past the last index along each axis.
    pub fn end(&self) -> Vec<u64> {
        self.start
            .iter()
            .zip(&self.shape)
            .map(|(s, n)| s + n)
            .collect()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements inside.
    pub fn num_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// True when the region holds no element.
    pub fn is_empty(&self) -> bool {
        self.shape.contains(&0)
    }

    /// The overlap of two regions, `None` when they do not overlap.
    pub fn intersect(&self, other: &Region) -> Option<Region> {
        assert_eq!(self.ndim(), other.ndim(), "region ranks differ");
        let start: Vec<u64> = self
            .start
            .iter()
            .zip(&other.start)
            .map(|(a, b)| *a.max(b))
            .collect();
        let end: Vec<u64> = self
            .end()
            .iter()
            .zip(other.end())
            .map(|(a, b)| *a.min(&b))
            .collect();
        if start.iter().zip(&end).any(|(s, e)| s >= e) {
            return None;
        }
        Some(Region::from_bounds(&start, &end))
    }

    /// True when `other` lies entirely inside this region.
    pub fn contains(&self, other: &Region) -> bool {
        self.ndim() == other.ndim()
            && self.start.iter().zip(&other.start).all(|(s, o)| o >= s)
            && self.end().iter().zip(other.end()).all(|(e, o)| o <= *e)
    }

    /// The same region with coordinates measured from `origin` instead of 0.
    ///
    /// # Panics
    /// If the region starts before `origin` on some axis.
    pub fn relative_to(&self, origin: &[u64]) -> Region {
        let start = self
            .start
            .iter()
            .zip(origin)
            .map(|(s, o)| s.checked_sub(*o).expect("region starts before origin"))
            .collect::<Vec<_>>();
        Region::new(start, self.shape.clone())
    }

    /// Checks that the region lies inside an array of `shape`.
    pub fn check_within(&self, shape: &[u64]) -> Result<()> {
        if self.ndim() != shape.len() || !Region::full(shape).contains(self) {
            return Err(Error::invalid(format!(
                "region starting at {:?} with extent {:?} does not fit in shape {}",
                self.start,
                self.shape,
                join_dims(shape)
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .start
            .iter()
            .zip(self.end())
            .map(|(s, e)| format!("{s}..{e}"))
            .collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let s: Shape = "4096, 512,3".parse().unwrap();
        assert_eq!(s.dims(), &[4096, 512, 3]);
        assert_eq!(s.to_string(), "4096x512x3");
        assert_eq!("7x8".parse::<Shape>().unwrap().dims(), &[7, 8]);
        assert!("".parse::<Shape>().is_err());
        assert!("4,-1".parse::<Shape>().is_err());
        assert!("4,,1".parse::<Shape>().is_err());
    }

    #[test]
    fn linear_index_round_trips() {
        let s = Shape::new(vec![3, 4, 5]);
        assert_eq!(s.strides(), vec![20, 5, 1]);
        for linear in 0..60 {
            assert_eq!(s.linear_index(&s.unravel(linear)), linear);
        }
        assert_eq!(s.linear_index(&[2, 3, 4]), 59);
        assert_eq!(Shape::new(vec![]).num_elements(), 1);
        assert_eq!(Shape::new(vec![u64::MAX, 2]).checked_num_elements(), None);
    }

    #[test]
    fn region_intersection_and_containment() {
        let a = Region::new(vec![0, 0], vec![4, 4]);
        let b = Region::new(vec![2, 3], vec![4, 4]);
        let c = a.intersect(&b).unwrap();
        assert_eq!(c, Region::new(vec![2, 3], vec![2, 1]));
        assert!(a.contains(&c) && b.contains(&c));
        assert!(a.intersect(&Region::new(vec![4, 0], vec![1, 1])).is_none());
        assert_eq!(c.relative_to(&[2, 2]).start(), &[0, 1]);
        assert!(c.check_within(&[4, 4]).is_ok());
        assert!(b.check_within(&[4, 4]).is_err());
        assert_eq!(c.to_string(), "[2..4, 3..4]");
    }
}
