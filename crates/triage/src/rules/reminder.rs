//! Reminders in plain English: "remind me in 10 minutes to call Sam",
//! "remind me tomorrow at 9 to pay rent", "remind me to stretch at 5pm".
//!
//! The when-phrase may stand before or after the task; what is left once it
//! is cut out is the task.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Weekday};
use regex::Regex;

/// A parsed reminder: when, in the user's zone, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub wake_at: DateTime<FixedOffset>,
    pub task: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReminderError {
    #[error(
        "When should I remind you? Say for example \"remind me in 10 minutes to call Sam\" or \"remind me tomorrow at 9 to pay rent\"."
    )]
    NoTime,
    #[error(
        "What should I remind you about? Say for example \"remind me in 10 minutes to call Sam\"."
    )]
    NoTask,
    #[error("{0} is not a time of day I understand (try 9, 9:30, 9am or 21:30).")]
    BadTime(String),
    #[error("That time has already passed; say a time in the future.")]
    InThePast,
    #[error("I can only set reminders up to a year ahead.")]
    TooFar,
}

/// A count before a unit: digits may touch the unit ("10m"), words may not
/// (so the "an" and "d" of "and" are never read as "a day").
const NUMBER_WORD: &str = r"\d+\s*|(?:an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty-five|a couple of|a few)\s+";
const UNIT: &str = r"seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w";

static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:please\s+)?(?:(?:can|could|would) you\s+)?(?:remind me|set (?:a|me a) reminder|reminder)\b[:,]?\s*").unwrap()
});

static RELATIVE: LazyLock<Regex> = LazyLock::new(|| {
    let part = format!(r"(?:{NUMBER_WORD})(?:{UNIT})\b");
    Regex::new(&format!(
        r"(?i)(?:\b(?:in|after)\s+|^\s*)(half an hour|{part}(?:\s*(?:,|and)?\s*{part})*)"
    ))
    .unwrap()
});

static RELATIVE_PART: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)({NUMBER_WORD})({UNIT})\b")).unwrap());

static CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:at\s+)?(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)|\bat\s+(\d{1,2})(?:[:.](\d{2}))?\b|\b(?:at\s+)?(noon|midday|midnight)\b").unwrap()
});

static DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(today|tonight|this evening|tomorrow morning|tomorrow|(?:on |next )?(monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b").unwrap()
});

static TIME_QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(what(?:'s| is) the (?:time|date)|what time is it|what day is (?:it|today))\s*\??\s*$").unwrap()
});

/// The text after "remind me", if the message is a reminder request.
pub(crate) fn strip_reminder_prefix(text: &str) -> Option<&str> {
    PREFIX.find(text).map(|m| &text[m.end()..])
}

pub(crate) fn asks_for_time(text: &str) -> bool {
    TIME_QUESTION.is_match(text)
}

/// Parses the part after "remind me" relative to `now`.
pub fn parse_reminder(text: &str, now: DateTime<FixedOffset>) -> Result<Reminder, ReminderError> {
    let mut cut: Vec<(usize, usize)> = Vec::new();
    let wake_at = if let Some(found) = RELATIVE.captures(text) {
        let whole = found.get(0).unwrap();
        cut.push((whole.start(), whole.end()));
        now + relative_duration(&found[1])
    } else {
        let clock = CLOCK.captures(text);
        let day = DAY.captures(text);
        if clock.is_none() && day.is_none() {
            return Err(ReminderError::NoTime);
        }
        let time_of_day = match &clock {
            Some(c) => {
                let whole = c.get(0).unwrap();
                cut.push((whole.start(), whole.end()));
                Some(clock_time(c)?)
            }
            None => None,
        };
        let day_word = day.as_ref().map(|d| {
            let whole = d.get(0).unwrap();
            cut.push((whole.start(), whole.end()));
            d[1].to_ascii_lowercase()
        });
        absolute_time(now, day_word.as_deref(), time_of_day)?
    };
    if wake_at <= now {
        return Err(ReminderError::InThePast);
    }
    if wake_at - now > Duration::days(366) {
        return Err(ReminderError::TooFar);
    }
    let task = task_without(text, &mut cut);
    if task.is_empty() {
        return Err(ReminderError::NoTask);
    }
    Ok(Reminder { wake_at, task })
}

fn number(word: &str) -> i64 {
    match word.trim().to_ascii_lowercase().as_str() {
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
        "eleven" => 11,
        "twelve" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        "forty-five" => 45,
        digits => digits.parse().unwrap_or(i64::MAX / 4),
    }
}

