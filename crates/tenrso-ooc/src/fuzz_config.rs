//! The proptest configuration of the library's fuzz properties: a bounded
//! number of cases in the test suite, `PROPTEST_CASES` in the long mode
//! (docs/testing.md).

/// `cases` per property, or `PROPTEST_CASES` when set.
pub(crate) fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
