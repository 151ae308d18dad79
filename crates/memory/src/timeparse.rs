//! Time expressions in queries: "yesterday", "last week", "this month",
//! "3 days ago", "in May", "in May 2023", "in 2022".

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// A half-open time interval `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeRange {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// Whether `t` falls in the range.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn month_range(year: i32, month: u32) -> Option<TimeRange> {
    let from = NaiveDate::from_ymd_opt(year, month, 1)?;
    let to = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some(TimeRange {
        from: day_start(from),
        to: day_start(to),
    })
}

fn year_range(year: i32) -> Option<TimeRange> {
    Some(TimeRange {
        from: day_start(NaiveDate::from_ymd_opt(year, 1, 1)?),
        to: day_start(NaiveDate::from_ymd_opt(year + 1, 1, 1)?),
    })
}

/// The time range a query refers to, relative to `now`, with the
/// (lower-case) words that expressed it; `None` when it names no time.
pub fn parse_time_range(query: &str, now: DateTime<Utc>) -> Option<(TimeRange, Vec<String>)> {
    let w = crate::text::words(query);
    let today = now.date_naive();
    let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let found =
        |r: TimeRange, used: &[&str]| Some((r, used.iter().map(|s| s.to_string()).collect()));
    for i in 0..w.len() {
        let next = w.get(i + 1).map(String::as_str);
        let next2 = w.get(i + 2).map(String::as_str);
        match (w[i].as_str(), next) {
            ("yesterday", _) => {
                let d = today - Duration::days(1);
                return found(
                    TimeRange {
                        from: day_start(d),
                        to: day_start(today),
                    },
                    &["yesterday"],
                );
            }
            ("today", _) => {
                return found(
                    TimeRange {
                        from: day_start(today),
                        to: now + Duration::seconds(1),
                    },
                    &["today"],
                );
            }
            ("last" | "past" | "previous", Some("week")) => {
                let from = day_start(week_start - Duration::days(7));
                return found(
                    TimeRange {
                        from,
                        to: day_start(week_start),
                    },
                    &["last", "week"],
                );
            }
            ("this", Some("week")) => {
                return found(
                    TimeRange {
                        from: day_start(week_start),
                        to: now + Duration::seconds(1),
                    },
                    &["this", "week"],
                );
            }
            ("last" | "past" | "previous", Some("month")) => {
                let (y, m) = if today.month() == 1 {
                    (today.year() - 1, 12)
                } else {
                    (today.year(), today.month() - 1)
                };
                return month_range(y, m).and_then(|r| found(r, &["last", "month"]));
            }
            ("this", Some("month")) => {
                return month_range(today.year(), today.month())
                    .and_then(|r| found(r, &["this", "month"]));
            }
            ("last" | "past" | "previous", Some("year")) => {
                return year_range(today.year() - 1).and_then(|r| found(r, &["last", "year"]));
            }
            ("this", Some("year")) => {
                return year_range(today.year()).and_then(|r| found(r, &["this", "year"]));
            }
            (n, Some(unit)) if n.parse::<i64>().is_ok() && next2 == Some("ago") => {
                let n: i64 = n.parse().ok()?;
                let days = match unit.trim_end_matches('s') {
                    "day" => n,
                    "week" => 7 * n,
                    "month" => 30 * n,
                    "year" => 365 * n,
                    _ => continue,
                };
                let centre = today - Duration::days(days);
                let slack = (days / 4).max(1);
                return found(
                    TimeRange {
                        from: day_start(centre - Duration::days(slack)),
                        to: day_start(centre + Duration::days(slack + 1)),
                    },
                    &[],
                );
            }
            ("in" | "during" | "since", Some(m)) if MONTHS.contains(&m) => {
                let month = MONTHS.iter().position(|x| *x == m)? as u32 + 1;
                let year = match next2
                    .and_then(|y| y.parse::<i32>().ok())
                    .filter(|y| (1900..=2200).contains(y))
                {
                    Some(y) => y,
                    None if month <= today.month() => today.year(),
                    None => today.year() - 1,
                };
                return month_range(year, month).and_then(|r| found(r, &[m]));
            }
            ("in" | "during", Some(y))
                if y.len() == 4 && y.parse::<i32>().is_ok_and(|y| (1900..=2200).contains(&y)) =>
            {
                return year_range(y.parse().ok()?).and_then(|r| found(r, &[]));
            }
            _ => {}
        }
    }
    None
}

