//! Domain types shared by every c360 crate: money in integer fen, Asia/Shanghai local time,
//! Chinese holidays and dayparts, and personal identifiers (`Phone`) that can only be built by
//! parsing, so that invalid data is rejected at the edge.
//!
//! This crate holds no I/O and no business logic beyond parsing and formatting.

pub mod pii;
mod states;
pub use states::{
    CampaignAction, CampaignStatus, Channel, Lifecycle, MemberStatus, OfferKind, RfmClass, Tier,
};

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a value could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty value")]
    Empty,
    #[error("not a mainland mobile number: {0}")]
    Phone(String),
    #[error("not an amount in fen: {0}")]
    Fen(String),
    #[error("not a timestamp 'YYYY-MM-DD HH:MM:SS': {0}")]
    Time(String),
    #[error("not a date 'YYYY-MM-DD': {0}")]
    Date(String),
}

/// The largest total one order may carry, in fen (¥10,000: past any till of a hot dog chain,
/// and small enough that sums over billions of orders stay far inside an i64).
pub const MAX_ORDER_FEN: i64 = 1_000_000;

/// Money as an integer number of fen (1/100 yuan). Never a float.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Fen(pub i64);

impl Fen {
    /// Parses a non-negative integer count of fen as stored by the source systems.
    pub fn parse(s: &str) -> Result<Fen, ParseError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseError::Empty);
        }
        match t.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(Fen(v)),
            _ => Err(ParseError::Fen(t.to_string())),
        }
    }
    pub fn yuan(self) -> f64 {
        self.0 as f64 / 100.0
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}.{:02}", self.0 / 100, (self.0 % 100).abs())
    }
}

/// A mainland China mobile number, normalised to 11 digits (no +86, spaces or dashes).
///
/// `Debug` and `Display` print the masked form, so a phone never reaches a log by accident.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Numbers that cashiers and test accounts type instead of a customer's own phone.
pub const PLACEHOLDER_PHONES: &[&str] = &[
    "13800138000",
    "13888888888",
    "13000000000",
    "13111111111",
    "18888888888",
    "13912345678",
    "15000000000",
];

impl Phone {
    pub fn parse(s: &str) -> Result<Phone, ParseError> {
        let digits: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        if digits.is_empty() {
            return Err(ParseError::Empty);
        }
        let d = digits
            .strip_prefix("+86")
            .or_else(|| digits.strip_prefix("0086"))
            .or_else(|| {
                if digits.len() == 13 {
                    digits.strip_prefix("86")
                } else {
                    None
                }
            })
            .unwrap_or(&digits);
        let ok = d.len() == 11
            && d.bytes().all(|b| b.is_ascii_digit())
            && d.as_bytes()[0] == b'1'
            && (b'3'..=b'9').contains(&d.as_bytes()[1]);
        if ok {
            Ok(Phone(d.to_string()))
        } else {
            Err(ParseError::Phone(mask_str(s)))
        }
    }
    /// True for numbers known to be shared placeholders (never an identity key).
    pub fn is_placeholder(&self) -> bool {
        PLACEHOLDER_PHONES.contains(&self.0.as_str())
            || self.0[3..].bytes().all(|b| b == self.0.as_bytes()[3])
    }
    /// `138****5678`
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
    /// The keyed hash (see [`pii::PiiKey`]): the only form of a phone kept outside the identity
    /// table.
    pub fn hashed(&self, key: &pii::PiiKey) -> String {
        key.hash(&self.0)
    }
    /// The raw number: only for the identity table and the source simulator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}
impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Salted SHA-256 of a personal identifier, hex encoded, 32 chars: the scheme of metastores
/// hashed before HMAC ([`pii::HashScheme::SaltedSha256`]).
pub fn hash_pii(salt: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(value.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Masks anything that might be personal for an error message: keeps the first 3 and last 2 chars.
pub fn mask_str(s: &str) -> String {
    let c: Vec<char> = s.trim().chars().collect();
    if c.len() <= 5 {
        return "*".repeat(c.len());
    }
    let head: String = c[..3].iter().collect();
    let tail: String = c[c.len() - 2..].iter().collect();
    format!("{head}***{tail}")
}

/// The time format both source systems store: local Asia/Shanghai wall time.
pub const TS_FMT: &str = "%Y-%m-%d %H:%M:%S";

/// Parses a source timestamp (Asia/Shanghai local time, `YYYY-MM-DD HH:MM:SS`, `T` also accepted).
pub fn parse_ts(s: &str) -> Result<NaiveDateTime, ParseError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    NaiveDateTime::parse_from_str(t, TS_FMT)
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| ParseError::Time(t.chars().take(40).collect()))
}

pub fn parse_date(s: &str) -> Result<NaiveDate, ParseError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map_err(|_| ParseError::Date(t.chars().take(40).collect()))
}

