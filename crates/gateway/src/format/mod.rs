//! Per-platform formatting of one neutral reply (see [`markdown`]), and
//! escaping of literal text so it is never read as markup.

pub mod markdown;

use markdown::Node;

/// Characters Telegram MarkdownV2 reserves outside code; each must be
/// preceded by `\` (Bot API, "MarkdownV2 style").
pub const MARKDOWN_V2_RESERVED: &str = "_*[]()~`>#+-=|{}.!\\";

/// Escapes literal text for Telegram MarkdownV2.
pub fn escape_markdown_v2(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for c in text.chars() {
        if MARKDOWN_V2_RESERVED.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes the inside of MarkdownV2 `code`/`pre`: only `` ` `` and `\`.
pub fn escape_markdown_v2_code(text: &str) -> String {
    escape_chars(text, "`\\")
}

/// Escapes a MarkdownV2 link URL: only `)` and `\`.
pub fn escape_markdown_v2_url(text: &str) -> String {
    escape_chars(text, ")\\")
}

fn escape_chars(text: &str, reserved: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if reserved.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes text for HTML (Telegram HTML mode, Matrix `formatted_body`).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for Slack mrkdwn: exactly `&`, `<` and `>` (Slack,
/// "Formatting text for app surfaces": escaping text).
pub fn escape_slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes Discord markdown in literal text with backslashes; `#`, `-` and
/// `>` only where they would start a heading, list or quote.
pub fn escape_discord(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut line_start = true;
    for c in text.chars() {
        let special = matches!(c, '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']')
            || (line_start && matches!(c, '#' | '-' | '>'));
        if special {
            out.push('\\');
        }
        out.push(c);
        if c == '\n' {
            line_start = true;
        } else if !c.is_whitespace() {
            line_start = false;
        }
    }
    out
}

/// Telegram MarkdownV2 (`parse_mode = "MarkdownV2"`).
pub fn telegram_markdown_v2(text: &str) -> String {
    let mut out = String::new();
    walk_markdown_v2(&markdown::parse(text), &mut out);
    out
}

fn walk_markdown_v2(nodes: &[Node], out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(&escape_markdown_v2(t)),
            Node::Bold(inner) => wrap(out, "*", |o| walk_markdown_v2(inner, o)),
            Node::Italic(inner) => wrap(out, "_", |o| walk_markdown_v2(inner, o)),
            Node::Strike(inner) => wrap(out, "~", |o| walk_markdown_v2(inner, o)),
            Node::Code(code) => wrap(out, "`", |o| o.push_str(&escape_markdown_v2_code(code))),
            Node::Pre { lang, code } => {
                out.push_str("```");
                if let Some(lang) = lang {
                    out.push_str(lang);
                }
                out.push('\n');
                out.push_str(&escape_markdown_v2_code(code));
                out.push_str("\n```");
            }
            Node::Link { text, url } => {
                out.push('[');
                out.push_str(&escape_markdown_v2(text));
                out.push_str("](");
                out.push_str(&escape_markdown_v2_url(url));
                out.push(')');
            }
        }
    }
}

/// Telegram HTML (`parse_mode = "HTML"`).
pub fn telegram_html(text: &str) -> String {
    let mut out = String::new();
    walk_html(&markdown::parse(text), &mut out, false);
    out
}

/// Matrix `formatted_body` (`org.matrix.custom.html`): newlines become `<br/>`.
pub fn matrix_html(text: &str) -> String {
    let mut out = String::new();
    walk_html(&markdown::parse(text), &mut out, true);
    out
}

fn walk_html(nodes: &[Node], out: &mut String, br: bool) {
    for node in nodes {
        match node {
            Node::Text(t) => {
                let escaped = escape_html(t);
                if br {
                    out.push_str(&escaped.replace('\n', "<br/>"));
                } else {
                    out.push_str(&escaped);
                }
            }
            Node::Bold(inner) => tag(out, "b", |o| walk_html(inner, o, br)),
            Node::Italic(inner) => tag(out, "i", |o| walk_html(inner, o, br)),
            Node::Strike(inner) => tag(out, "del", |o| walk_html(inner, o, br)),
            Node::Code(code) => tag(out, "code", |o| o.push_str(&escape_html(code))),
            Node::Pre { lang, code } => {
                out.push_str("<pre><code");
                if let Some(lang) = lang {
                    out.push_str(" class=\"language-");
                    out.push_str(&escape_html(lang));
                    out.push('"');
                }
                out.push('>');
                out.push_str(&escape_html(code));
                out.push_str("</code></pre>");
            }
            Node::Link { text, url } => {
                out.push_str("<a href=\"");
                out.push_str(&escape_html(url));
                out.push_str("\">");
                out.push_str(&escape_html(text));
                out.push_str("</a>");
            }
        }
    }
}

/// Slack mrkdwn.
pub fn slack_mrkdwn(text: &str) -> String {
    let mut out = String::new();
    walk_slack(&markdown::parse(text), &mut out);
    out
}

fn walk_slack(nodes: &[Node], out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(&escape_slack(t)),
            Node::Bold(inner) => wrap(out, "*", |o| walk_slack(inner, o)),
            Node::Italic(inner) => wrap(out, "_", |o| walk_slack(inner, o)),
            Node::Strike(inner) => wrap(out, "~", |o| walk_slack(inner, o)),
            Node::Code(code) => wrap(out, "`", |o| o.push_str(&escape_slack(code))),
            Node::Pre { code, .. } => {
                out.push_str("```\n");
                out.push_str(&escape_slack(code));
                out.push_str("\n```");
            }
            Node::Link { text, url } => {
                out.push('<');
                out.push_str(&escape_slack(url).replace('|', "%7C"));
                out.push('|');
                out.push_str(&escape_slack(text).replace('|', "\u{2223}"));
                out.push('>');
            }
        }
    }
}

