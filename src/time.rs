//! Time as the engine sees it: [`Timestamp`] (milliseconds since the Unix epoch) and the
//! range of it the protocol accepts ([`TS_MIN`]..=[`TS_MAX`]), durations in milliseconds,
//! parsing of protocol `ts` values and config duration strings, and the local calendar
//! (days, ISO weeks, months) of `appraisal.timezone`.
//!
//! Owns: the time types and the calendar. The ground floor: imports no other module of the
//! crate. Must not: read the wall clock (that is `clock`'s job).

use std::fmt;

use jiff::tz::TimeZone;
use serde::Serialize;

/// Milliseconds since the Unix epoch. Sub-millisecond digits are dropped at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A length of time in milliseconds.
pub type Millis = i64;

/// The earliest `ts` the protocol accepts (0001-01-01T00:00:00Z).
pub const TS_MIN: Timestamp = Timestamp(-62_135_596_800_000);
/// The latest `ts` the protocol accepts (9999-12-30T22:00:00.000Z): the last millisecond
/// the time library (jiff) represents, so that every accepted time prints and falls in a
/// local day in every time zone. A later time is rejected as `bad_ts`.
pub const TS_MAX: Timestamp = Timestamp(253_402_207_200_000);

/// Whether `t` is a time an event may carry: adapters that read native times check it, so
/// that every event they make decodes back from the journal.
pub fn ts_in_range(t: Timestamp) -> bool {
    (TS_MIN..=TS_MAX).contains(&t)
}

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN / 4);
    pub const MAX: Timestamp = Timestamp(i64::MAX / 4);

    pub fn ms(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Millis) -> Timestamp {
        Timestamp(self.0.saturating_add(d))
    }

    /// `self - earlier` in milliseconds.
    pub fn since(self, earlier: Timestamp) -> Millis {
        self.0.saturating_sub(earlier.0)
    }

    /// Parses a protocol `ts` string: RFC 3339 with an offset (`Z` or `+08:00`), up to
    /// nanoseconds. Sub-millisecond digits are dropped (truncated toward the past).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimeError> {
        if let Some(t) = utc_millis_fast(s.as_bytes()) {
            return Ok(Timestamp(t));
        }
        // jiff also accepts RFC 9557 suffixes and a space separator; the protocol asks for
        // RFC 3339, so insist on the `T` form and an explicit offset.
        let b = s.as_bytes();
        if b.len() < 20 || b.get(10) != Some(&b'T') && b.get(10) != Some(&b't') {
            return Err(TimeError::Invalid(s.to_string()));
        }
        if s.contains('[') {
            return Err(TimeError::Invalid(s.to_string()));
        }
        let ts: jiff::Timestamp = s.parse().map_err(|_| TimeError::Invalid(s.to_string()))?;
        let t = Timestamp(ts.as_nanosecond().div_euclid(1_000_000) as i64);
        // Years 1 to 9999 (see `TS_MAX`): what prints back in the same form.
        if ts_in_range(t) {
            Ok(t)
        } else {
            Err(TimeError::Invalid(s.to_string()))
        }
    }

    /// Parses `--until`-style input: RFC 3339 or integer epoch milliseconds.
    pub fn parse_flexible(s: &str) -> Result<Timestamp, TimeError> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
            return t
                .parse::<i64>()
                .map(Timestamp)
                .map_err(|_| TimeError::Invalid(s.to_string()));
        }
        Timestamp::parse_rfc3339(t)
    }

    pub fn to_jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

