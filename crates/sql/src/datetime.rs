//! Dates, times and intervals: parsing and formatting in PostgreSQL's ISO style.
//!
//! Time zones: sessions run in UTC. `timestamptz` values are stored and shown in UTC
//! (`+00`); input with an explicit offset is converted.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
};

use crate::error::{Error, ErrorKind, Result};
use crate::value::Interval;

fn bad(ty: &str, s: &str) -> Error {
    // Well-formed numbers that name no real date or time (Feb 30, month 13, hour 25) are
    // out of range rather than bad syntax, as PostgreSQL reports them.
    let t = s.trim();
    let numeric = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | ' ' | '.' | 'T' | '+' | '/'))
        && t.chars().any(|c| matches!(c, '-' | ':' | '/'))
        && t.chars().filter(|c| c.is_ascii_digit()).count() >= 3;
    if numeric {
        return Error::new(
            ErrorKind::DatetimeOverflow,
            format!("date/time field value out of range: \"{s}\""),
        );
    }
    Error::new(
        ErrorKind::InvalidDatetimeFormat,
        format!("invalid input syntax for type {ty}: \"{s}\""),
    )
}

/// Parses a date: `YYYY-MM-DD` (also `YYYYMMDD` and a trailing time, which is dropped).
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    let t = s.trim();
    let head = t.split([' ', 'T']).next().unwrap_or(t);
    NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(head, "%Y%m%d"))
        // DateStyle MDY: 1/5/2024 is January 5th.
        .or_else(|_| NaiveDate::parse_from_str(head, "%m/%d/%Y"))
        .or_else(|_| NaiveDate::parse_from_str(t, "%b %d %Y"))
        .or_else(|_| NaiveDate::parse_from_str(t, "%B %d %Y"))
        .or_else(|_| NaiveDate::parse_from_str(t, "%d %b %Y"))
        .map_err(|_| bad("date", s))
}

/// Parses a time of day: `HH:MM[:SS[.ffffff]]`.
pub fn parse_time(s: &str) -> Result<NaiveTime> {
    let t = s.trim();
    NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .map_err(|_| bad("time", s))
}

/// Parses a timestamp without time zone; an offset, if given, is ignored (as PostgreSQL
/// does).
pub fn parse_timestamp(s: &str) -> Result<NaiveDateTime> {
    let t = s.trim();
    let (body, _) = split_offset(t);
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(v) = NaiveDateTime::parse_from_str(body.trim(), f) {
            return Ok(v);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(body.trim(), "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN));
    }
    Err(bad("timestamp", s))
}

/// Parses a timestamp with time zone; without an offset the session zone (UTC) applies.
pub fn parse_timestamptz(s: &str) -> Result<DateTime<Utc>> {
    let t = s.trim();
    let (body, offset) = split_offset(t);
    let naive = parse_timestamp(body).map_err(|_| bad("timestamp with time zone", s))?;
    let secs = match offset {
        None => 0,
        Some(o) => parse_offset(o).ok_or_else(|| bad("timestamp with time zone", s))?,
    };
    let tz = FixedOffset::east_opt(secs).ok_or_else(|| bad("timestamp with time zone", s))?;
    naive
        .and_local_timezone(tz)
        .single()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| bad("timestamp with time zone", s))
}

/// Splits a trailing zone (`Z`, `UTC`, `+02`, `-05:30`) off a timestamp string.
fn split_offset(t: &str) -> (&str, Option<&str>) {
    if let Some(body) = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix(" UTC"))
        .or_else(|| t.strip_suffix("UTC"))
    {
        return (body, Some("+00"));
    }
    // An offset starts at the last '+' or '-' that follows the time part.
    if let Some(time_start) = t.find([' ', 'T'])
        && let Some(pos) = t[time_start..].rfind(['+', '-'])
    {
        let pos = time_start + pos;
        return (&t[..pos], Some(&t[pos..]));
    }
    (t, None)
}

fn parse_offset(o: &str) -> Option<i32> {
    let sign = if o.starts_with('-') { -1 } else { 1 };
    let digits = o.trim_start_matches(['+', '-']);
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None if digits.len() == 4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        None => (digits.parse().ok()?, 0),
    };
    Some(sign * (h * 3600 + m * 60))
}

/// Formats a date.
pub fn format_date(d: &NaiveDate) -> String {
    if d.year() <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - d.year(), d.month(), d.day())
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

fn format_fraction(micros: u32, out: &mut String) {
    if micros > 0 {
        let s = format!(".{micros:06}");
        out.push_str(s.trim_end_matches('0'));
    }
}

/// Formats a time of day.
pub fn format_time(t: &NaiveTime) -> String {
    let mut out = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    format_fraction(t.nanosecond() / 1000, &mut out);
    out
}

