//! NaN-propagating minimum and maximum (`f64::min`/`max` ignore NaN).

/// The smaller of `a` and `b`, or NaN if either is NaN (like NumPy's `min`).
pub fn min_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// The larger of `a` and `b`, or NaN if either is NaN (like NumPy's `max`).
pub fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_sticks() {
        assert!(max_nan(max_nan(0.0, f64::NAN), 1.0).is_nan());
        assert!(min_nan(1.0, f64::NAN).is_nan());
        assert_eq!((min_nan(1.0, 2.0), max_nan(1.0, 2.0)), (1.0, 2.0));
    }
}
