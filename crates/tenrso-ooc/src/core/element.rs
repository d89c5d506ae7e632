//! Element types: the [`Element`] trait and its runtime tag [`DType`].

use std::fmt;
use std::str::FromStr;

use crate::core::{Error, Result};

/// The element type of an array, known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary64.
    F64,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// The Zarr v3 `data_type` name (`float32`, `float64`).
    pub const fn zarr_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
        }
    }

    /// The short name used on the command line (`f32`, `f64`).
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    /// Parses a Zarr v3 `data_type` name; `None` for types this library does not handle.
    pub fn from_zarr_name(name: &str) -> Option<Self> {
        match name {
            "float32" => Some(Self::F32),
            "float64" => Some(Self::F64),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

impl FromStr for DType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f64" | "float64" => Ok(Self::F64),
            other => Err(Error::invalid(format!(
                "unknown dtype `{other}` (expected f32 or f64)"
            ))),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A numeric element type the engine computes with (`f32`, `f64`).
///
/// The trait is sealed for now; half precision and complex types are meant to
/// follow by adding implementations here.
pub trait Element:
    sealed::Sealed
    + zarrs::array::Element
    + zarrs::array::ElementOwned
    + bytemuck::Pod
    + Copy
    + Default
    + PartialEq
    + PartialOrd
    + fmt::Debug
    + fmt::Display
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + std::ops::Mul<Output = Self>
    + Send
    + Sync
    + 'static
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` (exact for both supported types).
    fn to_f64(self) -> f64;
    /// The same value with its bytes in reverse order (for big-endian files).
    fn swap_bytes(self) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;

    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn swap_bytes(self) -> Self {
        f32::from_bits(self.to_bits().swap_bytes())
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;

    fn from_f64(value: f64) -> Self {
        value
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn swap_bytes(self) -> Self {
        f64::from_bits(self.to_bits().swap_bytes())
    }
}

/// Calls a generic function with the element type matching a [`DType`].
///
/// ```
/// use tenrso_ooc::{DType, Element, dispatch_dtype};
/// fn size_of<T: Element>() -> usize { std::mem::size_of::<T>() }
/// let dtype = DType::F32;
/// assert_eq!(dispatch_dtype!(dtype, T => size_of::<T>()), 4);
/// ```
#[macro_export]
macro_rules! dispatch_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dtype in [DType::F32, DType::F64] {
            assert_eq!(DType::from_zarr_name(dtype.zarr_name()), Some(dtype));
            assert_eq!(dtype.short_name().parse::<DType>().unwrap(), dtype);
        }
        assert!("int8".parse::<DType>().is_err());
        assert_eq!(DType::from_zarr_name("int8"), None);
    }

    #[test]
    fn swap_bytes_matches_big_endian_encoding() {
        let x = 1.5f64;
        let be = f64::from_ne_bytes(x.to_be_bytes());
        assert_eq!(be.swap_bytes(), x);
        let y = -2.25f32;
        assert_eq!(f32::from_ne_bytes(y.to_be_bytes()).swap_bytes(), y);
    }
}
