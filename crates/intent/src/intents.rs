//! What each intent implies for routing: its domain, how urgent it usually
//! is, how likely it needs a tool, and whether a deterministic handler or
//! template can answer it (the fast path).
//!
//! Urgency and tool-need of a message are the expectations of these values
//! under the classifier's probabilities, so they are as calibrated as the
//! intent probabilities themselves.

/// Routing facts about one intent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntentProfile {
    /// CLINC150 domain (`banking`, `utility`, ...) or `assistant`/`oos`.
    pub domain: &'static str,
    /// 0 = can wait, 1 = act now (lost card, fraud, stranded car).
    pub urgency: f32,
    /// Probability that answering needs a tool or connector call.
    pub tool_needed: f32,
    /// A cached template, memory snippet or deterministic handler can answer.
    pub fast_path: bool,
}

/// The assistant-specific intents added to CLINC150's 150 (reminders map
/// onto CLINC150's `reminder_update`).
pub const ASSISTANT_INTENTS: [&str; 5] = [
    "memory_question",
    "approval",
    "small_talk",
    "coding_request",
    "multi_step_request",
];

const DOMAINS: [(&str, &[&str]); 10] = [
    (
        "banking",
        &[
            "freeze_account",
            "routing",
            "pin_change",
            "bill_due",
            "pay_bill",
            "account_blocked",
            "interest_rate",
            "min_payment",
            "bill_balance",
            "transfer",
            "order_checks",
            "balance",
            "spending_history",
            "transactions",
            "report_fraud",
        ],
    ),
    (
        "credit_cards",
        &[
            "replacement_card_duration",
            "expiration_date",
            "damaged_card",
            "improve_credit_score",
            "report_lost_card",
            "card_declined",
            "credit_limit_change",
            "apr",
            "redeem_rewards",
            "credit_limit",
            "rewards_balance",
            "application_status",
            "credit_score",
            "new_card",
            "international_fees",
        ],
    ),
    (
        "kitchen_and_dining",
        &[
            "food_last",
            "confirm_reservation",
            "how_busy",
            "ingredients_list",
            "calories",
            "nutrition_info",
            "recipe",
            "restaurant_reviews",
            "restaurant_reservation",
            "meal_suggestion",
            "restaurant_suggestion",
            "cancel_reservation",
            "ingredient_substitution",
            "cook_time",
            "accept_reservations",
        ],
    ),
    (
        "home",
        &[
            "what_song",
            "play_music",
            "todo_list_update",
            "reminder",
            "reminder_update",
            "calendar_update",
            "order_status",
            "update_playlist",
            "shopping_list",
            "calendar",
            "next_song",
            "order",
            "todo_list",
            "shopping_list_update",
            "smart_home",
        ],
    ),
    (
        "auto_and_commute",
        &[
            "current_location",
            "oil_change_when",
            "oil_change_how",
            "uber",
            "traffic",
            "tire_pressure",
            "schedule_maintenance",
            "gas",
            "mpg",
            "distance",
            "directions",
            "last_maintenance",
            "gas_type",
            "tire_change",
            "jump_start",
        ],
    ),
    (
        "travel",
        &[
            "plug_type",
            "travel_notification",
            "translate",
            "flight_status",
            "international_visa",
            "timezone",
            "exchange_rate",
            "travel_suggestion",
            "travel_alert",
            "vaccines",
            "lost_luggage",
            "book_flight",
            "book_hotel",
            "carry_on",
            "car_rental",
        ],
    ),
    (
        "utility",
        &[
            "weather",
            "alarm",
            "date",
            "find_phone",
            "share_location",
            "timer",
            "make_call",
            "calculator",
            "definition",
            "measurement_conversion",
            "flip_coin",
            "spelling",
            "time",
            "roll_dice",
            "text",
        ],
    ),
    (
        "work",
        &[
            "pto_request_status",
            "next_holiday",
            "insurance_change",
            "insurance",
            "meeting_schedule",
            "payday",
            "taxes",
            "income",
            "rollover_401k",
            "pto_balance",
            "pto_request",
            "w2",
            "schedule_meeting",
            "direct_deposit",
            "pto_used",
        ],
    ),
    (
        "small_talk",
        &[
            "who_made_you",
            "meaning_of_life",
            "who_do_you_work_for",
            "do_you_have_pets",
            "what_are_your_hobbies",
            "fun_fact",
            "what_is_your_name",
            "where_are_you_from",
            "goodbye",
            "thank_you",
            "greeting",
            "tell_joke",
            "are_you_a_bot",
            "how_old_are_you",
            "what_can_i_ask_you",
        ],
    ),
    (
        "meta",
        &[
            "change_speed",
            "user_name",
            "whisper_mode",
            "yes",
            "change_volume",
            "no",
            "change_language",
            "repeat",
            "change_accent",
            "cancel",
            "sync_device",
            "change_user_name",
            "change_ai_name",
            "reset_settings",
            "maybe",
        ],
    ),
];