/// `YYYY-MM-DD HH:MM:SS` (the sources' text time). Written digit by digit: chrono's `format`
/// interprets the pattern on every call, and the simulator writes hundreds of millions.
pub fn fmt_ts(t: NaiveDateTime) -> String {
    let y = t.year();
    if !(0..=9999).contains(&y) || t.nanosecond() >= 1_000_000_000 {
        return t.format(TS_FMT).to_string(); // beyond four digits, or a leap second
    }
    let mut b = *b"0000-00-00 00:00:00";
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    String::from_utf8(b.to_vec()).expect("ASCII digits and separators")
}

/// Shanghai local wall time as microseconds since the Unix epoch, as stored in the warehouse
/// (Arrow `Timestamp(Microsecond, "+08:00")`).
pub fn ts_micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros() - 8 * 3600 * 1_000_000
}

/// Parts of the day a hot dog shop plans for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Daypart {
    Breakfast,
    Lunch,
    Afternoon,
    Dinner,
    LateNight,
}

impl Daypart {
    pub const ALL: [Daypart; 5] = [
        Daypart::Breakfast,
        Daypart::Lunch,
        Daypart::Afternoon,
        Daypart::Dinner,
        Daypart::LateNight,
    ];
    pub fn of(t: NaiveDateTime) -> Daypart {
        match t.hour() {
            5..=9 => Daypart::Breakfast,
            10..=13 => Daypart::Lunch,
            14..=16 => Daypart::Afternoon,
            17..=20 => Daypart::Dinner,
            _ => Daypart::LateNight,
        }
    }
    /// Opening hours of each part: (first hour, last hour inclusive).
    pub fn hours(self) -> (u32, u32) {
        match self {
            Daypart::Breakfast => (7, 9),
            Daypart::Lunch => (10, 13),
            Daypart::Afternoon => (14, 16),
            Daypart::Dinner => (17, 20),
            Daypart::LateNight => (21, 23),
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Daypart::Breakfast => "breakfast",
            Daypart::Lunch => "lunch",
            Daypart::Afternoon => "afternoon",
            Daypart::Dinner => "dinner",
            Daypart::LateNight => "late_night",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Daypart::Breakfast => "早餐",
            Daypart::Lunch => "午餐",
            Daypart::Afternoon => "下午茶",
            Daypart::Dinner => "晚餐",
            Daypart::LateNight => "夜宵",
        }
    }
}