/// Whether a query (lower-case words) asks for a time: "when", "what
/// year", "how long ago"...
pub fn asks_when(words: &[String]) -> bool {
    words.iter().enumerate().any(|(i, w)| {
        w == "when"
            || (matches!(w.as_str(), "what" | "which")
                && words.get(i + 1).is_some_and(|n| {
                    matches!(
                        n.as_str(),
                        "year" | "month" | "day" | "date" | "time" | "week"
                    )
                }))
            || (w == "how" && words.get(i + 1).is_some_and(|n| n == "long"))
    })
}

const TIME_WORDS: &[&str] = &[
    "ago",
    "yesterday",
    "today",
    "tonight",
    "tomorrow",
    "weekend",
    "week",
    "month",
    "year",
    "last",
    "next",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "morning",
    "evening",
    "recently",
    "since",
    "soon",
    "later",
    "earlier",
    "summer",
    "winter",
    "spring",
    "autumn",
    "fall",
];

/// Whether text states a time (a relative expression, a weekday, a month
/// or a year).
pub fn mentions_time(text: &str) -> bool {
    // Runs over every candidate of a "when" question: ASCII words (nearly
    // all) are lower-cased on the stack instead of allocated.
    let is_time_word = |w: &str| {
        TIME_WORDS.contains(&w)
            || MONTHS.contains(&w)
            || (w.len() == 4 && w.parse::<u32>().is_ok_and(|y| (1900..=2200).contains(&y)))
    };
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .any(|w| {
            let mut buf = [0u8; 16];
            if w.is_ascii() && w.len() <= buf.len() {
                let lower = &mut buf[..w.len()];
                lower.copy_from_slice(w.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower).is_ok_and(is_time_word)
            } else {
                is_time_word(&w.to_lowercase())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn time_mentions_are_found_in_any_case_and_script() {
        assert!(mentions_time("We met in MAY, remember?"));
        assert!(mentions_time("back in 1999"));
        assert!(mentions_time("Yesterday"));
        assert!(!mentions_time("the maybe-pile has 12345 items"));
        assert!(!mentions_time(
            "Ünïcode wörds and a verylongwordwithnomeaningatall"
        ));
        assert!(mentions_time("Über den Sommer, in März? no: in June"));
    }

    #[test]
    fn last_week_is_the_previous_monday_to_monday() {
        // 2024-05-15 is a Wednesday.
        let (r, used) = parse_time_range("what did we decide last week?", at(2024, 5, 15)).unwrap();
        assert_eq!(r.from, at(2024, 5, 6) - Duration::hours(12));
        assert_eq!(r.to, at(2024, 5, 13) - Duration::hours(12));
        assert_eq!(used, vec!["last", "week"]);
    }

    #[test]
    fn in_may_means_the_most_recent_may() {
        let (r, _) = parse_time_range("what happened in May", at(2024, 3, 1)).unwrap();
        assert!(r.contains(at(2023, 5, 20)));
        let (r, _) = parse_time_range("what happened in May", at(2024, 6, 1)).unwrap();
        assert!(r.contains(at(2024, 5, 20)));
        let (r, _) = parse_time_range("in May 2022?", at(2024, 6, 1)).unwrap();
        assert!(r.contains(at(2022, 5, 31)) && !r.contains(at(2022, 6, 1)));
    }

    #[test]
    fn yesterday_and_days_ago_are_ranges_around_that_day() {
        let now = at(2024, 5, 15);
        assert!(
            parse_time_range("yesterday", now)
                .unwrap()
                .0
                .contains(at(2024, 5, 14))
        );
        assert!(
            parse_time_range("3 days ago", now)
                .unwrap()
                .0
                .contains(at(2024, 5, 12))
        );
    }

    #[test]
    fn a_query_without_time_has_no_range() {
        assert!(parse_time_range("what is Sam's favourite colour", at(2024, 5, 15)).is_none());
        assert!(parse_time_range("may I ask something", at(2024, 5, 15)).is_none());
    }
}