/// Urgent: money or safety at stake, or someone stranded.
const URGENT: [&str; 9] = [
    "report_fraud",
    "report_lost_card",
    "freeze_account",
    "account_blocked",
    "card_declined",
    "jump_start",
    "lost_luggage",
    "find_phone",
    "travel_alert",
];

/// Time-bound but not an emergency.
const PROMPT: [&str; 14] = [
    "timer",
    "alarm",
    "bill_due",
    "pay_bill",
    "transfer",
    "flight_status",
    "traffic",
    "directions",
    "uber",
    "current_location",
    "tire_change",
    "make_call",
    "text",
    "approval",
];

/// Answerable by a deterministic handler, template or memory snippet.
const FAST: [&str; 28] = [
    "time",
    "date",
    "timer",
    "alarm",
    "calculator",
    "measurement_conversion",
    "flip_coin",
    "roll_dice",
    "spelling",
    "definition",
    "timezone",
    "reminder",
    "reminder_update",
    "todo_list",
    "todo_list_update",
    "shopping_list",
    "shopping_list_update",
    "calendar",
    "calendar_update",
    "user_name",
    "change_user_name",
    "change_ai_name",
    "whisper_mode",
    "repeat",
    "cancel",
    "memory_question",
    "approval",
    "small_talk",
];

/// Needs no tool at all: conversation and the assistant's own settings.
const NO_TOOL: [&str; 6] = ["yes", "no", "maybe", "repeat", "small_talk", "flip_coin"];

/// Routing facts for `intent` (unknown names get cautious defaults).
pub fn profile(intent: &str) -> IntentProfile {
    let domain = domain_of(intent);
    let urgency = if URGENT.contains(&intent) {
        0.9
    } else if PROMPT.contains(&intent) {
        0.6
    } else if matches!(domain, "small_talk" | "oos") {
        0.1
    } else {
        0.3
    };
    let tool_needed = if NO_TOOL.contains(&intent) || domain == "small_talk" {
        0.0
    } else if matches!(domain, "meta" | "oos") {
        0.2
    } else if matches!(intent, "coding_request" | "multi_step_request") {
        0.9
    } else if matches!(
        intent,
        "fun_fact" | "meaning_of_life" | "definition" | "recipe" | "calories" | "spelling"
    ) {
        0.3
    } else {
        0.8
    };
    let fast_path = FAST.contains(&intent) || (domain == "small_talk" && intent != "fun_fact");
    IntentProfile {
        domain,
        urgency,
        tool_needed,
        fast_path,
    }
}

/// The domain of `intent`.
pub fn domain_of(intent: &str) -> &'static str {
    if intent == crate::data::OOS {
        return "oos";
    }
    if ASSISTANT_INTENTS.contains(&intent) {
        return "assistant";
    }
    DOMAINS
        .iter()
        .find(|(_, intents)| intents.contains(&intent))
        .map_or("unknown", |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clinc_intent_has_a_domain() {
        let n: usize = DOMAINS.iter().map(|(_, i)| i.len()).sum();
        assert_eq!(n, 150);
        for (domain, intents) in DOMAINS {
            for intent in intents {
                assert_eq!(domain_of(intent), domain);
            }
        }
    }

    #[test]
    fn lost_cards_are_urgent_and_jokes_are_not() {
        assert!(profile("report_lost_card").urgency > 0.8);
        assert!(profile("tell_joke").urgency < 0.2);
    }

    #[test]
    fn small_talk_needs_no_tool_and_bookings_do() {
        assert_eq!(profile("greeting").tool_needed, 0.0);
        assert!(profile("book_flight").tool_needed > 0.5);
        assert!(!profile("book_flight").fast_path);
        assert!(profile("time").fast_path);
    }
}
