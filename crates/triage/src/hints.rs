//! Retrieval hints: cheap facts pulled out of a message so the planner and
//! the memory engine can narrow their search (blueprint §4.3, issue 7).
//!
//! Everything here is a pattern, not understanding; the rules are simple on
//! purpose and documented so their misses are predictable:
//!
//! - **Entities**, in order of appearance, de-duplicated, at most
//!   [`MAX_ENTITIES`] of at most [`MAX_ENTITY_CHARS`] chars each:
//!   - URLs (`http://`, `https://`, `www.`), trailing punctuation dropped;
//!   - email addresses;
//!   - `@mentions` (`@name`, not the `@` of an email);
//!   - numbers with a unit or currency (`5 km`, `20%`, `$12.50`, `3 hours`);
//!   - capitalised names: runs of capitalised words (`Sam`, `New York`),
//!     minus leading and trailing common words (`Call Sam` → `Sam`, `The`
//!     alone is dropped), minus month and weekday names (those become time
//!     ranges). A capitalised sentence opener that is not a common word
//!     (`Budget is tight`) is kept: there is no dictionary to tell it from a
//!     name.
//! - **Time range**, half-open `[start, end)` in the zone of `now`, from the
//!   first phrase found, checked in this order: `N days/weeks/months ago`;
//!   `past/last N hours/days/weeks/months`; `the day before yesterday`,
//!   `the day after tomorrow`; `today`, `tonight`, `this morning/afternoon/evening`,
//!   `yesterday`, `tomorrow`; `last/this/next week|month|year` (weeks start on
//!   Monday); `last/this/next <weekday>`; `in/during/last/this/next <Month>
//!   [YYYY]` (a bare `in May` is the latest May that has begun, `next May`
//!   the first one after this month; lowercase `may` counts only with a
//!   year, so "in may" as a verb is not a month); `in/during/since YYYY`
//!   (1900–2199). A bare weekday ("on Monday") is ambiguous between past
//!   and future and gives no range.
//! - **Domain**: the CLINC150 domain of the classifier's intent (`banking`,
//!   `travel`, `utility`, ...; `assistant` for OptiClaw's own intents), only
//!   when the message is in scope.
//!
//! Only the first [`opticlaw_intent::text::MAX_INPUT_BYTES`] bytes are read,
//! the same cut the classifier makes.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate, Weekday};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// At most this many entities are kept.
pub const MAX_ENTITIES: usize = 16;
/// Longer entities (a very long URL, say) are cut to this many chars.
pub const MAX_ENTITY_CHARS: usize = 128;

/// Hints for the planner and memory retrieval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalHints {
    /// Names, mentions, emails, URLs and quantities, in order of appearance.
    pub entities: Vec<String>,
    /// A half-open `[start, end)` range the message refers to, in the zone
    /// of the `now` it was triaged with.
    pub time_range: Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)>,
    /// The CLINC150 domain of the message's intent, when it is in scope.
    pub domain: Option<String>,
}

/// Extracts hints from `text` (cut at the classifier's input limit), with
/// `domain` passed through.
pub fn extract(text: &str, now: DateTime<FixedOffset>, domain: Option<String>) -> RetrievalHints {
    let text = opticlaw_intent::text::truncate(text);
    RetrievalHints {
        entities: entities(text),
        time_range: time_range(text, now),
        domain,
    }
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"'`]+"#).unwrap());
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b").unwrap()
});
static MENTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\w@.])(@[A-Za-z0-9_][A-Za-z0-9_.-]*)").unwrap());
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)[$€£¥]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:%|°\s?[cf]\b|",
        r"(?:km|m|cm|mm|mi|miles?|ft|feet|foot|inch(?:es)?|yards?|kg|g|mg|lbs?|pounds?|oz|ounces?|",
        r"l|ml|liters?|litres?|gallons?|cups?|degrees?|kph|mph|km/h|kb|mb|gb|tb|usd|eur|gbp|",
        r"dollars?|euros?|percent|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?)\b)"
    ))
    .unwrap()
});
static CAPITALISED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b\p{Lu}[\p{L}\p{N}'’&-]*(?:[ \t]+\p{Lu}[\p{L}\p{N}'’&-]*)*").unwrap()
});

