//! Deterministic fast handlers for intents the classifier is confident
//! about. A handler answers only from what it can compute (the clock, the
//! message itself, fixed facts about OptiClaw) and returns `None` whenever
//! the message needs data it does not have, so the message goes to the
//! planner instead of getting a made-up answer.
//!
//! | intent | answer |
//! | --- | --- |
//! | `greeting`, `goodbye`, `thank_you`, `what_is_your_name`, `are_you_a_bot`, `who_made_you`, `who_do_you_work_for`, `where_are_you_from`, `do_you_have_pets`, `what_can_i_ask_you` | fixed templates about OptiClaw (messages of at most [`MAX_SMALL_TALK_WORDS`] words; longer ones carry a request) |
//! | `time` | the local time, unless a place is named ("in Denver", "timezone") |
//! | `date` | today's, tomorrow's or yesterday's date, unless another day is meant (a holiday, a number, "next", "of") |
//! | `measurement_conversion` | [`crate::convert::convert`] |
//! | `calculator` | [`crate::convert::calculate`] |
//! | `timer` | a reminder when the duration ("10 minutes", "an hour and a half") is up |
//! | `alarm` | a reminder at the time said, if it parses as a reminder time does |
//! | `reminder` | the reminder list |
//! | `reminder_update` | a reminder, when the text after "make a reminder …" parses |
//! | `flip_coin`, `roll_dice` | a pseudo-random outcome mixed from the clock's nanoseconds (not for anything that matters) |

use std::sync::LazyLock;

use chrono::{DateTime, Duration, FixedOffset};
use regex::Regex;

use crate::convert;
use crate::rules::{HELP_TEXT, Reminder, RuleAction, parse_reminder};

/// Small-talk templates answer only messages this short; a longer greeting
/// ("hi, can you plan my week…") carries a request the planner should see.
pub const MAX_SMALL_TALK_WORDS: usize = 12;

/// The answer of `intent`'s handler to `text`, if it has one and the text
/// is something it can answer honestly.
pub fn answer(intent: &str, text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    let reply = |s: &str| Some(RuleAction::Reply(s.to_owned()));
    let short = text.split_whitespace().count() <= MAX_SMALL_TALK_WORDS;
    match intent {
        "greeting" if short => reply(
            "Hello! I'm OptiClaw. I can set reminders and timers, tell the time and date, convert units and do sums right away; /help lists the rest.",
        ),
        "goodbye" if short => reply("Goodbye! Your reminders keep running while you're away."),
        "thank_you" if short => reply("You're welcome!"),
        "what_is_your_name" if short => reply("I'm OptiClaw, your local assistant."),
        "are_you_a_bot" if short => {
            reply("Yes: I'm OptiClaw, a software assistant running on your own machine.")
        }
        "who_made_you" if short => reply(
            "I'm OptiClaw, an open-source assistant written by the OptiClaw project's contributors; I run on your own machine.",
        ),
        "who_do_you_work_for" if short => {
            reply("I work for you: I run on your machine and keep your data in one local file.")
        }
        "where_are_you_from" if short => reply("I run right here, on your own machine."),
        "do_you_have_pets" if short => reply("No pets: I'm software running on your machine."),
        "what_can_i_ask_you" if short => reply(HELP_TEXT),
        "time" => local_time(text, now),
        "date" => local_date(text, now),
        "measurement_conversion" => convert::convert(text).map(RuleAction::Reply),
        "calculator" => convert::calculate(text).map(RuleAction::Reply),
        "timer" => timer(text, now),
        "alarm" => alarm(text, now),
        "reminder" => Some(RuleAction::ListReminders),
        "reminder_update" => reminder(text, now),
        "flip_coin" => {
            let side = if mix(now) & 1 == 0 {
                "Heads."
            } else {
                "Tails."
            };
            reply(side)
        }
        "roll_dice" => roll(text, now),
        _ => None,
    }
}

static PLACE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:in|at|for|of)\s+(?:the\s+)?\p{L}|\btime ?zones?\b|\b(?:est|pst|cst|mst|gmt|utc|cet|ist|jst)\b|,").unwrap()
});

fn local_time(text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    if PLACE.is_match(text) {
        return None;
    }
    Some(RuleAction::Reply(crate::rules::describe_now(now)))
}

static OTHER_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\d|\b(?:in|of|until|till|since|ago|next|last|between|holiday|birthday|christmas|easter|thanksgiving|new year|when|week|month|year)\b").unwrap()
});
static DAY_SHIFT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(yesterday|tomorrow)").unwrap());

