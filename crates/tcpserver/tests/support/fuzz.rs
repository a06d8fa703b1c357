//! The property tests' settings (`fuzz_addresses`, `fuzz_config`).

use proptest::test_runner::Config as ProptestConfig;

/// `cases` unless `PROPTEST_CASES` asks for another number.
pub fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