/// Capitalised words that are not names: sentence openers, pronouns,
/// common verbs and greetings, months and weekdays.
const NOT_NAMES: &[&str] = &[
    "a",
    "about",
    "add",
    "after",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "ask",
    "at",
    "be",
    "before",
    "book",
    "buy",
    "but",
    "by",
    "call",
    "can",
    "cancel",
    "check",
    "could",
    "dear",
    "did",
    "do",
    "does",
    "don't",
    "email",
    "find",
    "for",
    "from",
    "get",
    "give",
    "good",
    "great",
    "has",
    "have",
    "he",
    "hello",
    "help",
    "her",
    "hey",
    "hi",
    "his",
    "how",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "is",
    "it",
    "it's",
    "just",
    "let",
    "let's",
    "list",
    "look",
    "make",
    "may",
    "me",
    "message",
    "my",
    "no",
    "not",
    "note",
    "now",
    "of",
    "oh",
    "ok",
    "okay",
    "on",
    "or",
    "our",
    "please",
    "put",
    "read",
    "remember",
    "remind",
    "reply",
    "run",
    "say",
    "schedule",
    "search",
    "send",
    "set",
    "she",
    "should",
    "show",
    "so",
    "sorry",
    "summarise",
    "summarize",
    "tell",
    "text",
    "thank",
    "thanks",
    "that",
    "the",
    "then",
    "there",
    "these",
    "they",
    "this",
    "to",
    "today",
    "tomorrow",
    "tonight",
    "translate",
    "we",
    "what",
    "what's",
    "when",
    "where",
    "which",
    "who",
    "why",
    "will",
    "with",
    "would",
    "write",
    "yes",
    "yesterday",
    "you",
    "your",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn is_not_name(word: &str) -> bool {
    let lower = word.to_lowercase().replace('’', "'");
    NOT_NAMES.contains(&lower.as_str())
}

/// Entities as the module documentation describes.
pub fn entities(text: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    // Byte spans already claimed by URLs and emails, so their parts are not
    // read again as names or mentions.
    let mut claimed: Vec<(usize, usize)> = Vec::new();
    for m in URL.find_iter(text) {
        let url = m
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}']);
        claimed.push((m.start(), m.end()));
        found.push((m.start(), url.to_owned()));
    }
    for m in EMAIL.find_iter(text) {
        if !overlaps(&claimed, m.start(), m.end()) {
            claimed.push((m.start(), m.end()));
            found.push((m.start(), m.as_str().to_owned()));
        }
    }
    for c in MENTION.captures_iter(text) {
        let m = c.get(1).expect("group 1 always takes part");
        if !overlaps(&claimed, m.start(), m.end()) {
            found.push((
                m.start(),
                m.as_str().trim_end_matches(['.', '-']).to_owned(),
            ));
        }
    }
    for m in QUANTITY.find_iter(text) {
        if !overlaps(&claimed, m.start(), m.end()) {
            found.push((m.start(), m.as_str().to_owned()));
        }
    }
    for m in CAPITALISED.find_iter(text) {
        if overlaps(&claimed, m.start(), m.end()) || text[..m.start()].ends_with('@') {
            continue;
        }
        // Drop leading and trailing common words: "Call Sam" → "Sam",
        // "Ask Sam On" → "Sam".
        let mut offset = m.start();
        let mut words: Vec<&str> = m.as_str().split_whitespace().collect();
        while let Some(first) = words.first() {
            if !is_not_name(first) {
                break;
            }
            offset += m.as_str()[offset - m.start()..].find(first).unwrap_or(0) + first.len();
            words.remove(0);
        }
        while words.last().is_some_and(|w| is_not_name(w)) {
            words.pop();
        }
        if !words.is_empty() {
            found.push((offset, words.join(" ")));
        }
    }
    found.sort_by_key(|(start, _)| *start);
    let mut out: Vec<String> = Vec::new();
    for (_, entity) in found {
        let entity: String = entity.chars().take(MAX_ENTITY_CHARS).collect();
        if entity.is_empty() || out.contains(&entity) {
            continue;
        }
        out.push(entity);
        if out.len() == MAX_ENTITIES {
            break;
        }
    }
    out
}

