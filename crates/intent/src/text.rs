//! Text normalisation and hashed n-gram features.
//!
//! A message is cut at [`MAX_INPUT_BYTES`] (at a char boundary), lowercased,
//! digits are folded to `0` and apostrophes dropped (`what's` = `whats`).
//! Words are runs of alphanumeric characters; any other non-space symbol
//! (emoji, CJK punctuation, ...) is a one-character word of its own, and
//! control characters separate words. At most [`MAX_WORDS`] words are used,
//! and character n-grams come from at most the first [`MAX_WORD_CHARS`]
//! characters of a word, so the work per message is bounded whatever arrives.
//!
//! Each feature is identified by a 32-bit key (a stable hash that does not
//! depend on the platform or the Rust version) and remembers where it came
//! from, so an explanation can print it back as text.

/// Messages longer than this many bytes are cut (at a char boundary) before
/// anything else happens.
pub const MAX_INPUT_BYTES: usize = 2000;
/// Only the first this many words of a message are featurised.
pub const MAX_WORDS: usize = 200;
/// Character n-grams come from at most this many leading chars of a word.
pub const MAX_WORD_CHARS: usize = 32;

/// Largest allowed [`FeatureConfig::word_repeat`].
pub const MAX_WORD_REPEAT: u8 = 4;

/// Which n-grams are extracted. Stored in the model file so inference always
/// uses the features the weights were trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Smallest character n-gram (within `<word>` boundaries); 0 disables.
    pub char_min: u8,
    /// Largest character n-gram.
    pub char_max: u8,
    /// Emit word bigrams (with sentence start and end markers).
    pub word_bigrams: bool,
    /// Emit each word and bigram feature this many times (≥ 1), weighting
    /// words against the more numerous character n-grams.
    pub word_repeat: u8,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            char_min: 2,
            char_max: 5,
            word_bigrams: true,
            word_repeat: 1,
        }
    }
}

/// What a feature is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// A whole word.
    Word,
    /// Two consecutive words; `word` is the first, and `u16::MAX` stands for
    /// the sentence start marker.
    Bigram,
    /// A character n-gram of the word padded as `<word>`.
    Chars,
}

/// One extracted feature: its hash key and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Stable 32-bit hash of the feature.
    pub key: u32,
    /// Its kind.
    pub kind: FeatureKind,
    /// Index of the (first) word it belongs to.
    pub word: u16,
    /// For [`FeatureKind::Chars`]: start in the padded word.
    pub start: u8,
    /// For [`FeatureKind::Chars`]: length in chars.
    pub len: u8,
}

/// Reusable buffers for featurising one message without allocating.
#[derive(Debug, Clone)]
pub struct TextBuffers {
    chars: Vec<char>,
    words: Vec<(u32, u32)>,
    word_hashes: Vec<u64>,
    /// The features of the last message passed to [`TextBuffers::featurise`].
    pub features: Vec<Feature>,
}

impl Default for TextBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl TextBuffers {
    /// Buffers sized for the largest message, so featurising never grows them.
    pub fn new() -> Self {
        // Lowercasing can turn one char into at most three.
        let max_chars = MAX_INPUT_BYTES * 3;
        let per_word = 2 * MAX_WORD_REPEAT as usize + (MAX_WORD_CHARS + 2) * 8;
        Self {
            chars: Vec::with_capacity(max_chars),
            words: Vec::with_capacity(MAX_WORDS),
            word_hashes: Vec::with_capacity(MAX_WORDS),
            features: Vec::with_capacity(MAX_WORDS * per_word + 2),
        }
    }

    /// Normalises `text` and fills [`TextBuffers::features`].
    pub fn featurise(&mut self, text: &str, config: &FeatureConfig) {
        self.normalise(truncate(text));
        self.extract(config);
    }

    /// Number of words found in the last message.
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    fn normalise(&mut self, text: &str) {
        self.chars.clear();
        self.words.clear();
        let mut start: Option<u32> = None;
        for c in text.chars() {
            if self.words.len() >= MAX_WORDS {
                break;
            }
            if c == '\'' || c == '\u{2019}' {
                continue;
            }
            if c.is_alphanumeric() {
                if start.is_none() {
                    start = Some(self.chars.len() as u32);
                }
                if c.is_numeric() {
                    self.chars.push('0');
                } else {
                    self.chars.extend(c.to_lowercase());
                }
                continue;
            }
            if let Some(s) = start.take() {
                self.words.push((s, self.chars.len() as u32));
            }
            let symbol = !(c.is_whitespace() || c.is_control() || c.is_ascii_punctuation());
            if symbol && self.words.len() < MAX_WORDS {
                let s = self.chars.len() as u32;
                self.chars.push(c);
                self.words.push((s, s + 1));
            }
        }
        if let Some(s) = start
            && self.words.len() < MAX_WORDS
        {
            self.words.push((s, self.chars.len() as u32));
        }
    }