fn relative_duration(phrase: &str) -> Duration {
    if phrase.eq_ignore_ascii_case("half an hour") {
        return Duration::minutes(30);
    }
    RELATIVE_PART
        .captures_iter(phrase)
        .map(|part| {
            let n = number(&part[1]).min(1_000_000);
            match part[2].to_ascii_lowercase().chars().next() {
                Some('s') => Duration::seconds(n),
                Some('m') => Duration::minutes(n),
                Some('h') => Duration::hours(n),
                Some('d') => Duration::days(n),
                _ => Duration::weeks(n),
            }
        })
        .fold(Duration::zero(), |sum, d| sum + d)
}

fn clock_time(found: &regex::Captures<'_>) -> Result<(NaiveTime, bool), ReminderError> {
    if let Some(word) = found.get(6) {
        let hour = if word.as_str().eq_ignore_ascii_case("midnight") {
            0
        } else {
            12
        };
        return Ok((NaiveTime::from_hms_opt(hour, 0, 0).unwrap(), true));
    }
    let (hour, minute, meridiem) = match found.get(1) {
        Some(h) => (h.as_str(), found.get(2), found.get(3)),
        None => (found.get(4).unwrap().as_str(), found.get(5), None),
    };
    let shown = found.get(0).unwrap().as_str().trim().to_owned();
    let mut hour: u32 = hour
        .parse()
        .map_err(|_| ReminderError::BadTime(shown.clone()))?;
    let minute: u32 = minute
        .map_or(Ok(0), |m| m.as_str().parse())
        .map_err(|_| ReminderError::BadTime(shown.clone()))?;
    let explicit = meridiem.is_some() || hour == 0 || hour > 12;
    if let Some(m) = meridiem {
        if hour == 0 || hour > 12 {
            return Err(ReminderError::BadTime(shown));
        }
        let pm = m.as_str().to_ascii_lowercase().starts_with('p');
        hour = match (hour, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    NaiveTime::from_hms_opt(hour, minute, 0)
        .map(|t| (t, explicit))
        .ok_or(ReminderError::BadTime(shown))
}

/// Resolves a day word and an optional time of day to the next matching
/// instant. Without a day, a bare hour that has passed today means the same
/// hour in the evening if that is still ahead, else tomorrow.
fn absolute_time(
    now: DateTime<FixedOffset>,
    day: Option<&str>,
    time: Option<(NaiveTime, bool)>,
) -> Result<DateTime<FixedOffset>, ReminderError> {
    let today = now.date_naive();
    let default_time = match day {
        Some("tonight") | Some("this evening") => NaiveTime::from_hms_opt(20, 0, 0),
        _ => NaiveTime::from_hms_opt(9, 0, 0),
    }
    .unwrap();
    let (time, explicit) = time.unwrap_or((default_time, true));
    let at = |date: chrono::NaiveDate, time: NaiveTime| {
        now.timezone()
            .from_local_datetime(&date.and_time(time))
            .single()
            .ok_or(ReminderError::BadTime(time.to_string()))
    };
    let date = match day {
        Some("tomorrow") | Some("tomorrow morning") => today.succ_opt().unwrap_or(today),
        Some("today") | Some("tonight") | Some("this evening") => today,
        Some(word) => {
            let name = word.trim_start_matches("on ").trim_start_matches("next ");
            let target: Weekday = name.parse().map_err(|_| ReminderError::NoTime)?;
            let mut ahead = (7 + target.num_days_from_monday() as i64
                - today.weekday().num_days_from_monday() as i64)
                % 7;
            if word.starts_with("next ") && ahead == 0 {
                ahead = 7;
            }
            let date = today + Duration::days(ahead);
            if ahead == 0 && at(date, time)? <= now {
                today + Duration::days(7)
            } else {
                date
            }
        }
        None => {
            let candidate = at(today, time)?;
            if candidate > now {
                return Ok(candidate);
            }
            if !explicit && time.hour_12() < 12 {
                let evening = at(today, time + Duration::hours(12))?;
                if evening > now {
                    return Ok(evening);
                }
            }
            return at(today.succ_opt().unwrap_or(today), time);
        }
    };
    let wanted = at(date, time)?;
    // "today at 9" when it is 15:00 probably means 21:00.
    if day == Some("today") && wanted <= now && !explicit {
        return at(date, time + Duration::hours(12));
    }
    Ok(wanted)
}

trait Hour12 {
    fn hour_12(&self) -> u32;
}

impl Hour12 for NaiveTime {
    fn hour_12(&self) -> u32 {
        use chrono::Timelike;
        self.hour()
    }
}

/// The message with the when-phrases cut out and the joining words trimmed.
fn task_without(text: &str, cut: &mut [(usize, usize)]) -> String {
    cut.sort_unstable();
    let mut rest = String::with_capacity(text.len());
    let mut from = 0;
    for &(start, end) in cut.iter() {
        if start >= from {
            rest.push_str(&text[from..start]);
            rest.push(' ');
            from = end;
        }
    }
    rest.push_str(&text[from..]);
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut task = words.join(" ");
    loop {
        let trimmed = task
            .trim_matches(|c: char| {
                c.is_whitespace() || matches!(c, ',' | ':' | ';' | '.' | '!' | '-')
            })
            .to_owned();
        let lower = trimmed.to_ascii_lowercase();
        let stripped = ["to ", "that ", "about ", "and ", "me to "]
            .iter()
            .find_map(|lead| {
                lower
                    .starts_with(lead)
                    .then(|| trimmed[lead.len()..].to_owned())
            })
            .or_else(|| {
                [" on", " at", " in", " and"].iter().find_map(|tail| {
                    lower
                        .ends_with(tail)
                        .then(|| trimmed[..trimmed.len() - tail.len()].to_owned())
                })
            });
        match stripped {
            Some(shorter) => task = shorter,
            None => return trimmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    // Wednesday 25 November 2026, 15:00 in UTC+1.
    fn now() -> DateTime<FixedOffset> {
        at("2026-11-25T15:00:00+01:00")
    }

    fn parse(text: &str) -> Reminder {
        let rest = text.strip_prefix("/remind ").unwrap_or(text);
        let rest = strip_reminder_prefix(rest).unwrap_or(rest);
        parse_reminder(rest, now()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn relative_reminders() {
        let r = parse("remind me in 10 minutes to call Sam");
        assert_eq!(r.wake_at, now() + Duration::minutes(10));
        assert_eq!(r.task, "call Sam");
        assert_eq!(
            parse("Remind me to stretch in 1 hour and 30 minutes").wake_at,
            now() + Duration::minutes(90)
        );
        assert_eq!(parse("remind me in half an hour: tea").task, "tea");
        assert_eq!(
            parse("remind me in an hour to leave").wake_at,
            now() + Duration::hours(1)
        );
        assert_eq!(
            parse("/remind 10m check the oven").wake_at,
            now() + Duration::minutes(10)
        );
        assert_eq!(
            parse("remind me in 2 seconds to blink").wake_at,
            now() + Duration::seconds(2)
        );
    }

    #[test]
    fn tomorrow_at_nine() {
        let r = parse("remind me tomorrow at 9 to pay rent");
        assert_eq!(r.wake_at, at("2026-11-26T09:00:00+01:00"));
        assert_eq!(r.task, "pay rent");
        let later = parse("remind me to pay rent tomorrow at 9:30pm");
        assert_eq!(later.wake_at, at("2026-11-26T21:30:00+01:00"));
        assert_eq!(later.task, "pay rent");
    }

    #[test]
    fn clock_times_today_and_weekdays() {
        assert_eq!(
            parse("remind me at 17:45 to leave").wake_at,
            at("2026-11-25T17:45:00+01:00")
        );
        // 9 has passed today: 21:00 is the next 9 o'clock.
        assert_eq!(
            parse("remind me at 9 to lock up").wake_at,
            at("2026-11-25T21:00:00+01:00")
        );
        // 9am explicitly has passed: tomorrow.
        assert_eq!(
            parse("remind me at 9am to run").wake_at,
            at("2026-11-26T09:00:00+01:00")
        );
        assert_eq!(
            parse("remind me on friday to submit the report").wake_at,
            at("2026-11-27T09:00:00+01:00")
        );
        assert_eq!(
            parse("remind me on wednesday at 10 to water plants").wake_at,
            at("2026-12-02T10:00:00+01:00")
        );
        assert_eq!(parse("remind me at noon to eat").wake_at.hour(), 12);
        assert_eq!(
            parse("remind me tonight to call mum").wake_at,
            at("2026-11-25T20:00:00+01:00")
        );
    }

    #[test]
    fn errors_say_what_is_missing() {
        assert_eq!(
            parse_reminder("to call Sam", now()),
            Err(ReminderError::NoTime)
        );
        assert_eq!(
            parse_reminder("in 10 minutes", now()),
            Err(ReminderError::NoTask)
        );
        assert!(matches!(
            parse_reminder("at 25:00 to x", now()),
            Err(ReminderError::BadTime(_))
        ));
        assert_eq!(
            parse_reminder("in 500 days to renew", now()),
            Err(ReminderError::TooFar)
        );
    }

    #[test]
    fn words_like_at_inside_the_task_stay_in_it() {
        let r = parse("remind me in 5 minutes to look at the car");
        assert_eq!(r.task, "look at the car");
    }
}