fn overlaps(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    spans.iter().any(|&(s, e)| start < e && s < end)
}

static AGO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,4}|an?|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)\s+(day|week|month|year)s?\s+ago\b").unwrap()
});
static PAST_N: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:past|last|previous)\s+(\d{1,4}|two|three|four|five|six|seven|eight|nine|ten|twelve|a couple of|a few)\s+(hour|day|week|month|year)s?\b").unwrap()
});
static DAY_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(the day before yesterday|the day after tomorrow|today|tonight|this (?:morning|afternoon|evening)|yesterday|tomorrow)\b").unwrap()
});
static RELATIVE_PERIOD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(last|past|previous|this|next|the coming)\s+(week|month|year)\b").unwrap()
});
static RELATIVE_WEEKDAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(last|this|next)\s+(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    )
    .unwrap()
});
static MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(in|during|last|this|next|since)\s+(?:early\s+|late\s+|mid-?\s*)?(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\b(?:\s+(\d{4})\b)?").unwrap()
});
static YEAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:in|during|since|of)\s+((?:19|20|21)\d\d)\b").unwrap());

fn count(word: &str) -> Option<u32> {
    Some(match word.to_ascii_lowercase().as_str() {
        "a" | "an" | "one" => 1,
        "two" | "a couple of" => 2,
        "three" | "a few" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "twelve" => 12,
        digits => digits.parse().ok()?,
    })
}

/// Midnight starting `date` in `now`'s zone.
fn midnight(date: NaiveDate, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    date.and_hms_opt(0, 0, 0)?
        .and_local_timezone(*now.offset())
        .single()
}

fn days(
    from: NaiveDate,
    n: i64,
    now: DateTime<FixedOffset>,
) -> Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    let end = from.checked_add_signed(Duration::try_days(n)?)?;
    Some((midnight(from, now)?, midnight(end, now)?))
}

fn month_range(
    year: i32,
    month: u32,
    now: DateTime<FixedOffset>,
) -> Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = first.checked_add_months(Months::new(1))?;
    Some((midnight(first, now)?, midnight(next, now)?))
}

fn year_range(
    year: i32,
    now: DateTime<FixedOffset>,
) -> Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    Some((
        midnight(NaiveDate::from_ymd_opt(year, 1, 1)?, now)?,
        midnight(NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?, now)?,
    ))
}

fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let names = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    names
        .iter()
        .position(|n| lower.starts_with(n))
        .map(|i| i as u32 + 1)
}

fn weekday(name: &str) -> Option<Weekday> {
    name.to_ascii_lowercase().parse().ok()
}

