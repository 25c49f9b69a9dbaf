//! Histogram bucket boundaries.

/// Bucket boundaries in seconds, for every histogram whose unit is `s`
/// (`*.duration`): the explicit boundaries the stable HTTP semantic
/// conventions advise for request durations, 5 ms to 10 s. The SDK's
/// default boundaries (0, 5, 10, 25, ... 10 000) are meant for
/// milliseconds; applied to seconds they would put every request under 5 s
/// in one bucket, leaving latency percentiles meaningless.
///
/// ```
/// use telemetry_api::SECONDS_BUCKETS;
/// assert_eq!(SECONDS_BUCKETS.first(), Some(&0.005));
/// assert_eq!(SECONDS_BUCKETS.last(), Some(&10.0));
/// ```
pub const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[cfg(test)]
mod tests {
    use super::SECONDS_BUCKETS;

    #[test]
    fn seconds_buckets_are_positive_and_strictly_increasing() {
        assert!(!SECONDS_BUCKETS.is_empty());
        assert!(SECONDS_BUCKETS.iter().all(|b| b.is_finite() && *b > 0.0));
        for pair in SECONDS_BUCKETS.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?} not strictly increasing");
        }
        // Seconds, not milliseconds: a 10 s request still lands in a bucket.
        assert_eq!(SECONDS_BUCKETS.last(), Some(&10.0));
    }
}
