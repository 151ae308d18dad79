//! The network: a feature vocabulary and a one-hidden-layer ReLU network over
//! an embedding bag of the message's known features.
//!
//! `hidden = relu(b1 + Σ_f E[f] / √n)` over the n known features of the
//! message, `logits = W2 · hidden + b2`. Because ReLU is piecewise linear, a
//! logit splits exactly into one term per feature (given which hidden units
//! are active) plus a bias, which is what explanations report.

/// Maps a feature key to its row in the embedding table (open addressing,
/// linear probing; key 0 marks an empty slot).
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    slots: Vec<u32>,
    rows: Vec<u32>,
    keys: Vec<u32>,
}

impl Vocabulary {
    /// Builds the table for `keys` (row `i` is `keys[i]`; keys are non-zero
    /// and distinct).
    pub fn new(keys: Vec<u32>) -> Self {
        let capacity = (keys.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![0u32; capacity];
        let mut rows = vec![0u32; capacity];
        for (row, &key) in keys.iter().enumerate() {
            let mut i = slot_of(key, capacity);
            while slots[i] != 0 {
                i = (i + 1) & (capacity - 1);
            }
            slots[i] = key;
            rows[i] = row as u32;
        }
        Self { slots, rows, keys }
    }

    /// The row of `key`, if the feature was seen in training.
    #[inline]
    pub fn row(&self, key: u32) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = slot_of(key, self.slots.len());
        loop {
            let k = self.slots[i];
            if k == key {
                return Some(self.rows[i]);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Keys in row order.
    pub fn keys(&self) -> &[u32] {
        &self.keys
    }

    /// Number of known features.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no feature is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[inline]
fn slot_of(key: u32, capacity: usize) -> usize {
    (key.wrapping_mul(0x9e37_79b1) as usize) & (capacity - 1)
}

/// Dense weights of the network, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Hidden width.
    pub hidden: usize,
    /// Number of classes.
    pub classes: usize,
    /// `rows × hidden` feature embeddings.
    pub embeddings: Vec<f32>,
    /// Hidden bias.
    pub b1: Vec<f32>,
    /// `classes × hidden` output weights.
    pub w2: Vec<f32>,
    /// Output bias.
    pub b2: Vec<f32>,
}

impl Network {
    /// A zero network of the given shape.
    pub fn zeros(rows: usize, hidden: usize, classes: usize) -> Self {
        Self {
            hidden,
            classes,
            embeddings: vec![0.0; rows * hidden],
            b1: vec![0.0; hidden],
            w2: vec![0.0; classes * hidden],
            b2: vec![0.0; classes],
        }
    }

    /// The embedding of feature row `row`.
    #[inline]
    pub fn embedding(&self, row: u32) -> &[f32] {
        let s = row as usize * self.hidden;
        &self.embeddings[s..s + self.hidden]
    }

    /// Fills `hidden` (pre-activation is overwritten by the activation) and
    /// `logits` for the feature rows `rows`, each weighted `1/√n`.
    pub fn forward(&self, rows: &[u32], hidden: &mut [f32], logits: &mut [f32]) {
        hidden.copy_from_slice(&self.b1);
        if !rows.is_empty() {
            let scale = 1.0 / (rows.len() as f32).sqrt();
            for &r in rows {
                for (h, e) in hidden.iter_mut().zip(self.embedding(r)) {
                    *h += scale * e;
                }
            }
        }
        for h in hidden.iter_mut() {
            *h = h.max(0.0);
        }
        for (c, logit) in logits.iter_mut().enumerate() {
            let w = &self.w2[c * self.hidden..(c + 1) * self.hidden];
            *logit = self.b2[c] + dot(w, hidden);
        }
    }

    /// The part of class `class`'s logit owed to feature row `row`, given the
    /// activations of the last forward pass over `n` features.
    pub fn contribution(&self, row: u32, n: usize, hidden: &[f32], class: usize) -> f32 {
        let scale = 1.0 / (n.max(1) as f32).sqrt();
        let w = &self.w2[class * self.hidden..(class + 1) * self.hidden];
        let e = self.embedding(row);
        let mut sum = 0.0;
        for j in 0..self.hidden {
            if hidden[j] > 0.0 {
                sum += w[j] * e[j];
            }
        }
        sum * scale
    }
}

/// Dot product, unrolled so the compiler vectorises it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for k in 0..8 {
            acc[k] += a[i * 8 + k] * b[i * 8 + k];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// Softmax of `logits / temperature` into `probs`.
pub fn softmax(logits: &[f32], temperature: f32, probs: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = ((l - max) / temperature).exp();
        sum += *p;
    }
    for p in probs.iter_mut() {
        *p /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_finds_every_key_and_rejects_unknown_ones() {
        let keys: Vec<u32> = (1..1000u32)
            .map(|k| k.wrapping_mul(2_654_435_761))
            .collect();
        let vocab = Vocabulary::new(keys.clone());
        for (row, key) in keys.iter().enumerate() {
            assert_eq!(vocab.row(*key), Some(row as u32));
        }
        assert_eq!(vocab.row(7), None);
    }

    #[test]
    fn contributions_and_biases_sum_to_the_logit() {
        let mut net = Network::zeros(3, 4, 2);
        for (i, w) in net.embeddings.iter_mut().enumerate() {
            *w = ((i * 7 % 5) as f32 - 2.0) * 0.3;
        }
        for (i, w) in net.w2.iter_mut().enumerate() {
            *w = ((i * 3 % 4) as f32 - 1.5) * 0.5;
        }
        net.b1 = vec![0.1, -0.2, 0.3, 0.0];
        net.b2 = vec![0.05, -0.05];
        let rows = [0u32, 2];
        let mut hidden = [0.0; 4];
        let mut logits = [0.0; 2];
        net.forward(&rows, &mut hidden, &mut logits);
        for (class, &logit) in logits.iter().enumerate() {
            let w = &net.w2[class * 4..class * 4 + 4];
            let bias: f32 = net.b2[class]
                + (0..4)
                    .filter(|&j| hidden[j] > 0.0)
                    .map(|j| w[j] * net.b1[j])
                    .sum::<f32>();
            let parts: f32 = rows
                .iter()
                .map(|&r| net.contribution(r, rows.len(), &hidden, class))
                .sum();
            assert!((bias + parts - logit).abs() < 1e-5);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut p = [0.0; 3];
        softmax(&[1.0, 2.0, 3.0], 1.5, &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
    }
}
