//! RFC 3339 times to and from Unix seconds (Docker's `Created` field and
//! prune's `until` filter), without a date crate.

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    rfc3339_nanos(secs, 0)
}

/// `secs` and `nanos` as Go's `RFC3339Nano` writes them: the fraction
/// without trailing zeros, none when it is zero (`…T21:00:50.12Z`).
pub fn rfc3339_nanos(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let frac = if nanos == 0 { String::new() } else { format!(".{nanos:09}").trim_end_matches('0').to_string() };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses an RFC 3339 time (`2006-01-02T15:04:05Z`, with an optional
/// fraction and a `Z` or `±hh:mm` offset) or a plain date (`2006-01-02`,
/// midnight UTC) into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let num =
        |t: &str| -> Option<i64> { (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())? };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (y, m, d) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    // RFC 3339 years have four digits (a longer one overflowed the day count).
    if parts.next().is_some() || !(0..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m as u32, d as u32) * 86_400;
    if let Some(t) = time {
        let (clock, offset) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else {
            let i = t.rfind(['+', '-'])?;
            let (c, o) = t.split_at(i);
            let (oh, om) = o[1..].split_once(':')?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            (c, if o.starts_with('-') { -off } else { off })
        };
        let clock = clock.split('.').next()?;
        let mut hms = clock.split(':');
        let (h, mi, se) = (num(hms.next()?)?, num(hms.next()?)?, num(hms.next()?)?);
        if hms.next().is_some() || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se - offset;
    }
    u64::try_from(secs).ok()
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
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
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339_nanos(1_700_000_000, 120_000_000), "2023-11-14T22:13:20.12Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(super::parse_rfc3339(&super::rfc3339(secs)), Some(secs));
        }
        assert_eq!(super::parse_rfc3339("2023-11-14T23:13:20.5+01:00"), Some(1_700_000_000));
        assert_eq!(super::parse_rfc3339("2023-11-14"), Some(1_699_920_000));
        assert_eq!(super::parse_rfc3339("2023-13-14"), None);
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }

    /// Found by fuzzing (`fuzz/findings/api_query`): a year or an offset too
    /// large for the arithmetic is refused, not overflowed.
    #[test]
    fn huge_years_and_offsets_are_refused() {
        assert_eq!(super::parse_rfc3339("11111111111111112026-12-16T01:02:03Z"), None);
        assert_eq!(super::parse_rfc3339("10000-01-01"), None);
        assert_eq!(super::parse_rfc3339("2023-11-14T23:13:20+3000000000000000:00"), None);
        assert_eq!(super::parse_rfc3339("2023-11-14T23:13:20+24:00"), None);
    }
}