/// Discord markdown.
pub fn discord_markdown(text: &str) -> String {
    let mut out = String::new();
    walk_discord(&markdown::parse(text), &mut out);
    out
}

fn walk_discord(nodes: &[Node], out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(&escape_discord(t)),
            Node::Bold(inner) => wrap(out, "**", |o| walk_discord(inner, o)),
            Node::Italic(inner) => wrap(out, "*", |o| walk_discord(inner, o)),
            Node::Strike(inner) => wrap(out, "~~", |o| walk_discord(inner, o)),
            Node::Code(code) if code.contains('`') => {
                out.push_str("`` ");
                out.push_str(code);
                out.push_str(" ``");
            }
            Node::Code(code) => wrap(out, "`", |o| o.push_str(code)),
            Node::Pre { lang, code } => {
                out.push_str("```");
                out.push_str(lang.as_deref().unwrap_or(""));
                out.push('\n');
                out.push_str(&code.replace("```", "`\u{200b}``"));
                out.push_str("\n```");
            }
            Node::Link { text, url } => {
                out.push('[');
                out.push_str(&escape_discord(text));
                out.push_str("](<");
                out.push_str(url);
                out.push_str(">)");
            }
        }
    }
}

/// WhatsApp formatting: `*bold*`, `_italic_`, `~strike~`, `` ``` `` monospace.
/// WhatsApp has no escape character, so literal text passes through.
pub fn whatsapp(text: &str) -> String {
    let mut out = String::new();
    walk_whatsapp(&markdown::parse(text), &mut out);
    out
}

fn walk_whatsapp(nodes: &[Node], out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Bold(inner) => wrap(out, "*", |o| walk_whatsapp(inner, o)),
            Node::Italic(inner) => wrap(out, "_", |o| walk_whatsapp(inner, o)),
            Node::Strike(inner) => wrap(out, "~", |o| walk_whatsapp(inner, o)),
            Node::Code(code) => wrap(out, "`", |o| o.push_str(code)),
            Node::Pre { code, .. } => wrap(out, "```", |o| o.push_str(code)),
            Node::Link { text, url } if text == url => out.push_str(url),
            Node::Link { text, url } => {
                out.push_str(text);
                out.push_str(" (");
                out.push_str(url);
                out.push(')');
            }
        }
    }
}

/// Plain text: markers removed (Matrix `body`).
pub fn plain_text(text: &str) -> String {
    markdown::plain(&markdown::parse(text))
}

fn wrap(out: &mut String, marker: &str, inner: impl FnOnce(&mut String)) {
    out.push_str(marker);
    inner(out);
    out.push_str(marker);
}

fn tag(out: &mut String, name: &str, inner: impl FnOnce(&mut String)) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    inner(out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escapes_control_characters_and_formats_links() {
        assert_eq!(
            slack_mrkdwn("a < b & c > d *bold* [site](https://e.x/?q=1&r=2)"),
            "a &lt; b &amp; c &gt; d *bold* <https://e.x/?q=1&amp;r=2|site>"
        );
    }

    #[test]
    fn discord_uses_double_asterisks_and_escapes_markers() {
        assert_eq!(discord_markdown("*hi* 2*3 # x"), "**hi** 2\\*3 # x");
        assert_eq!(discord_markdown("# not a heading"), "\\# not a heading");
    }

    #[test]
    fn html_renderers_escape_and_tag() {
        assert_eq!(telegram_html("<b> *x*"), "&lt;b&gt; <b>x</b>");
        assert_eq!(matrix_html("a\n_b_"), "a<br/><i>b</i>");
        assert_eq!(
            matrix_html("```py\nx<1\n```"),
            "<pre><code class=\"language-py\">x&lt;1</code></pre>"
        );
    }

    #[test]
    fn whatsapp_keeps_markers_and_spells_out_links() {
        assert_eq!(whatsapp("*b* [t](https://u.v)"), "*b* t (https://u.v)");
    }
}
