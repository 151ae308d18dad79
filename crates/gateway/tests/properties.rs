//! Properties of the splitter, the escapers and the renderers over arbitrary
//! text: they never panic, never exceed a limit, and lose nothing.

use opticlaw_gateway::format::{self, markdown};
use opticlaw_gateway::split::{Unit, split_rendered, split_text};
use proptest::prelude::*;

/// Text with the characters that stress splitting and escaping: markup,
/// newlines, spaces, astral emoji (surrogate pairs), combining marks, flags.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\n\n".to_owned()),
        Just("\n".to_owned()),
        Just(" ".to_owned()),
        Just(". ".to_owned()),
        Just("😀".to_owned()),
        Just("e\u{301}".to_owned()),
        Just("🇫🇷".to_owned()),
        Just("👩‍👩‍👧".to_owned()),
        Just("*bold*".to_owned()),
        Just("_it_".to_owned()),
        Just("`co_de`".to_owned()),
        Just("```rs\nlet x = 1;\n```".to_owned()),
        Just("[a](https://x.y/(z))".to_owned()),
        Just("<&>\\".to_owned()),
        "[a-z]{1,12}",
        "[_*\\[\\]()~`>#+\\-=|{}.!\\\\]{1,4}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(pieces, 0..120).prop_map(|v| v.concat())
}

fn unit() -> impl Strategy<Value = Unit> {
    prop_oneof![Just(Unit::Chars), Just(Unit::Utf16), Just(Unit::Bytes)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn split_never_exceeds_the_limit_and_preserves_the_text(
        text in tricky_text(), limit in 4usize..300, unit in unit()
    ) {
        let parts = split_text(&text, limit, unit);
        prop_assert_eq!(parts.concat(), text.clone());
        for part in &parts {
            prop_assert!(!part.is_empty());
            prop_assert!(unit.measure(part) <= limit, "{:?} > {}", part, limit);
        }
    }

    #[test]
    fn split_never_cuts_a_surrogate_pair(text in tricky_text(), limit in 4usize..50) {
        // every part is valid UTF-8, hence whole UTF-16 pairs; check the
        // UTF-16 re-encoding round trips part by part
        for part in split_text(&text, limit, Unit::Utf16) {
            let units: Vec<u16> = part.encode_utf16().collect();
            prop_assert_eq!(String::from_utf16(&units).unwrap(), part);
        }
    }

    #[test]
    fn rendered_parts_never_exceed_the_platform_limit(text in tricky_text(), limit in 40usize..400) {
        type Render = fn(&str) -> String;
        let renderers: [Render; 6] = [
            format::telegram_markdown_v2,
            format::telegram_html,
            format::slack_mrkdwn,
            format::discord_markdown,
            format::whatsapp,
            format::matrix_html,
        ];
        for render in renderers {
            for part in split_rendered(&text, limit, render, |s| Unit::Utf16.measure(s)) {
                prop_assert!(Unit::Utf16.measure(&part) <= limit);
                prop_assert!(!part.trim().is_empty());
            }
        }
    }

    #[test]
    fn markdownv2_escape_round_trips(text in tricky_text()) {
        let escaped = format::escape_markdown_v2(&text);
        // every reserved character is preceded by a backslash
        let mut chars = escaped.chars();
        let mut unescaped = String::new();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next().expect("a backslash always escapes something");
                prop_assert!(format::MARKDOWN_V2_RESERVED.contains(next));
                unescaped.push(next);
            } else {
                prop_assert!(!format::MARKDOWN_V2_RESERVED.contains(c));
                unescaped.push(c);
            }
        }
        prop_assert_eq!(unescaped, text);
    }

    #[test]
    fn slack_and_html_escapes_leave_no_control_characters(text in tricky_text()) {
        let slack = format::escape_slack(&text);
        prop_assert!(!slack.contains('<') && !slack.contains('>'));
        let html = format::escape_html(&text);
        prop_assert!(!html.contains('<') && !html.contains('>') && !html.contains('"'));
        let back = html.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
        prop_assert_eq!(back, text);
    }

    #[test]
    fn plain_text_keeps_every_word(text in "[a-z ]{0,200}") {
        // text without markup is unchanged by parsing
        prop_assert_eq!(markdown::plain(&markdown::parse(&text)), text);
    }
}
