//! Human times: every time nido shows a person (logs, audit details, the
//! CLI, the API) is an ISO 8601 UTC time to the millisecond. One formatter,
//! here at the bottom of the crates that show times, so the network's own
//! event texts ([`crate::events::EventRecord`]) use it too.

/// `secs` after the Unix epoch as [`iso8601`], for a number that came from
/// outside (a device's clock): one the platform's time cannot hold is
/// shown as the number, never a panic.
pub fn iso8601_unix(secs: u64) -> String {
    match std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)) {
        Some(t) => iso8601(t),
        None => format!("{secs} s after 1970-01-01T00:00:00Z"),
    }
}

/// `t` as an ISO 8601 UTC time to the millisecond (`2026-12-06T04:46:16.123Z`),
/// the form every human-facing time of nido takes.
pub fn iso8601(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date (the era-based
    // civil-from-days conversion: 400-year eras of 146,097 days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601_unix(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_unix(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_unix(1_796_601_600), "2026-12-07T00:00:00.000Z");
        assert!(iso8601_unix(u64::MAX).contains("after 1970"));
    }
}