/// Mainland public holidays (days off) 2023–2026, from the State Council's annual notices.
/// Make-up working days are not holidays.
const HOLIDAYS: &[(&str, &str, &str)] = &[
    ("2023-01-01", "2023-01-02", "元旦"),
    ("2023-01-21", "2023-01-27", "春节"),
    ("2023-04-05", "2023-04-05", "清明节"),
    ("2023-04-29", "2023-05-03", "劳动节"),
    ("2023-06-22", "2023-06-24", "端午节"),
    ("2023-09-29", "2023-10-06", "国庆节"),
    ("2023-12-30", "2024-01-01", "元旦"),
    ("2024-02-10", "2024-02-17", "春节"),
    ("2024-04-04", "2024-04-06", "清明节"),
    ("2024-05-01", "2024-05-05", "劳动节"),
    ("2024-06-10", "2024-06-10", "端午节"),
    ("2024-09-15", "2024-09-17", "中秋节"),
    ("2024-10-01", "2024-10-07", "国庆节"),
    ("2025-01-01", "2025-01-01", "元旦"),
    ("2025-01-28", "2025-02-04", "春节"),
    ("2025-04-04", "2025-04-06", "清明节"),
    ("2025-05-01", "2025-05-05", "劳动节"),
    ("2025-05-31", "2025-06-02", "端午节"),
    ("2025-10-01", "2025-10-08", "国庆节"),
    ("2026-01-01", "2026-01-03", "元旦"),
    ("2026-02-15", "2026-02-23", "春节"),
    ("2026-04-04", "2026-04-06", "清明节"),
    ("2026-05-01", "2026-05-05", "劳动节"),
    ("2026-06-19", "2026-06-21", "端午节"),
    ("2026-09-25", "2026-09-27", "中秋节"),
    ("2026-10-01", "2026-10-07", "国庆节"),
];

/// The holiday a date falls in, if any (Chinese name).
pub fn holiday(d: NaiveDate) -> Option<&'static str> {
    // The table's dates as yyyymmdd numbers, once (this runs for every order the ETL reads).
    static SPANS: std::sync::OnceLock<Vec<(u32, u32, &'static str)>> = std::sync::OnceLock::new();
    let ymd = |s: &str| -> u32 {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .fold(0, |a, c| a * 10 + u32::from(c - b'0'))
    };
    let spans = SPANS.get_or_init(|| {
        HOLIDAYS
            .iter()
            .map(|(a, b, n)| (ymd(a), ymd(b), *n))
            .collect()
    });
    let key = d.year().max(0) as u32 * 10_000 + d.month() * 100 + d.day();
    spans
        .iter()
        .find(|(a, b, _)| key >= *a && key <= *b)
        .map(|(_, _, n)| *n)
}

pub fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Great-circle distance in kilometres.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_ts_writes_what_chrono_writes() {
        let mut t = NaiveDate::from_ymd_opt(1, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let step = chrono::Duration::seconds(7_777_777 + 3_601);
        for _ in 0..40_000 {
            assert_eq!(fmt_ts(t), t.format(TS_FMT).to_string());
            t += step;
        }
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        assert_eq!(fmt_ts(leap), "2016-12-31 23:59:60");
        let far = NaiveDate::from_ymd_opt(12345, 6, 7)
            .unwrap()
            .and_hms_opt(8, 9, 10)
            .unwrap();
        assert_eq!(fmt_ts(far), far.format(TS_FMT).to_string());
    }

    #[test]
    fn phone_normalises_and_masks() {
        let p = Phone::parse("+86 139-1234-5678").unwrap();
        assert_eq!(p.expose(), "13912345678");
        assert_eq!(p.masked(), "139****5678");
        assert_eq!(format!("{p:?}"), "Phone(139****5678)");
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("1201234567a").is_err());
        assert!(Phone::parse("13800138000").unwrap().is_placeholder());
        assert!(Phone::parse("13911111111").unwrap().is_placeholder());
        assert!(!Phone::parse("13912345679").unwrap().is_placeholder());
    }

    #[test]
    fn fen_and_time_parse() {
        assert_eq!(Fen::parse("1500").unwrap(), Fen(1500));
        assert!(Fen::parse("-3").is_err());
        assert_eq!(Fen(1505).to_string(), "¥15.05");
        let t = parse_ts("2025-10-02 12:30:00").unwrap();
        assert_eq!(Daypart::of(t), Daypart::Lunch);
        assert_eq!(holiday(t.date()), Some("国庆节"));
        assert_eq!(holiday(parse_date("2025-10-09").unwrap()), None);
        assert!(parse_ts("2025-13-02 12:30:00").is_err());
        // Beijing is UTC+8: midnight local is 16:00 UTC the day before.
        let m = parse_ts("2025-01-02 00:00:00").unwrap();
        assert_eq!(ts_micros(m), 1_735_747_200_000_000);
    }

    /// Every day from 2022 to 2027 falls in the holiday the table's date strings say.
    #[test]
    fn holidays_match_their_date_strings_every_day() {
        let mut d = NaiveDate::from_ymd_opt(2022, 12, 1).unwrap();
        let mut seen = 0;
        while d.year() < 2028 {
            let s = d.format("%Y-%m-%d").to_string();
            let want = HOLIDAYS
                .iter()
                .find(|(a, b, _)| s.as_str() >= *a && s.as_str() <= *b)
                .map(|(_, _, n)| *n);
            assert_eq!(holiday(d), want, "{s}");
            seen += usize::from(want.is_some());
            d = d.succ_opt().unwrap();
        }
        assert!(seen > 100, "{seen}");
    }
}