    fn extract(&mut self, config: &FeatureConfig) {
        self.features.clear();
        self.word_hashes.clear();
        for (i, &(s, e)) in self.words.iter().enumerate() {
            let word = &self.chars[s as usize..e as usize];
            let h = hash_chars(SEED_WORD, word.iter().copied());
            self.word_hashes.push(h);
            let feature = Feature {
                key: finish(h),
                kind: FeatureKind::Word,
                word: i as u16,
                start: 0,
                len: 0,
            };
            for _ in 0..config.word_repeat.max(1) {
                self.features.push(feature);
            }
        }
        if config.word_bigrams && !self.words.is_empty() {
            let n = self.words.len();
            for i in 0..=n {
                let left = if i == 0 {
                    BOUNDARY
                } else {
                    self.word_hashes[i - 1]
                };
                let right = if i == n {
                    BOUNDARY
                } else {
                    self.word_hashes[i]
                };
                let key = finish(mix(mix(SEED_BIGRAM, left), right));
                let feature = Feature {
                    key,
                    kind: FeatureKind::Bigram,
                    word: if i == 0 { u16::MAX } else { (i - 1) as u16 },
                    start: 0,
                    len: 0,
                };
                for _ in 0..config.word_repeat.max(1) {
                    self.features.push(feature);
                }
            }
        }
        if config.char_min == 0 {
            return;
        }
        for (i, &(s, e)) in self.words.iter().enumerate() {
            let len = ((e - s) as usize).min(MAX_WORD_CHARS);
            let word = &self.chars[s as usize..s as usize + len];
            let padded = len + 2;
            for n in config.char_min as usize..=config.char_max as usize {
                if n > padded {
                    break;
                }
                for start in 0..=padded - n {
                    let chars = (start..start + n).map(|p| padded_char(word, p));
                    self.features.push(Feature {
                        key: finish(hash_chars(SEED_CHARS, chars)),
                        kind: FeatureKind::Chars,
                        word: i as u16,
                        start: start as u8,
                        len: n as u8,
                    });
                }
            }
        }
    }

    /// Writes a human-readable form of `feature` (one of the last message's)
    /// into `out`: `word:alarm`, `bigram:set|alarm`, `chars:<ala`.
    pub fn describe(&self, feature: &Feature, out: &mut String) {
        let word = |i: u16| -> &[char] {
            let (s, e) = self.words[i as usize];
            &self.chars[s as usize..e as usize]
        };
        match feature.kind {
            FeatureKind::Word => {
                out.push_str("word:");
                out.extend(word(feature.word));
            }
            FeatureKind::Bigram => {
                out.push_str("bigram:");
                let first = feature.word;
                if first == u16::MAX {
                    out.push('^');
                } else {
                    out.extend(word(first));
                }
                out.push('|');
                let second = first.wrapping_add(1) as usize;
                if second >= self.words.len() {
                    out.push('$');
                } else {
                    out.extend(word(second as u16));
                }
            }
            FeatureKind::Chars => {
                out.push_str("chars:");
                let w = word(feature.word);
                let w = &w[..w.len().min(MAX_WORD_CHARS)];
                let start = feature.start as usize;
                out.extend((start..start + feature.len as usize).map(|p| padded_char(w, p)));
            }
        }
    }
}

/// Cuts `text` to at most [`MAX_INPUT_BYTES`] bytes at a char boundary.
pub fn truncate(text: &str) -> &str {
    if text.len() <= MAX_INPUT_BYTES {
        return text;
    }
    let mut end = MAX_INPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

const SEED_WORD: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_BIGRAM: u64 = 0xc2b2_ae3d_27d4_eb4f;
const SEED_CHARS: u64 = 0x1656_67b1_9e37_79f9;
const BOUNDARY: u64 = 0x27d4_eb2f_1656_67c5;

fn padded_char(word: &[char], p: usize) -> char {
    if p == 0 {
        '<'
    } else if p == word.len() + 1 {
        '>'
    } else {
        word[p - 1]
    }
}

fn mix(h: u64, v: u64) -> u64 {
    splitmix(h ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn hash_chars(seed: u64, chars: impl Iterator<Item = char>) -> u64 {
    chars.fold(seed, |h, c| mix(h, c as u64))
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Folds a 64-bit hash to a non-zero 32-bit key (0 marks an empty slot).
fn finish(h: u64) -> u32 {
    let k = (h ^ (h >> 32)) as u32;
    if k == 0 { 1 } else { k }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(text: &str) -> Vec<String> {
        let mut buffers = TextBuffers::new();
        buffers.featurise(text, &FeatureConfig::default());
        buffers
            .features
            .iter()
            .map(|f| {
                let mut s = String::new();
                buffers.describe(f, &mut s);
                s
            })
            .collect()
    }

    #[test]
    fn words_are_lowercased_and_apostrophes_dropped() {
        let d = described("What's UP");
        assert!(d.contains(&"word:whats".to_string()));
        assert!(d.contains(&"word:up".to_string()));
        assert!(d.contains(&"bigram:^|whats".to_string()));
        assert!(d.contains(&"bigram:up|$".to_string()));
        assert!(d.contains(&"chars:<wh".to_string()));
        assert!(d.contains(&"chars:up>".to_string()));
    }

    #[test]
    fn digits_fold_to_zero() {
        assert!(described("call 911").contains(&"word:000".to_string()));
    }

    #[test]
    fn emoji_become_words_of_their_own() {
        assert!(described("ok👍").contains(&"word:👍".to_string()));
    }

    #[test]
    fn same_text_gives_same_keys() {
        let mut a = TextBuffers::new();
        let mut b = TextBuffers::new();
        a.featurise("book a flight", &FeatureConfig::default());
        b.featurise("BOOK a flight!", &FeatureConfig::default());
        assert_eq!(a.features, b.features);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(MAX_INPUT_BYTES);
        let cut = truncate(&text);
        assert!(cut.len() <= MAX_INPUT_BYTES);
        assert!(cut.len() >= MAX_INPUT_BYTES - 1);
    }

    #[test]
    fn featurising_never_grows_the_buffers() {
        let mut buffers = TextBuffers::new();
        let capacity = buffers.features.capacity();
        let huge = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop ".repeat(500);
        buffers.featurise(&huge, &FeatureConfig::default());
        buffers.featurise(&"x ".repeat(5000), &FeatureConfig::default());
        assert_eq!(buffers.features.capacity(), capacity);
    }
}
