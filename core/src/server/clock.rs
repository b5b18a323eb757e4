//! Wall-clock arithmetic without reading a clock, and the seeded generator.
//!
//! The runtime gives the connection one 64-bit NTP timestamp for one
//! [`Instant`](std::time::Instant); every later wall-clock value (RTCP sender
//! reports, the `Date` header) is that plus elapsed monotonic time. Random
//! values (session id, SSRCs, initial sequence numbers and timestamps) come
//! from a runtime-supplied seed through SplitMix64, so replays are exact.

use std::time::Duration;

use crate::rtcp::NTP_UNIX_OFFSET_SECONDS;

/// `ntp` advanced by `d` (64-bit NTP: 32.32 fixed point seconds), wrapping
/// like NTP does at era boundaries.
pub(super) fn ntp_add(ntp: u64, d: Duration) -> u64 {
    let fraction = ((u128::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u64;
    ntp.wrapping_add(d.as_secs().wrapping_shl(32)).wrapping_add(fraction)
}

/// RFC 1123 date (`Sun, 06 Nov 1994 08:49:37 GMT`) of an NTP timestamp;
/// `None` for a zero timestamp (the runtime does not know the time) or one
/// before 1970.
pub(super) fn http_date(ntp: u64) -> Option<String> {
    let secs = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET_SECONDS)?;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    Some(format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Gregorian (year, month 1..=12, day 1..=31) of a day count since
/// 1970-01-01, by counting 400-year eras of 146097 days starting on 1 March.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

pub(super) use crate::rand::SplitMix64;

#[cfg(test)]
mod tests {
    use super::*;

    fn ntp_of_unix(secs: u64) -> u64 {
        (secs + NTP_UNIX_OFFSET_SECONDS) << 32
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(ntp_of_unix(0)).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(ntp_of_unix(784_111_777)).unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(ntp_of_unix(951_782_400)).unwrap(),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            http_date(ntp_of_unix(1_709_210_096)).unwrap(),
            "Thu, 29 Feb 2024 12:34:56 GMT"
        );
        assert_eq!(http_date(0), None);
        assert_eq!(http_date(5 << 32), None);
        // The last second of NTP era 0 still formats.
        assert_eq!(http_date(u64::MAX).unwrap(), "Thu, 07 Feb 2036 06:28:15 GMT");
    }

    #[test]
    fn ntp_arithmetic() {
        let t = ntp_of_unix(1000);
        assert_eq!(ntp_add(t, Duration::from_millis(1500)), t + (1 << 32) + (1 << 31));
        assert_eq!(ntp_add(u64::MAX, Duration::from_secs(1)), (1u64 << 32) - 1);
    }

    #[test]
    fn splitmix_is_deterministic_and_mixes() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_ne!(SplitMix64::new(2).next_u64(), xs[0]);
    }
}