#[cfg(test)]
mod parser_properties {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any text: the parsers answer Ok or Err, never panic, and an error shows no more than
        /// a masked or clipped form of the input.
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = Phone::parse(&s);
            let _ = parse_ts(&s);
            let _ = parse_date(&s);
            let _ = Fen::parse(&s);
            if let Err(e) = Phone::parse(&s) {
                let shown = e.to_string();
                if s.trim().chars().count() > 5 {
                    prop_assert!(!shown.contains(s.trim()), "{shown}");
                }
            }
        }

        /// A mobile number however it is written in a source (spaces, dashes, brackets, +86,
        /// 0086) parses to its 11 digits.
        #[test]
        fn phones_parse_to_their_digits(
            second in 3u8..=9,
            rest in proptest::collection::vec(0u8..=9, 9),
            sep in proptest::sample::select(vec!["", " ", "-", " - "]),
            prefix in proptest::sample::select(vec!["", "+86", "+86 ", "0086", "(+86) "]),
        ) {
            let mut d = vec![1, second];
            d.extend(rest);
            let plain: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            let typed = format!("{prefix}{}{sep}{}{sep}{}", &plain[..3], &plain[3..7], &plain[7..]);
            let parsed = Phone::parse(&typed).unwrap();
            prop_assert_eq!(parsed.expose(), plain.as_str());
        }

        /// Every time stamp formats and parses back to itself (both accepted forms).
        #[test]
        fn timestamps_round_trip(secs in 946_684_800i64..4_102_444_799) {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            prop_assert_eq!(parse_ts(&fmt_ts(t)).unwrap(), t);
            let iso = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            prop_assert_eq!(parse_ts(&iso).unwrap(), t);
            prop_assert_eq!(Day::of_time(t).date(), t.date());
        }
    }
}

/// A calendar day, counted from 1970-01-01 (a local Asia/Shanghai date: every time in c360 is
/// local). The day numbers the warehouse's SQL computes (`FLOOR((unixtime + 8 h) / 1 day)`) are
/// the same numbers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Day(pub i64);

impl Day {
    const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
        Some(d) => d,
        None => panic!("1970-01-01 is a date"),
    };
    pub fn of(d: NaiveDate) -> Day {
        Day((d - Self::EPOCH).num_days())
    }
    /// The day of a local (Asia/Shanghai) time.
    pub fn of_time(t: NaiveDateTime) -> Day {
        Self::of(t.date())
    }
    pub fn date(self) -> NaiveDate {
        Self::EPOCH + chrono::Duration::days(self.0)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date())
    }
}

#[cfg(test)]
mod day_tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip_and_match_the_epoch() {
        let d = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        assert_eq!(Day::of(d).0, 20362);
        assert_eq!(Day::of(d).date(), d);
        assert_eq!(Day(0).date(), NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
        let t = parse_ts("2025-10-01 23:59:59").unwrap();
        assert_eq!(Day::of_time(t), Day::of(d));
        assert_eq!(Day::of(d).to_string(), "2025-10-01");
    }
}

/// A secret (hash salt, API key) that never prints: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod secret_tests {
    #[test]
    fn secret_never_prints() {
        let s = super::Secret::new("pepper");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "pepper");
    }
}