fn local_date(text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    if OTHER_DAY.is_match(text) {
        return None;
    }
    let (shift, which) = match DAY_SHIFT
        .captures(text)
        .map(|c| c[1].to_ascii_lowercase())
        .as_deref()
    {
        Some("yesterday") => (-1, "Yesterday was"),
        Some(_) => (1, "Tomorrow is"),
        None => (0, "Today is"),
    };
    let day = now.checked_add_signed(Duration::days(shift))?;
    Some(RuleAction::Reply(format!(
        "{which} {}.",
        day.format("%A %-d %B %Y")
    )))
}

const NUMBER_WORD: &str = r"\d{1,4}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|forty-five|fifty|sixty|ninety";

static DURATION_PART: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b({NUMBER_WORD})(?:\s+and\s+a\s+half)?[\s-]*(seconds?|secs?|minutes?|mins?|hours?|hrs?)\b(\s+and\s+a\s+half)?|\b(half an hour|an hour and a half)\b"
    ))
    .unwrap()
});

fn number_word(word: &str) -> Option<i64> {
    Some(match word.to_ascii_lowercase().as_str() {
        "a" | "an" | "one" => 1,
        "two" => 2,
        "three" => 3,
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
        "forty" => 40,
        "forty-five" => 45,
        "fifty" => 50,
        "sixty" => 60,
        "ninety" => 90,
        digits => digits.parse().ok()?,
    })
}

/// Total seconds of every duration phrase in `text`, and how it reads.
fn duration(text: &str) -> Option<(i64, String)> {
    let mut seconds = 0i64;
    let mut said = Vec::new();
    for c in DURATION_PART.captures_iter(text) {
        said.push(c[0].trim().to_lowercase());
        if let Some(fixed) = c.get(4) {
            seconds += match fixed.as_str().to_ascii_lowercase().as_str() {
                "half an hour" => 1800,
                _ => 5400,
            };
            continue;
        }
        let n = number_word(&c[1])?;
        let unit = match c[2].to_ascii_lowercase().chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            _ => 3600,
        };
        let half = c[0].to_ascii_lowercase().contains("and a half");
        seconds = seconds.checked_add(n.checked_mul(unit)? + if half { unit / 2 } else { 0 })?;
    }
    (seconds > 0).then(|| (seconds, said.join(" and ")))
}

/// Timers up to a day.
fn timer(text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    let (seconds, said) = duration(text)?;
    if seconds > 86_400 {
        return None;
    }
    Some(RuleAction::ScheduleReminder(Reminder {
        wake_at: now.checked_add_signed(Duration::seconds(seconds))?,
        task: format!("check the {said} timer"),
    }))
}

fn alarm(text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    let parsed = parse_reminder(&format!("{text} (alarm)"), now).ok()?;
    let task = if text.to_lowercase().contains("wake") {
        "wake up (alarm)"
    } else {
        "respond to your alarm"
    };
    Some(RuleAction::ScheduleReminder(Reminder {
        wake_at: parsed.wake_at,
        task: task.to_owned(),
    }))
}

static REMINDER_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:(?:please|can you|could you|will you|would you|i need you to|i want you to)\s+)*(?:(?:make|create|set up|set|add|put in|schedule)\s+(?:a\s+|me\s+a\s+|an?\s+)?(?:new\s+)?reminder\s+(?:for me\s+)?(?:to\s+|that\s+|about\s+|for\s+|:\s*)?|(?:don'?t let me forget|make sure i remember|help me remember)\s+(?:to\s+)?)").unwrap()
});

fn reminder(text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    let lead = REMINDER_LEAD.find(text)?;
    parse_reminder(&text[lead.end()..], now)
        .ok()
        .map(RuleAction::ScheduleReminder)
}

static DICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:(\d{1,2}|an?|one|two|three|four|five|six)\s*)?(?:d(\d{1,4})\b|(\d{1,4})[\s-]*sided\s+(?:dice|die)|(?:dice|die)\b)").unwrap()
});

fn roll(text: &str, now: DateTime<FixedOffset>) -> Option<RuleAction> {
    let (count, sides) = match DICE.captures(text) {
        Some(c) => {
            let count = c.get(1).map_or(Some(1), |n| number_word(n.as_str()))?;
            let sides = c
                .get(2)
                .or(c.get(3))
                .map_or(Some(6), |s| s.as_str().parse().ok())?;
            (count, sides)
        }
        None => (1, 6),
    };
    if !(1..=10).contains(&count) || !(2..=1000).contains(&sides) {
        return None;
    }
    let mut state = mix(now);
    let rolls: Vec<i64> = (0..count)
        .map(|_| {
            state = splitmix(state);
            (state % sides as u64) as i64 + 1
        })
        .collect();
    let text = if rolls.len() == 1 {
        format!("🎲 You rolled a {} (d{sides}).", rolls[0])
    } else {
        let list: Vec<String> = rolls.iter().map(i64::to_string).collect();
        format!(
            "🎲 You rolled {} (total {}, {count}d{sides}).",
            list.join(", "),
            rolls.iter().sum::<i64>()
        )
    };
    Some(RuleAction::Reply(text))
}

