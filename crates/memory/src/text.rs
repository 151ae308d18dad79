//! Small text utilities: word splitting, stop words, full-text query
//! building, entity extraction and token estimates.

use std::collections::BTreeSet;

/// English stop words dropped from full-text queries. Question words are
/// included: "when did X" should match on X, not on "when".
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "both", "but", "by", "can", "could", "d", "did", "do", "does",
    "doing", "don", "during", "each", "else", "ever", "for", "from", "get", "got", "had", "has",
    "have", "having", "he", "her", "here", "hers", "hey", "hi", "him", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "just", "kind", "like", "likely", "ll", "m", "many", "may",
    "me", "might", "more", "most", "much", "my", "no", "not", "now", "of", "oh", "on", "one", "or",
    "other", "our", "out", "over", "own", "re", "really", "s", "she", "should", "so", "some",
    "such", "t", "than", "thank", "thanks", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "to", "too", "type", "types", "under", "up", "us",
    "ve", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "whose", "why", "will", "with", "would", "wow", "yes", "you", "your", "yours",
];

/// Whether `w` (lower-case) is a stop word.
pub fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

/// Lower-cased alphanumeric words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Content words of a query: lower-cased, stop words and duplicates dropped,
/// in first-seen order.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w) && seen.insert(w.clone()))
        .collect()
}

/// An FTS5 MATCH expression OR-ing the quoted terms, or `None` when there
/// are no terms. Quoting makes every term a literal (no FTS5 syntax).
pub fn fts_or_query(terms: &[String]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// Estimated prompt tokens of `text` (about four bytes per token, the usual
/// rule for English with BPE tokenizers).
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4).max(1)
}

/// Proper-noun-like words (capitalised, not sentence-initial, not stop words)
/// as entity keys `name:<lower>`.
pub fn extract_entities(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let word: String = raw
            .trim_matches(|c: char| !c.is_alphanumeric())
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-')
            .collect();
        let capitalised = word.chars().next().is_some_and(char::is_uppercase);
        if capitalised && !sentence_start && word.chars().count() > 1 {
            let lower = word.to_lowercase();
            if !is_stop_word(&lower) {
                out.insert(format!("name:{lower}"));
            }
        }
        sentence_start = raw.ends_with(['.', '!', '?', ':']);
    }
    out.into_iter().collect()
}

/// Normalise an entity key: `kind:name`, trimmed and lower-cased; a bare
/// name becomes `name:<name>`.
pub fn normalise_entity_key(key: &str) -> String {
    let key = key.trim().to_lowercase();
    if key.contains(':') {
        key
    } else {
        format!("name:{key}")
    }
}

/// The display name part of an entity key.
pub fn entity_name(key: &str) -> &str {
    key.split_once(':').map_or(key, |(_, n)| n)
}

/// A cheap salience estimate for text without a model: longer, more
/// specific statements (numbers, names, first-person facts, commitments)
/// score higher than greetings and fillers.
pub fn heuristic_salience(text: &str) -> f32 {
    let ws = words(text);
    if ws.is_empty() {
        return 0.1;
    }
    let content = ws.iter().filter(|w| !is_stop_word(w)).count() as f32;
    let mut s = 0.2 + (content / 20.0).min(0.4);
    if ws.iter().any(|w| w.chars().any(|c| c.is_ascii_digit())) {
        s += 0.1;
    }
    if !extract_entities(text).is_empty() {
        s += 0.1;
    }
    const MARKERS: &[&str] = &[
        "always",
        "never",
        "remember",
        "important",
        "prefer",
        "allergic",
        "birthday",
        "deadline",
        "password",
        "promise",
        "must",
        "plan",
        "decided",
    ];
    if ws.iter().any(|w| MARKERS.contains(&w.as_str())) {
        s += 0.2;
    }
    s.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOP_WORDS);
    }

    #[test]
    fn query_terms_drop_stop_words_and_duplicates() {
        assert_eq!(
            query_terms("When did Caroline go to the LGBTQ support group? the group!"),
            vec!["caroline", "go", "lgbtq", "support", "group"]
        );
    }

    #[test]
    fn fts_query_quotes_terms_so_syntax_is_inert() {
        let q = fts_or_query(&["a\"b".into(), "near".into()]).unwrap();
        assert_eq!(q, "\"ab\" OR \"near\"");
        assert!(fts_or_query(&[]).is_none());
    }

    #[test]
    fn entities_are_capitalised_words_not_sentence_starts() {
        let e = extract_entities("Yesterday I met Sam at Google. Then we left.");
        assert_eq!(e, vec!["name:google", "name:sam"]);
    }
}
