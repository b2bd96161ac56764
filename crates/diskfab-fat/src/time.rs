//! FAT (DOS local time, treated as UTC) ⇄ Unix time.

use diskfab_fs::Timespec;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// FAT date-time → Unix time.
pub fn to_unix(dt: fatfs::DateTime) -> Timespec {
    let d = dt.date;
    let t = dt.time;
    let days = days_from_civil(
        i64::from(d.year),
        i64::from(d.month.clamp(1, 12)),
        i64::from(d.day.clamp(1, 31)),
    );
    let sec = days * 86400 + i64::from(t.hour) * 3600 + i64::from(t.min) * 60 + i64::from(t.sec);
    Timespec {
        sec,
        nsec: u32::from(t.millis.min(999)) * 1_000_000,
    }
}

/// Unix time → FAT date-time, clamped to the FAT range 1980..=2107.
pub fn from_unix(t: Timespec) -> fatfs::DateTime {
    let min = days_from_civil(1980, 1, 1) * 86400;
    let max = days_from_civil(2107, 12, 31) * 86400 + 86399;
    let s = t.sec.clamp(min, max);
    let (y, m, d) = civil_from_days(s.div_euclid(86400));
    let r = s.rem_euclid(86400);
    fatfs::DateTime {
        date: fatfs::Date {
            year: y as u16,
            month: m as u16,
            day: d as u16,
        },
        time: fatfs::Time {
            hour: (r / 3600) as u16,
            min: (r / 60 % 60) as u16,
            sec: (r % 60) as u16,
            millis: (t.nsec / 1_000_000).min(999) as u16,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_and_fat_times_round_trip_and_clamp_to_the_fat_range() {
        let t = Timespec {
            sec: 1_700_000_000,
            nsec: 0,
        };
        assert_eq!(to_unix(from_unix(t)).sec, 1_700_000_000);
        assert_eq!(from_unix(Timespec { sec: 0, nsec: 0 }).date.year, 1980);
        assert_eq!(
            from_unix(Timespec {
                sec: i64::MAX / 2,
                nsec: 0
            })
            .date
            .year,
            2107
        );
    }
}