/// Formats a timestamp without time zone.
pub fn format_timestamp(t: &NaiveDateTime) -> String {
    format!("{} {}", format_date(&t.date()), format_time(&t.time()))
}

/// Formats a timestamp with time zone (in UTC).
pub fn format_timestamptz(t: &DateTime<Utc>) -> String {
    format!("{}+00", format_timestamp(&t.naive_utc()))
}

/// Formats an interval in PostgreSQL's default (`postgres`) style.
pub fn format_interval(i: &Interval) -> String {
    let mut parts = Vec::new();
    let (years, months) = (i.months / 12, i.months % 12);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("{n} {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if years != 0 {
        parts.push(plural(years.into(), "year"));
    }
    if months != 0 {
        parts.push(plural(months.into(), "mon"));
    }
    if i.days != 0 {
        parts.push(plural(i.days.into(), "day"));
    }
    if i.micros != 0 || parts.is_empty() {
        let neg = i.micros < 0;
        let m = i.micros.unsigned_abs();
        let (h, rem) = (m / 3_600_000_000, m % 3_600_000_000);
        let (min, rem) = (rem / 60_000_000, rem % 60_000_000);
        let (s, us) = (rem / 1_000_000, rem % 1_000_000);
        let mut t = format!("{}{h:02}:{min:02}:{s:02}", if neg { "-" } else { "" });
        format_fraction(us as u32, &mut t);
        parts.push(t);
    }
    parts.join(" ")
}

/// Parses an interval: PostgreSQL's verbose form (`1 year 2 mons 3 days 04:05:06`, units
/// in singular or plural, abbreviations, `ago`) or ISO 8601 (`P1Y2M3DT4H5M6S`).
pub fn parse_interval(s: &str) -> Result<Interval> {
    let err = || {
        Error::new(
            ErrorKind::InvalidDatetimeFormat,
            format!("invalid input syntax for type interval: \"{s}\""),
        )
    };
    let t = s.trim().to_ascii_lowercase();
    if let Some(iso) = t.strip_prefix('p') {
        return parse_iso_interval(iso).ok_or_else(err);
    }
    let mut iv = Interval::default();
    let tokens: Vec<&str> = t.split_whitespace().collect();
    let mut i = 0;
    let mut negate_all = false;
    while i < tokens.len() {
        let tok = tokens[i].trim_start_matches('@');
        if tok.is_empty() {
            i += 1;
            continue;
        }
        if tok == "ago" {
            negate_all = true;
            i += 1;
            continue;
        }
        if tok.contains(':') {
            iv.micros += parse_clock(tok).ok_or_else(err)?;
            i += 1;
            continue;
        }
        // A number, possibly glued to its unit ("3days").
        let split = tok
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(tok.len());
        let (num, glued_unit) = tok.split_at(split);
        let n: f64 = num.parse().map_err(|_| err())?;
        let unit = if glued_unit.is_empty() {
            i += 1;
            tokens.get(i).copied().unwrap_or("second")
        } else {
            glued_unit
        };
        add_unit(&mut iv, n, unit).ok_or_else(err)?;
        i += 1;
    }
    if negate_all {
        iv = Interval {
            months: -iv.months,
            days: -iv.days,
            micros: -iv.micros,
        };
    }
    Ok(iv)
}

fn parse_clock(tok: &str) -> Option<i64> {
    let neg = tok.starts_with('-');
    let parts: Vec<&str> = tok.trim_start_matches(['-', '+']).split(':').collect();
    let (h, m, s): (i64, i64, f64) = match parts.as_slice() {
        [h, m] => (h.parse().ok()?, m.parse().ok()?, 0.0),
        [h, m, s] => (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?),
        _ => return None,
    };
    let micros = h * 3_600_000_000 + m * 60_000_000 + (s * 1e6).round() as i64;
    Some(if neg { -micros } else { micros })
}

fn add_unit(iv: &mut Interval, n: f64, unit: &str) -> Option<()> {
    let unit = unit.trim_end_matches(',');
    let u = unit
        .strip_suffix('s')
        .filter(|u| !u.is_empty() && *u != "m")
        .unwrap_or(unit);
    match u {
        "year" | "yr" | "y" => iv.months += (n * 12.0).round() as i32,
        "mon" | "month" => {
            let whole = n.trunc();
            iv.months += whole as i32;
            iv.days += ((n - whole) * 30.0).round() as i32;
        }
        "week" | "w" => iv.days += (n * 7.0).round() as i32,
        "day" | "d" => {
            let whole = n.trunc();
            iv.days += whole as i32;
            iv.micros += ((n - whole) * 86_400e6).round() as i64;
        }
        "hour" | "hr" | "h" => iv.micros += (n * 3_600e6).round() as i64,
        "minute" | "min" | "m" => iv.micros += (n * 60e6).round() as i64,
        "second" | "sec" | "" => iv.micros += (n * 1e6).round() as i64,
        "millisecond" | "msec" | "ms" => iv.micros += (n * 1e3).round() as i64,
        "microsecond" | "usec" | "us" => iv.micros += n.round() as i64,
        "decade" => iv.months += (n * 120.0).round() as i32,
        "century" => iv.months += (n * 1200.0).round() as i32,
        _ => return None,
    }
    Some(())
}

