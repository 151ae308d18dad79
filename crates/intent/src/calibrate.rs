//! Calibration: temperature scaling, thresholds and expected calibration
//! error.

use crate::network::softmax;

/// Number of equal-width confidence bins used by [`expected_calibration_error`].
pub const ECE_BINS: usize = 15;

/// The temperature `T > 0` that minimises the negative log-likelihood of
/// `labels` under `softmax(logits / T)` (golden-section search on `ln T`
/// over `[0.05, 20]`).
pub fn fit_temperature(logits: &[Vec<f32>], labels: &[usize]) -> f32 {
    let nll = |t: f64| -> f64 {
        let t = t.exp() as f32;
        let mut probs = Vec::new();
        let mut total = 0.0f64;
        for (l, &y) in logits.iter().zip(labels) {
            probs.resize(l.len(), 0.0);
            softmax(l, t, &mut probs);
            total -= (probs[y].max(1e-12) as f64).ln();
        }
        total
    };
    let (mut a, mut b) = (0.05f64.ln(), 20.0f64.ln());
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - phi * (b - a);
    let mut d = a + phi * (b - a);
    let (mut fc, mut fd) = (nll(c), nll(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = nll(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = nll(d);
        }
    }
    ((a + b) / 2.0).exp() as f32
}

/// Expected calibration error over [`ECE_BINS`] equal-width bins: the
/// sample-weighted mean of `|accuracy − mean confidence|` per bin.
pub fn expected_calibration_error(confidence: &[f32], correct: &[bool]) -> f32 {
    let mut count = [0usize; ECE_BINS];
    let mut conf = [0f64; ECE_BINS];
    let mut hits = [0f64; ECE_BINS];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let bin = ((c * ECE_BINS as f32) as usize).min(ECE_BINS - 1);
        count[bin] += 1;
        conf[bin] += c as f64;
        hits[bin] += ok as u8 as f64;
    }
    let n = confidence.len().max(1) as f64;
    (0..ECE_BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| (hits[b] - conf[b]).abs() / n)
        .sum::<f64>() as f32
}

/// One scored validation example: the argmax class, its calibrated
/// probability, and the gold class.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    /// Predicted class.
    pub predicted: usize,
    /// Calibrated top probability.
    pub confidence: f32,
    /// Gold class.
    pub gold: usize,
}

/// In-scope accuracy and out-of-scope recall when messages whose top
/// probability is below `threshold` (or whose top class is `oos`) are out
/// of scope.
pub fn accuracy_and_recall(scored: &[Scored], oos: usize, threshold: f32) -> (f32, f32) {
    let (mut in_n, mut in_ok, mut oos_n, mut oos_ok) = (0, 0, 0, 0);
    for s in scored {
        let in_scope = s.predicted != oos && s.confidence >= threshold;
        if s.gold == oos {
            oos_n += 1;
            oos_ok += !in_scope as usize;
        } else {
            in_n += 1;
            in_ok += (in_scope && s.predicted == s.gold) as usize;
        }
    }
    (
        in_ok as f32 / in_n.max(1) as f32,
        oos_ok as f32 / oos_n.max(1) as f32,
    )
}

/// The out-of-scope threshold maximising `accuracy + oos_weight · recall`
/// on `scored`, searched over `0.00, 0.01, ..., 0.99`.
pub fn choose_oos_threshold(scored: &[Scored], oos: usize, oos_weight: f32) -> f32 {
    let mut best = (f32::NEG_INFINITY, 0.0);
    for i in 0..100 {
        let t = i as f32 / 100.0;
        let (acc, recall) = accuracy_and_recall(scored, oos, t);
        let score = acc + oos_weight * recall;
        if score > best.0 + 1e-6 {
            best = (score, t);
        }
    }
    best.1
}

/// The smallest gate threshold (≥ `floor`, in steps of 0.01) at which the
/// in-scope predictions at or above it are right at least `precision` of
/// the time on `scored`.
pub fn choose_gate_threshold(scored: &[Scored], oos: usize, floor: f32, precision: f32) -> f32 {
    for i in 0..100 {
        let t = i as f32 / 100.0;
        if t < floor {
            continue;
        }
        let (mut n, mut ok) = (0usize, 0usize);
        for s in scored {
            if s.predicted != oos && s.confidence >= t {
                n += 1;
                ok += (s.predicted == s.gold) as usize;
            }
        }
        if n == 0 || ok as f32 >= precision * n as f32 {
            return t;
        }
    }
    0.99
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfectly_calibrated_predictor_has_zero_ece() {
        let conf = [0.5, 0.5, 1.0, 1.0];
        let correct = [true, false, true, true];
        assert!(expected_calibration_error(&conf, &correct) < 1e-6);
    }

    #[test]
    fn an_overconfident_predictor_has_high_ece() {
        let conf = [0.99; 10];
        let correct = [false; 10];
        assert!(expected_calibration_error(&conf, &correct) > 0.9);
    }

    #[test]
    fn temperature_softens_overconfident_logits() {
        // Logits say 99.99% but the label is right only 3 times in 4.
        let logits = vec![vec![10.0, 0.0]; 4];
        let labels = [0, 0, 0, 1];
        let t = fit_temperature(&logits, &labels);
        let mut p = [0.0; 2];
        softmax(&logits[0], t, &mut p);
        assert!((p[0] - 0.75).abs() < 0.01, "{p:?} at T={t}");
    }

    #[test]
    fn the_oos_threshold_separates_confident_from_unsure() {
        let s = |predicted, confidence, gold| Scored {
            predicted,
            confidence,
            gold,
        };
        let scored = [s(1, 0.9, 1), s(2, 0.8, 2), s(1, 0.3, 0), s(2, 0.35, 0)];
        let t = choose_oos_threshold(&scored, 0, 1.0);
        assert!(t > 0.35 && t <= 0.8);
        assert_eq!(accuracy_and_recall(&scored, 0, t), (1.0, 1.0));
    }
}