/// The time range the message refers to, as the module documentation
/// describes; `None` when no phrase is found.
pub fn time_range(
    text: &str,
    now: DateTime<FixedOffset>,
) -> Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    let today = now.date_naive();
    if let Some(c) = AGO.captures(text) {
        let n = count(&c[1])?;
        return match c[2].to_ascii_lowercase().as_str() {
            "day" => days(
                today.checked_sub_signed(Duration::try_days(n.into())?)?,
                1,
                now,
            ),
            "week" => {
                let day = today.checked_sub_signed(Duration::try_weeks(n.into())?)?;
                let monday = day.checked_sub_signed(Duration::try_days(
                    day.weekday().num_days_from_monday().into(),
                )?)?;
                days(monday, 7, now)
            }
            "month" => {
                let first = today.with_day(1)?.checked_sub_months(Months::new(n))?;
                month_range(first.year(), first.month(), now)
            }
            _ => year_range(today.year().checked_sub(i32::try_from(n).ok()?)?, now),
        };
    }
    if let Some(c) = PAST_N.captures(text) {
        let n = count(&c[1])?;
        let start = match c[2].to_ascii_lowercase().as_str() {
            "hour" => now.checked_sub_signed(Duration::try_hours(n.into())?)?,
            "day" => midnight(
                today.checked_sub_signed(Duration::try_days(n.into())?)?,
                now,
            )?,
            "week" => midnight(
                today.checked_sub_signed(Duration::try_weeks(n.into())?)?,
                now,
            )?,
            "month" => midnight(today.checked_sub_months(Months::new(n))?, now)?,
            _ => midnight(
                today.checked_sub_months(Months::new(n.checked_mul(12)?))?,
                now,
            )?,
        };
        return Some((start, now));
    }
    if let Some(c) = DAY_WORD.captures(text) {
        let word = c[1].to_ascii_lowercase();
        let offset = match word.as_str() {
            "the day before yesterday" => -2,
            "yesterday" => -1,
            "tomorrow" => 1,
            "the day after tomorrow" => 2,
            _ => 0,
        };
        return days(
            today.checked_add_signed(Duration::try_days(offset)?)?,
            1,
            now,
        );
    }
    if let Some(c) = RELATIVE_PERIOD.captures(text) {
        let shift: i32 = match c[1].to_ascii_lowercase().as_str() {
            "this" => 0,
            "next" | "the coming" => 1,
            _ => -1,
        };
        return match c[2].to_ascii_lowercase().as_str() {
            "week" => {
                let monday = today.checked_sub_signed(Duration::try_days(
                    today.weekday().num_days_from_monday().into(),
                )?)?;
                let start = monday.checked_add_signed(Duration::try_weeks(i64::from(shift))?)?;
                days(start, 7, now)
            }
            "month" => {
                let first = today.with_day(1)?;
                let first = match shift {
                    -1 => first.checked_sub_months(Months::new(1))?,
                    1 => first.checked_add_months(Months::new(1))?,
                    _ => first,
                };
                month_range(first.year(), first.month(), now)
            }
            _ => year_range(today.year().checked_add(shift)?, now),
        };
    }
    if let Some(c) = RELATIVE_WEEKDAY.captures(text) {
        let target = weekday(&c[2])?.num_days_from_monday() as i64;
        let current = today.weekday().num_days_from_monday() as i64;
        let offset = match c[1].to_ascii_lowercase().as_str() {
            // The latest such day strictly before today.
            "last" => -((current - target + 6).rem_euclid(7) + 1),
            // The first such day strictly after today.
            "next" => (target - current + 6).rem_euclid(7) + 1,
            // That day of the current week.
            _ => target - current,
        };
        return days(
            today.checked_add_signed(Duration::try_days(offset)?)?,
            1,
            now,
        );
    }
    for c in MONTH.captures_iter(text) {
        let name = c.get(2).expect("group 2 always takes part").as_str();
        let year = c.get(3).and_then(|y| y.as_str().parse::<i32>().ok());
        // "in may" is usually the verb; "in May" or "may 2024" is the month.
        if name.eq_ignore_ascii_case("may") && name != "May" && year.is_none() {
            continue;
        }
        let month = month_number(name)?;
        let year = year.unwrap_or_else(|| {
            let this_year = today.year();
            match c[1].to_ascii_lowercase().as_str() {
                "next" if month <= today.month() => this_year + 1,
                "next" | "this" => this_year,
                _ if month > today.month() => this_year - 1,
                _ if c[1].eq_ignore_ascii_case("last") && month == today.month() => this_year - 1,
                _ => this_year,
            }
        });
        return month_range(year, month, now);
    }
    if let Some(c) = YEAR.captures(text) {
        return year_range(c[1].parse().ok()?, now);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        // A Wednesday.
        DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap()
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn range(text: &str) -> Option<(String, String)> {
        time_range(text, now()).map(|(a, b)| (a.to_rfc3339(), b.to_rfc3339()))
    }

    fn r(a: &str, b: &str) -> Option<(String, String)> {
        Some((at(a).to_rfc3339(), at(b).to_rfc3339()))
    }

    #[test]
    fn last_week_becomes_a_time_range_hint() {
        assert_eq!(
            range("what did I spend last week?"),
            r("2026-11-16T00:00:00+01:00", "2026-11-23T00:00:00+01:00")
        );
    }

    #[test]
    fn yesterday_and_tomorrow_are_whole_days() {
        assert_eq!(
            range("what did Sam say yesterday"),
            r("2026-11-24T00:00:00+01:00", "2026-11-25T00:00:00+01:00")
        );
        assert_eq!(
            range("anything on tomorrow?"),
            r("2026-11-26T00:00:00+01:00", "2026-11-27T00:00:00+01:00")
        );
        assert_eq!(
            range("what happened the day before yesterday"),
            r("2026-11-23T00:00:00+01:00", "2026-11-24T00:00:00+01:00")
        );
    }

    #[test]
    fn in_may_is_the_latest_may_and_may_the_verb_is_not_a_month() {
        assert_eq!(
            range("photos from the trip in May"),
            r("2026-05-01T00:00:00+01:00", "2026-06-01T00:00:00+01:00")
        );
        assert_eq!(
            range("what did I buy in December"),
            r("2025-12-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00")
        );
        assert_eq!(
            range("next March"),
            r("2027-03-01T00:00:00+01:00", "2027-04-01T00:00:00+01:00")
        );
        assert_eq!(range("the answer in may be wrong"), None);
        assert_eq!(
            range("invoices in may 2024"),
            r("2024-05-01T00:00:00+01:00", "2024-06-01T00:00:00+01:00")
        );
    }

    #[test]
    fn weekdays_months_years_and_counts_become_ranges() {
        assert_eq!(
            range("notes from last monday"),
            r("2026-11-23T00:00:00+01:00", "2026-11-24T00:00:00+01:00")
        );
        assert_eq!(
            range("next wednesday"),
            r("2026-12-02T00:00:00+01:00", "2026-12-03T00:00:00+01:00")
        );
        assert_eq!(
            range("emails from last month"),
            r("2026-10-01T00:00:00+01:00", "2026-11-01T00:00:00+01:00")
        );
        assert_eq!(
            range("taxes in 2024"),
            r("2024-01-01T00:00:00+01:00", "2025-01-01T00:00:00+01:00")
        );
        assert_eq!(
            range("3 days ago"),
            r("2026-11-22T00:00:00+01:00", "2026-11-23T00:00:00+01:00")
        );
        assert_eq!(
            range("in the past 2 hours"),
            r("2026-11-25T13:00:00+01:00", "2026-11-25T15:00:00+01:00")
        );
        assert_eq!(range("on Monday"), None);
        assert_eq!(range("hello there"), None);
    }

    #[test]
    fn names_mentions_emails_urls_and_quantities_are_entities() {
        let found = entities(
            "Call Sam about the New York trip, cc @dana and ann@example.com, see https://example.com/a, budget $1,200 for 5 km.",
        );
        assert_eq!(
            found,
            [
                "Sam",
                "New York",
                "@dana",
                "ann@example.com",
                "https://example.com/a",
                "$1,200",
                "5 km"
            ]
        );
    }

    #[test]
    fn sentence_openers_months_and_weekdays_are_not_names() {
        assert!(entities("What is the weather like on Monday in May?").is_empty());
        assert!(entities("I think The plan is fine").is_empty());
    }

    #[test]
    fn entities_are_capped_and_deduplicated() {
        let text = (0..40)
            .map(|i| format!("Name{i} Name{i}, "))
            .collect::<String>();
        let found = entities(&text);
        assert_eq!(found.len(), MAX_ENTITIES);
        assert_eq!(found[0], "Name0 Name0");
    }
}
