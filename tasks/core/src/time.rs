//! Time as the domain sees it: whole seconds since the Unix epoch, from a [`crate::ports::Clock`]
//! (the real clock on AWS, the virtual clock of the simulator and local runner).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_secs(s: i64) -> Self {
        Self(s)
    }

    pub fn secs(self) -> i64 {
        self.0
    }

    /// `self - earlier` in seconds, never negative.
    pub fn seconds_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }

    /// `self - secs`, saturating.
    pub fn minus_secs(self, secs: u64) -> Timestamp {
        Self(
            self.0
                .saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX)),
        )
    }

    /// `self + secs`, saturating.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        Self(
            self.0
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
        )
    }

    /// RFC 3339 in UTC (`2026-11-24T21:00:00Z`), as Step Functions and DynamoDB records show time.
    pub fn to_rfc3339(self) -> String {
        let days = self.0.div_euclid(86_400);
        let rem = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl Timestamp {
    /// Reads RFC 3339 (`2027-01-15T08:03:09Z`; fractions and the zone after the seconds are
    /// ignored, as every AWS event time is UTC). `None` for anything else.
    pub fn from_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
            return None;
        }
        let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
        let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
        let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
        Some(Timestamp(
            days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + se,
        ))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The inverse of [`civil_from_days`] (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_back_to_epoch_seconds() {
        assert_eq!(
            Timestamp::from_rfc3339("1970-01-01T00:00:00Z"),
            Some(Timestamp(0))
        );
        assert_eq!(
            Timestamp::from_rfc3339("2027-01-15T08:00:00Z"),
            Some(Timestamp(1_800_000_000))
        );
        assert_eq!(
            Timestamp::from_rfc3339("2024-02-29T12:00:00.123Z"),
            Some(Timestamp(1_709_208_000))
        );
        assert_eq!(Timestamp::from_rfc3339("yesterday"), None);
        for t in [0, 951_782_400, 1_800_000_189, 4_102_444_799] {
            assert_eq!(
                Timestamp::from_rfc3339(&Timestamp(t).to_rfc3339()),
                Some(Timestamp(t))
            );
        }
    }

    #[test]
    fn formats_as_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_795_993_200).to_rfc3339(),
            "2026-11-29T23:00:00Z"
        );
        assert_eq!(Timestamp(951_782_400).to_rfc3339(), "2000-02-29T00:00:00Z");
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn differences_saturate_instead_of_going_negative() {
        assert_eq!(Timestamp(10).seconds_since(Timestamp(20)), 0);
        assert_eq!(Timestamp(20).seconds_since(Timestamp(10)), 10);
        assert_eq!(Timestamp(i64::MIN).minus_secs(5), Timestamp(i64::MIN));
    }
}