/// The common shape of a protocol `ts`, `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (what floorwatch and
/// most phone systems write), read without jiff: about a tenth of the decoding time of an
/// event went to the general parser. Anything else, including a value this would have to
/// judge (a leap second, a day past the month's end, year 0), is left to jiff (`None`); a
/// test checks both agree.
fn utc_millis_fast(b: &[u8]) -> Option<i64> {
    let frac = match b.len() {
        20 => false,
        24 if b[19] == b'.' => true,
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[b.len() - 1] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let ms = if frac { num(20..23)? } else { 0 };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day == 0 || day > month_days || hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    // Days from 1970-01-01 to the date (the proleptic Gregorian calendar, eras of 400 years).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = ((days * 24 + hour) * 60 + min) * 60_000 + sec * 1000 + ms;
    // Past the end of jiff's range, jiff decides (it rejects).
    (t <= TS_MAX.0).then_some(t)
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, for years 1 to 9999 (the protocol's range), without
/// a time-zone lookup or formatting machinery (replay writes one per violation, the journal
/// one per event). Days to civil date: Howard Hinnant's `civil_from_days`.
fn utc_text(ms: i64) -> Option<[u8; 24]> {
    if !ts_in_range(Timestamp(ms)) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1_000 % 60);
    put(20, 3, in_day % 1_000);
    Some(out)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 UTC with exactly three fractional digits and `Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = utc_text(self.0) {
            // Only ASCII digits and separators were written.
            return f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?);
        }
        self.fmt_by_jiff(f)
    }
}

impl Timestamp {
    /// [`fmt::Display`] the general way (outside the protocol's range, and in tests).
    fn fmt_by_jiff(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_jiff().to_zoned(TimeZone::UTC).datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            self.0.rem_euclid(1000)
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    /// Accepts what `Serialize` writes (RFC 3339) and epoch milliseconds.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 time or epoch milliseconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("not a valid time: {0:?} (want RFC 3339 with offset, or epoch milliseconds)")]
    Invalid(String),
    #[error(
        "not a valid duration: {0:?} (want e.g. \"250ms\", \"15s\", \"0.2s\", \"5m\", \"1h30m\")"
    )]
    Duration(String),
}

/// Parses a config duration string (`"250ms"`, `"15s"`, `"0.2s"`, `"5m"`, `"1h30m"`), rounded
/// to the nearest millisecond.
pub fn parse_duration(s: &str) -> Result<Millis, TimeError> {
    let err = || TimeError::Duration(s.to_string());
    let t = s.trim();
    if t.is_empty() || t.starts_with('-') || t.starts_with('+') {
        return Err(err());
    }
    let d: jiff::SignedDuration = t.parse().map_err(|_| err())?;
    if d.is_negative() {
        return Err(err());
    }
    let ns = d.as_nanos();
    let ms = (ns + 500_000).div_euclid(1_000_000);
    i64::try_from(ms).map_err(|_| err())
}

/// Formats milliseconds as a config duration string (`"15s"`, `"1h30m"`, `"250ms"`).
pub fn format_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    if milli > 0 {
        out.push_str(&format!("{milli}ms"));
    }
    out
}

/// A local calendar day: its date and `[start, end)` in epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDay {
    pub date: jiff::civil::Date,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The local calendar of `appraisal.timezone`, with a one-day cache: almost every lookup
/// falls in the day of the previous one.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: TimeZone,
    cache: Option<LocalDay>,
}

impl Calendar {
    pub fn new(tz: TimeZone) -> Calendar {
        Calendar { tz, cache: None }
    }

    pub fn utc() -> Calendar {
        Calendar::new(TimeZone::UTC)
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// The local day containing `t`.
    pub fn day(&mut self, t: Timestamp) -> LocalDay {
        if let Some(d) = self.cache {
            if d.start <= t && t < d.end {
                return d;
            }
        }
        let d = self.compute_day(t);
        self.cache = Some(d);
        d
    }

    /// The local day containing `t`, without touching the cache.
    pub fn day_of(&self, t: Timestamp) -> LocalDay {
        if let Some(d) = self.cache {
            if d.start <= t && t < d.end {
                return d;
            }
        }
        self.compute_day(t)
    }

    fn compute_day(&self, t: Timestamp) -> LocalDay {
        let z = t.to_jiff().to_zoned(self.tz.clone());
        let date = z.date();
        let start = self.start_of(date);
        let end = date
            .tomorrow()
            .map(|d| self.start_of(d))
            .unwrap_or(Timestamp::MAX);
        LocalDay { date, start, end }
    }

    /// The first instant of local date `date`.
    pub fn start_of(&self, date: jiff::civil::Date) -> Timestamp {
        match date.to_zoned(self.tz.clone()) {
            Ok(z) => Timestamp(z.timestamp().as_millisecond()),
            Err(_) => Timestamp::MIN,
        }
    }
}

/// An appraisal period: a local day, an ISO week or a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day(jiff::civil::Date),
    /// ISO year and week number.
    Week(i16, i8),
    /// Year and month.
    Month(i16, i8),
}

impl Period {
    /// Parses `2026-11`, `2026-W48` or `2026-11-28`.
    pub fn parse(s: &str) -> Option<Period> {
        let s = s.trim();
        if let Some((y, w)) = s.split_once("-W") {
            let y: i16 = y.parse().ok()?;
            let w: i8 = w.parse().ok()?;
            jiff::civil::ISOWeekDate::new(y, w, jiff::civil::Weekday::Monday).ok()?;
            return Some(Period::Week(y, w));
        }
        match s.len() {
            7 => {
                let (y, m) = s.split_once('-')?;
                let y: i16 = y.parse().ok()?;
                let m: i8 = m.parse().ok()?;
                jiff::civil::Date::new(y, m, 1).ok()?;
                Some(Period::Month(y, m))
            }
            10 => s.parse::<jiff::civil::Date>().ok().map(Period::Day),
            _ => None,
        }
    }

    /// Whether local date `d` lies in this period.
    pub fn contains(&self, d: jiff::civil::Date) -> bool {
        match *self {
            Period::Day(x) => x == d,
            Period::Week(y, w) => {
                let iso = d.iso_week_date();
                iso.year() == y && iso.week() == w
            }
            Period::Month(y, m) => d.year() == y && d.month() == m,
        }
    }

    /// The first and one-past-last local dates of the period.
    pub fn date_range(&self) -> (jiff::civil::Date, jiff::civil::Date) {
        use jiff::civil::{Date, ISOWeekDate, Weekday};
        let fallback = Date::constant(1970, 1, 1);
        match *self {
            Period::Day(d) => (d, d.tomorrow().unwrap_or(d)),
            Period::Week(y, w) => {
                let mon = ISOWeekDate::new(y, w, Weekday::Monday)
                    .map(|i| i.date())
                    .unwrap_or(fallback);
                (
                    mon,
                    mon.checked_add(jiff::Span::new().days(7)).unwrap_or(mon),
                )
            }
            Period::Month(y, m) => {
                let first = Date::new(y, m, 1).unwrap_or(fallback);
                (first, first.last_of_month().tomorrow().unwrap_or(first))
            }
        }
    }

    /// `[start, end)` of the period in the calendar's time zone.
    pub fn bounds(&self, cal: &Calendar) -> (Timestamp, Timestamp) {
        let (a, b) = self.date_range();
        (cal.start_of(a), cal.start_of(b))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Period::Day(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            Period::Week(y, w) => write!(f, "{y:04}-W{w:02}"),
            Period::Month(y, m) => write!(f, "{y:04}-{m:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_drops_sub_millisecond_digits() {
        let t = Timestamp::parse_rfc3339("2026-11-27T12:22:28.056917000Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-27T12:22:28.056Z");
        let t = Timestamp::parse_rfc3339("2026-11-27T20:26:17.115+08:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-27T12:26:17.115Z");
    }

    #[test]
    fn rfc3339_requires_offset() {
        assert!(Timestamp::parse_rfc3339("2026-11-27T12:22:28").is_err());
        assert!(Timestamp::parse_rfc3339("2026-11-27").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("2026-11-27T12:22:28Z[Asia/Shanghai]").is_err());
    }

    #[test]
    fn durations_round_to_the_millisecond() {
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("15s"), Ok(15_000));
        assert_eq!(parse_duration("0.2s"), Ok(200));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("0.0005s"), Ok(1));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
    }

    #[test]
    fn shanghai_day_starts_at_1600_utc() {
        let mut cal = Calendar::new(TimeZone::get("Asia/Shanghai").unwrap());
        let d = cal.day(Timestamp::parse_rfc3339("2026-11-27T16:00:00Z").unwrap());
        assert_eq!(d.date, jiff::civil::date(2026, 11, 28));
        assert_eq!(d.start.to_string(), "2026-11-27T16:00:00.000Z");
        assert_eq!(d.end.to_string(), "2026-11-28T16:00:00.000Z");
    }

    #[test]
    fn periods_parse_and_print() {
        for s in ["2026-11", "2026-W48", "2026-11-28"] {
            assert_eq!(Period::parse(s).unwrap().to_string(), s);
        }
        assert!(Period::parse("2026-13").is_none());
        let w = Period::parse("2026-W48").unwrap();
        assert!(w.contains(jiff::civil::date(2026, 11, 28)));
        assert!(!w.contains(jiff::civil::date(2026, 11, 30)));
    }
}

#[cfg(test)]
mod fast_parse_tests {
    use super::*;
    use proptest::prelude::*;

    /// What jiff makes of `s`, under the same rules as `parse_rfc3339` (the slow path),
    /// within the protocol's range.
    fn by_jiff(s: &str) -> Option<i64> {
        let t: jiff::Timestamp = s.parse().ok()?;
        let ms = t.as_nanosecond().div_euclid(1_000_000) as i64;
        ts_in_range(Timestamp(ms)).then_some(ms)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn the_fast_path_agrees_with_jiff(
            y in 0i64..=9999, mo in 0i64..=13, d in 0i64..=32,
            h in 0i64..=24, mi in 0i64..=60, s in 0i64..=60, ms in 0i64..=999,
            frac in any::<bool>(),
        ) {
            let text = if frac {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
            };
            if let Some(fast) = utc_millis_fast(text.as_bytes()) {
                prop_assert_eq!(Some(fast), by_jiff(&text), "{}", text);
            }
            // Whatever path it takes, parse_rfc3339 says what jiff says.
            prop_assert_eq!(Timestamp::parse_rfc3339(&text).ok().map(|t| t.0), by_jiff(&text), "{}", text);
        }

        #[test]
        fn display_writes_what_jiff_writes(ms in (TS_MIN.0 - 86_400_000)..=(TS_MAX.0 + 86_400_000)) {
            struct ByJiff(Timestamp);
            impl fmt::Display for ByJiff {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    self.0.fmt_by_jiff(f)
                }
            }
            prop_assert_eq!(Timestamp(ms).to_string(), ByJiff(Timestamp(ms)).to_string());
        }

        #[test]
        fn the_fast_path_reads_what_display_writes(ms in TS_MIN.0..=TS_MAX.0) {
            let text = Timestamp(ms).to_string();
            prop_assert_eq!(utc_millis_fast(text.as_bytes()), Some(ms), "{}", text);
        }
    }

    #[test]
    fn the_ends_of_the_accepted_range_print_and_parse_back() {
        assert_eq!(TS_MIN.to_string(), "0001-01-01T00:00:00.000Z");
        assert_eq!(TS_MAX.to_string(), "9999-12-30T22:00:00.000Z");
        for t in [TS_MIN, TS_MAX] {
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Ok(t));
        }
        // One millisecond later, and year 0, are outside the range, and are rejected.
        assert!(Timestamp::parse_rfc3339("0000-12-31T23:59:59.999Z").is_err());
        assert!(Timestamp::parse_rfc3339("0001-01-01T08:00:00+08:01").is_err());
        assert!(Timestamp::parse_rfc3339("9999-12-30T22:00:00.001Z").is_err());
        assert!(Timestamp::parse_rfc3339("9999-12-31T23:59:59.999Z").is_err());
    }

    #[test]
    fn the_fast_path_leaves_other_shapes_to_jiff() {
        for s in [
            "2026-11-28T09:00:00+08:00",
            "2026-11-28t09:00:00z",
            "2026-11-28T09:00:00.5Z",
            "2026-11-28T09:00:00.123456Z",
            "2026-11-28 09:00:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2026-11-28T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "2026-1a-28T09:00:00Z",
        ] {
            assert_eq!(utc_millis_fast(s.as_bytes()), None, "{s}");
        }
        assert_eq!(
            utc_millis_fast(b"2024-02-29T23:59:59.999Z"),
            by_jiff("2024-02-29T23:59:59.999Z")
        );
    }
}
