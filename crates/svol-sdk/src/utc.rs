//! Unix seconds as a UTC calendar time, for what svol shows people (the
//! CLI's file names, the dashboard's tables) without a date crate.

/// A moment in UTC, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    pub fn from_unix(secs: i64) -> Self {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::UtcTime;

    #[test]
    fn known_moments() {
        let t = |y, mo, d, h, mi, s| UtcTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        };
        assert_eq!(UtcTime::from_unix(0), t(1970, 1, 1, 0, 0, 0));
        assert_eq!(UtcTime::from_unix(951_782_400), t(2000, 2, 29, 0, 0, 0));
        assert_eq!(UtcTime::from_unix(1_796_386_385), t(2026, 12, 4, 12, 13, 5));
        assert_eq!(UtcTime::from_unix(-1), t(1969, 12, 31, 23, 59, 59));
    }
}
