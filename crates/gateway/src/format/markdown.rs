//! The neutral reply markup (`ResponsePacket::text`): `*bold*` (or `**bold**`),
//! `_italic_`, `~strike~`, `` `code` ``, fenced code blocks and
//! `[text](url)` links. Anything that does not form a complete span is text.

/// One parsed span of a neutral reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Text(String),
    Bold(Vec<Node>),
    Italic(Vec<Node>),
    Strike(Vec<Node>),
    Code(String),
    Pre { lang: Option<String>, code: String },
    Link { text: String, url: String },
}

/// Parses neutral markup. Never fails: unmatched markers are text.
pub fn parse(text: &str) -> Vec<Node> {
    // Only these characters open a span (see `try_span`): most replies have
    // none and are one text node, with no copy character by character.
    if !text.contains(SPAN_OPENERS) {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![Node::Text(text.to_owned())]
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    parse_into(&chars, &mut out);
    out
}

/// The plain text of a parse, markers removed, links as `text (url)`.
pub fn plain(nodes: &[Node]) -> String {
    let mut out = String::new();
    for node in nodes {
        match node {
            Node::Text(t) | Node::Code(t) => out.push_str(t),
            Node::Pre { code, .. } => out.push_str(code),
            Node::Bold(inner) | Node::Italic(inner) | Node::Strike(inner) => {
                out.push_str(&plain(inner))
            }
            Node::Link { text, url } if text == url => out.push_str(url),
            Node::Link { text, url } => {
                out.push_str(text);
                out.push_str(" (");
                out.push_str(url);
                out.push(')');
            }
        }
    }
    out
}

fn push_text(out: &mut Vec<Node>, text: &str) {
    if let Some(Node::Text(last)) = out.last_mut() {
        last.push_str(text);
    } else if !text.is_empty() {
        out.push(Node::Text(text.to_owned()));
    }
}

fn find_seq(chars: &[char], from: usize, seq: &[char]) -> Option<usize> {
    (from..chars.len().saturating_sub(seq.len() - 1)).find(|&i| chars[i..].starts_with(seq))
}

fn is_word(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

fn parse_into(chars: &[char], out: &mut Vec<Node>) {
    let mut i = 0;
    let mut text = String::new();
    while i < chars.len() {
        if let Some((node, next)) = try_span(chars, i) {
            push_text(out, &std::mem::take(&mut text));
            out.push(node);
            i = next;
        } else {
            text.push(chars[i]);
            i += 1;
        }
    }
    push_text(out, &text);
}

/// The first characters of every span `try_span` reads.
const SPAN_OPENERS: [char; 5] = ['`', '[', '*', '_', '~'];

fn try_span(chars: &[char], i: usize) -> Option<(Node, usize)> {
    let c = chars[i];
    match c {
        '`' if chars[i..].starts_with(&['`', '`', '`']) => {
            let close = find_seq(chars, i + 3, &['`', '`', '`'])?;
            let inner: String = chars[i + 3..close].iter().collect();
            let (lang, code) = match inner.split_once('\n') {
                Some((first, rest))
                    if !first.is_empty()
                        && first
                            .chars()
                            .all(|c| c.is_alphanumeric() || "+-_#.".contains(c)) =>
                {
                    (Some(first.to_owned()), rest.to_owned())
                }
                _ => (None, inner.strip_prefix('\n').unwrap_or(&inner).to_owned()),
            };
            let code = code.strip_suffix('\n').unwrap_or(&code).to_owned();
            Some((Node::Pre { lang, code }, close + 3))
        }
        '`' => {
            let close = (i + 1..chars.len()).find(|&j| chars[j] == '`' || chars[j] == '\n')?;
            if chars[close] != '`' || close == i + 1 {
                return None;
            }
            Some((Node::Code(chars[i + 1..close].iter().collect()), close + 1))
        }
        '[' => {
            let mid = find_seq(chars, i + 1, &[']', '('])?;
            let text: String = chars[i + 1..mid].iter().collect();
            if text.is_empty() || text.contains('\n') || text.contains('[') {
                return None;
            }
            // the URL ends at the `)` that balances the link's `(`
            let mut depth = 0usize;
            let mut close = None;
            for (j, &c) in chars.iter().enumerate().skip(mid + 2) {
                match c {
                    c if c.is_whitespace() => return None,
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        close = Some(j);
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            let close = close?;
            let url: String = chars[mid + 2..close].iter().collect();
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("mailto:"))
            {
                return None;
            }
            Some((Node::Link { text, url }, close + 1))
        }
        '*' if chars[i..].starts_with(&['*', '*']) => {
            delimited(chars, i, &['*', '*']).map(|(inner, next)| (Node::Bold(inner), next))
        }
        '*' => delimited(chars, i, &['*']).map(|(inner, next)| (Node::Bold(inner), next)),
        '_' => delimited(chars, i, &['_']).map(|(inner, next)| (Node::Italic(inner), next)),
        '~' => delimited(chars, i, &['~']).map(|(inner, next)| (Node::Strike(inner), next)),
        _ => None,
    }
}

/// A span opened by `delim` at `i`: the opener follows no word character and
/// precedes a non-space; the closer (same line) follows a non-space and
/// precedes no word character.
fn delimited(chars: &[char], i: usize, delim: &[char]) -> Option<(Vec<Node>, usize)> {
    let n = delim.len();
    if i > 0 && (is_word(chars.get(i - 1)) || chars[i - 1] == delim[0]) {
        return None;
    }
    let first = *chars.get(i + n)?;
    if first.is_whitespace() || first == delim[0] {
        return None;
    }
    let mut j = i + n + 1;
    while j + n <= chars.len() {
        if chars[j - 1] == '\n' {
            return None;
        }
        if chars[j..].starts_with(delim)
            && !chars[j - 1].is_whitespace()
            && !is_word(chars.get(j + n))
            && chars.get(j + n) != Some(&delim[0])
        {
            let mut inner = Vec::new();
            parse_into(&chars[i + n..j], &mut inner);
            return Some((inner, j + n));
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_span_openers_parses_as_the_full_parser_would() {
        for text in [
            "",
            "It's 18:40 on Thursday 26 November 2026 (UTC+00:00).",
            "a > b & c < d (see http://example.org) #1 - 2 + 3 = 5!",
            "línea uno\nzwei 👋 \\ back",
        ] {
            let mut full = Vec::new();
            parse_into(&text.chars().collect::<Vec<_>>(), &mut full);
            assert_eq!(parse(text), full, "{text}");
        }
    }

    fn t(s: &str) -> Node {
        Node::Text(s.to_owned())
    }

    #[test]
    fn parses_the_neutral_spans() {
        assert_eq!(
            parse("a *b* _c_ `d` [e](https://x.y)"),
            vec![
                t("a "),
                Node::Bold(vec![t("b")]),
                t(" "),
                Node::Italic(vec![t("c")]),
                t(" "),
                Node::Code("d".into()),
                t(" "),
                Node::Link {
                    text: "e".into(),
                    url: "https://x.y".into()
                },
            ]
        );
        assert_eq!(parse("**x**"), vec![Node::Bold(vec![t("x")])]);
    }

    #[test]
    fn snake_case_and_lone_markers_stay_text() {
        assert_eq!(parse("snake_case_name"), vec![t("snake_case_name")]);
        assert_eq!(parse("2 * 3 * 4"), vec![t("2 * 3 * 4")]);
        assert_eq!(parse("a *b\nc* d"), vec![t("a *b\nc* d")]);
        assert_eq!(
            parse("[x](javascript:alert(1))"),
            vec![t("[x](javascript:alert(1))")]
        );
    }

    #[test]
    fn fenced_code_keeps_its_language() {
        assert_eq!(
            parse("```rust\nfn main() {}\n```"),
            vec![Node::Pre {
                lang: Some("rust".into()),
                code: "fn main() {}".into()
            }]
        );
    }
}
