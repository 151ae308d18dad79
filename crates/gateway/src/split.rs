//! Splitting long replies at a platform's length limit on sensible
//! boundaries: paragraph, then line, then sentence, then word, then grapheme;
//! a cut never falls inside a UTF-16 surrogate pair, and inside a grapheme
//! only when one grapheme alone exceeds the limit.

use unicode_segmentation::UnicodeSegmentation;

/// How a platform counts a message's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode scalar values.
    Chars,
    /// UTF-16 code units (what JavaScript's `length` counts; never less than
    /// `Chars`, so a limit honoured in UTF-16 is honoured in chars too).
    Utf16,
    /// UTF-8 bytes.
    Bytes,
}

/// The smallest limit accepted: one scalar value is at most 4 units in any [`Unit`].
pub const MIN_LIMIT: usize = 4;

impl Unit {
    /// The length of `c` in this unit.
    pub fn of_char(self, c: char) -> usize {
        match self {
            Unit::Chars => 1,
            Unit::Utf16 => c.len_utf16(),
            Unit::Bytes => c.len_utf8(),
        }
    }

    /// The length of `text` in this unit.
    pub fn measure(self, text: &str) -> usize {
        match self {
            Unit::Chars => text.chars().count(),
            Unit::Utf16 => text.encode_utf16().count(),
            Unit::Bytes => text.len(),
        }
    }
}

/// Splits `text` into consecutive pieces of at most `limit` units whose
/// concatenation is exactly `text`. `limit` below [`MIN_LIMIT`] is raised to it.
///
/// ```
/// use opticlaw_gateway::split::{split_text, Unit};
/// let parts = split_text("one two three", 8, Unit::Chars);
/// assert_eq!(parts, ["one two ", "three"]);
/// ```
pub fn split_text(text: &str, limit: usize, unit: Unit) -> Vec<&str> {
    let limit = limit.max(MIN_LIMIT);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let max_end = longest_prefix(rest, limit, unit);
        if max_end == rest.len() {
            parts.push(rest);
            break;
        }
        let cut = choose_cut(&rest[..max_end], rest);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    parts
}

/// Byte length of the longest prefix of `text` within `limit` units.
fn longest_prefix(text: &str, limit: usize, unit: Unit) -> usize {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += unit.of_char(c);
        if used > limit {
            return i;
        }
    }
    text.len()
}

/// Picks the cut (a byte index into `rest`, `0 < cut <= window.len()`).
fn choose_cut(window: &str, rest: &str) -> usize {
    let half = window.len() / 2;
    let separators: [&[&str]; 3] = [&["\n\n"], &["\n"], &[". ", "! ", "? ", "。", "！", "？"]];
    for group in separators {
        let best = group
            .iter()
            .filter_map(|sep| window.rfind(sep).map(|i| i + sep.len()))
            .max();
        if let Some(cut) = best.filter(|&cut| cut > half && cut < rest.len()) {
            return cut;
        }
    }
    // the last whitespace in the window, anywhere
    if let Some((i, c)) = window.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
        let cut = i + c.len_utf8();
        if cut > 0 {
            return cut;
        }
    }
    // the last grapheme boundary inside the window; look one grapheme past
    // the window so a grapheme that straddles the end is not split
    let probe_end = rest[window.len()..]
        .char_indices()
        .nth(8)
        .map_or(rest.len(), |(i, _)| window.len() + i);
    let last_boundary = rest[..probe_end]
        .grapheme_indices(true)
        .map(|(i, _)| i)
        .filter(|&i| i > 0 && i <= window.len())
        .max();
    last_boundary.unwrap_or(window.len())
}

/// Splits `text`, renders each piece and guarantees every rendered piece
/// measures at most `limit`: a piece whose rendering grows past the limit
/// (escaping, markup) is split again with a proportionally smaller budget.
/// Whitespace-only pieces are dropped and pieces are trimmed before rendering.
pub fn split_rendered<R>(
    text: &str,
    limit: usize,
    render: impl Fn(&str) -> R,
    measure: impl Fn(&R) -> usize,
) -> Vec<R> {
    let limit = limit.max(MIN_LIMIT);
    let mut out = Vec::new();
    fit(text, limit, limit, &render, &measure, &mut out);
    out
}

fn fit<R>(
    text: &str,
    budget: usize,
    limit: usize,
    render: &impl Fn(&str) -> R,
    measure: &impl Fn(&R) -> usize,
    out: &mut Vec<R>,
) {
    for piece in split_text(text, budget, Unit::Utf16) {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let rendered = render(piece);
        let size = measure(&rendered);
        if size <= limit {
            out.push(rendered);
            continue;
        }
        let piece_len = Unit::Utf16.measure(piece);
        let smaller = (piece_len * limit / size.max(1))
            .saturating_sub(1)
            .min(piece_len - 1);
        if smaller >= MIN_LIMIT {
            fit(piece, smaller, limit, render, measure, out);
        } else {
            // A piece of a few characters still renders too long: the limit
            // is smaller than any rendering of it. Drop nothing silently:
            // render char by char, which is the best that can be done.
            for c in piece.chars() {
                let mut buf = [0u8; 4];
                let rendered = render(c.encode_utf8(&mut buf));
                if measure(&rendered) <= limit {
                    out.push(rendered);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_text("hello", 10, Unit::Chars), ["hello"]);
        assert!(split_text("", 10, Unit::Chars).is_empty());
    }

    #[test]
    fn prefers_paragraph_then_line_then_sentence_then_word() {
        let text = "aaaa aaaa.\n\nbbbb bbbb";
        assert_eq!(
            split_text(text, 15, Unit::Chars),
            ["aaaa aaaa.\n\n", "bbbb bbbb"]
        );
        let text = "aaaa aaaa.\nbbbb bbbb";
        assert_eq!(
            split_text(text, 15, Unit::Chars),
            ["aaaa aaaa.\n", "bbbb bbbb"]
        );
        let text = "aaaa aaaa. bbbb bbbb";
        assert_eq!(
            split_text(text, 15, Unit::Chars),
            ["aaaa aaaa. ", "bbbb bbbb"]
        );
        let text = "aaaa aaaa bbbb bbbb";
        assert_eq!(
            split_text(text, 12, Unit::Chars),
            ["aaaa aaaa ", "bbbb bbbb"]
        );
    }

    #[test]
    fn never_splits_a_surrogate_pair_or_a_flag() {
        let text = "😀😀😀";
        let parts = split_text(text, 5, Unit::Utf16);
        assert_eq!(parts, ["😀😀", "😀"]);
        let flags = "🇫🇷🇫🇷🇫🇷";
        let parts = split_text(flags, 4, Unit::Chars);
        assert_eq!(parts, ["🇫🇷🇫🇷", "🇫🇷"]);
    }

    #[test]
    fn rendered_pieces_fit_even_when_escaping_doubles_them() {
        let text = ".".repeat(100);
        let parts = split_rendered(&text, 30, crate::format::escape_markdown_v2, |s| {
            Unit::Utf16.measure(s)
        });
        assert!(parts.iter().all(|p| p.len() <= 30));
        assert_eq!(parts.concat(), crate::format::escape_markdown_v2(&text));
    }
}