/// A well-mixed 64-bit value from the clock (pseudo-random, not secure).
fn mix(now: DateTime<FixedOffset>) -> u64 {
    splitmix(now.timestamp() as u64 ^ (u64::from(now.timestamp_subsec_nanos()) << 20))
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-25T15:00:00+01:00").unwrap()
    }

    fn reply(intent: &str, text: &str) -> Option<String> {
        match answer(intent, text, now()) {
            Some(RuleAction::Reply(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn time_in_another_place_is_not_answered_with_local_time() {
        assert!(
            reply("time", "what's the time right now")
                .unwrap()
                .contains("15:00")
        );
        assert_eq!(
            reply("time", "what time is it in punta gorda, florida"),
            None
        );
        assert_eq!(reply("time", "current time in the central timezone"), None);
    }

    #[test]
    fn dates_of_today_tomorrow_and_yesterday_are_answered_and_holidays_are_not() {
        assert_eq!(
            reply("date", "what is the date for tomorrow").as_deref(),
            Some("Tomorrow is Thursday 26 November 2026.")
        );
        assert_eq!(
            reply("date", "tell me what day today is").as_deref(),
            Some("Today is Wednesday 25 November 2026.")
        );
        assert_eq!(reply("date", "what date is thanksgiving"), None);
        assert_eq!(reply("date", "what's the date in 3 weeks"), None);
    }

    #[test]
    fn timer_becomes_a_reminder_when_the_duration_parses() {
        let Some(RuleAction::ScheduleReminder(r)) =
            answer("timer", "please set a timer for 6 minutes", now())
        else {
            panic!("no reminder")
        };
        assert_eq!(r.wake_at, now() + Duration::minutes(6));
        assert_eq!(r.task, "check the 6 minutes timer");
        let Some(RuleAction::ScheduleReminder(r)) =
            answer("timer", "i need a fifteen minute timer", now())
        else {
            panic!("no reminder")
        };
        assert_eq!(r.wake_at, now() + Duration::minutes(15));
        assert_eq!(answer("timer", "set a timer", now()), None);
        assert_eq!(answer("timer", "set a timer for 90 hours", now()), None);
    }

    #[test]
    fn alarm_and_reminder_update_schedule_when_the_time_parses() {
        let Some(RuleAction::ScheduleReminder(r)) =
            answer("alarm", "wake me up at noon tomorrow", now())
        else {
            panic!("no alarm")
        };
        assert_eq!(r.wake_at.to_rfc3339(), "2026-11-26T12:00:00+01:00");
        assert_eq!(answer("alarm", "set my alarm for getting up", now()), None);
        let Some(RuleAction::ScheduleReminder(r)) = answer(
            "reminder_update",
            "make a reminder for me to do my resume at 6pm",
            now(),
        ) else {
            panic!("no reminder")
        };
        assert_eq!(r.task, "do my resume");
        assert_eq!(
            answer(
                "reminder_update",
                "the next time it rains, remind me to close the windows",
                now()
            ),
            None
        );
        assert_eq!(
            answer("reminder", "read my reminder list to me", now()),
            Some(RuleAction::ListReminders)
        );
    }

    #[test]
    fn small_talk_templates_only_answer_short_messages() {
        assert!(reply("greeting", "hello, anyone there").is_some());
        assert_eq!(
            reply(
                "greeting",
                "hi there, could you please plan my whole week including the gym, work and dinner with friends"
            ),
            None
        );
        assert_eq!(reply("tell_joke", "tell me a joke"), None);
        assert_eq!(reply("book_flight", "book a flight to Paris"), None);
    }

    #[test]
    fn dice_follow_the_sides_asked_for() {
        for _ in 0..3 {
            let t = reply("roll_dice", "will you roll a d20").unwrap();
            assert!(t.contains("(d20)"), "{t}");
        }
        let t = reply("roll_dice", "roll two 12 sided dice").unwrap();
        assert!(t.contains("2d12"), "{t}");
        assert!(matches!(
            reply("flip_coin", "flip a coin").as_deref(),
            Some("Heads." | "Tails.")
        ));
    }
}