fn parse_iso_interval(s: &str) -> Option<Interval> {
    let mut iv = Interval::default();
    let (date, time) = s.split_once('t').unwrap_or((s, ""));
    let mut num = String::new();
    for c in date.chars() {
        if c.is_ascii_digit() || c == '.' || c == '-' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        add_unit(
            &mut iv,
            n,
            match c {
                'y' => "year",
                'm' => "month",
                'w' => "week",
                'd' => "day",
                _ => return None,
            },
        )?;
    }
    for c in time.chars() {
        if c.is_ascii_digit() || c == '.' || c == '-' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        add_unit(
            &mut iv,
            n,
            match c {
                'h' => "hour",
                'm' => "minute",
                's' => "second",
                _ => return None,
            },
        )?;
    }
    num.is_empty().then_some(iv)
}

/// Adds an interval to a timestamp, months first (clamping the day), then days, then time.
pub fn add_interval(t: NaiveDateTime, iv: &Interval) -> Result<NaiveDateTime> {
    let overflow = || Error::new(ErrorKind::DatetimeOverflow, "timestamp out of range");
    let mut d = t;
    if iv.months != 0 {
        let total = d.year() * 12 + d.month0() as i32 + iv.months;
        let (y, m0) = (total.div_euclid(12), total.rem_euclid(12) as u32);
        let last = last_day_of_month(y, m0 + 1).ok_or_else(overflow)?;
        let date = NaiveDate::from_ymd_opt(y, m0 + 1, d.day().min(last)).ok_or_else(overflow)?;
        d = date.and_time(d.time());
    }
    d = d
        .checked_add_signed(Duration::days(iv.days.into()))
        .ok_or_else(overflow)?;
    d.checked_add_signed(Duration::microseconds(iv.micros))
        .ok_or_else(overflow)
}

fn last_day_of_month(y: i32, m: u32) -> Option<u32> {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Some(NaiveDate::from_ymd_opt(ny, nm, 1)?.pred_opt()?.day())
}

/// Returns the interval between two timestamps, as days and time (no months), like
/// PostgreSQL's timestamp subtraction.
pub fn diff(a: NaiveDateTime, b: NaiveDateTime) -> Interval {
    let micros = (a - b).num_microseconds().unwrap_or(i64::MAX);
    let days = micros / 86_400_000_000;
    Interval {
        months: 0,
        days: days as i32,
        micros: micros % 86_400_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print_like_postgres() {
        let iv = parse_interval("1 year 2 mons 3 days 04:05:06.5").unwrap();
        assert_eq!(format_interval(&iv), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(
            format_interval(&parse_interval("90 minutes").unwrap()),
            "01:30:00"
        );
        assert_eq!(
            format_interval(&parse_interval("2 days ago").unwrap()),
            "-2 days"
        );
        assert_eq!(
            format_interval(&parse_interval("P1Y2M3DT4H").unwrap()),
            "1 year 2 mons 3 days 04:00:00"
        );
        assert_eq!(format_interval(&Interval::default()), "00:00:00");
        assert!(parse_interval("3 fortnights").is_err());
    }

    #[test]
    fn timestamps_with_offsets_convert_to_utc() {
        let t = parse_timestamptz("2024-03-01 12:00:00+02").unwrap();
        assert_eq!(format_timestamptz(&t), "2024-03-01 10:00:00+00");
        let t = parse_timestamptz("2024-03-01T12:00:00.25Z").unwrap();
        assert_eq!(format_timestamptz(&t), "2024-03-01 12:00:00.25+00");
        assert_eq!(
            format_timestamp(&parse_timestamp("2024-03-01").unwrap()),
            "2024-03-01 00:00:00"
        );
        assert!(parse_date("2024-02-30").is_err());
    }

    #[test]
    fn adding_months_clamps_the_day() {
        let t = parse_timestamp("2024-01-31 10:00:00").unwrap();
        let iv = Interval {
            months: 1,
            days: 0,
            micros: 0,
        };
        assert_eq!(
            format_timestamp(&add_interval(t, &iv).unwrap()),
            "2024-02-29 10:00:00"
        );
    }
}
