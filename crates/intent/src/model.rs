//! A trained model and its compact file format.
//!
//! Layout (all integers and floats little-endian):
//!
//! ```text
//! magic  "OCINTENT"            8 bytes
//! version u32 (= 1)
//! char_min u8, char_max u8, word_bigrams u8, word_repeat u8
//! hidden u32, classes u32, rows u32
//! temperature f32, oos_threshold f32, gate_threshold f32
//! classes × (len u16, UTF-8 name)
//! rows × key u32                      feature vocabulary, row order
//! rows × (scale f32, hidden × i8)     embeddings, symmetric per-row i8
//! hidden × f32                        b1
//! classes × (scale f32, hidden × i8)  W2, symmetric per-row i8
//! classes × f32                       b2
//! checksum u64                        FNV-1a 64 of every byte before it
//! ```
//!
//! Weights are stored quantised: training evaluates and calibrates the model
//! read back from these bytes, so what is measured is exactly what ships.

use crate::IntentError;
use crate::network::{Network, Vocabulary};
use crate::text::FeatureConfig;

const MAGIC: &[u8; 8] = b"OCINTENT";
const VERSION: u32 = 1;

/// Everything inference needs: labels, features, weights and the calibrated
/// thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Which n-grams to extract.
    pub features: FeatureConfig,
    /// Class names; index = network output.
    pub classes: Vec<String>,
    /// Known features.
    pub vocabulary: Vocabulary,
    /// Weights.
    pub network: Network,
    /// Softmax temperature fitted on validation data.
    pub temperature: f32,
    /// Below this calibrated top probability a message is out of scope.
    pub oos_threshold: f32,
    /// At or above this calibrated probability an in-scope answer may take
    /// the fast path.
    pub gate_threshold: f32,
}

impl Model {
    /// Index of the out-of-scope class.
    pub fn oos_index(&self) -> Option<usize> {
        self.classes.iter().position(|c| c == crate::data::OOS)
    }

    /// Serialises the model (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let net = &self.network;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[
            self.features.char_min,
            self.features.char_max,
            self.features.word_bigrams as u8,
            self.features.word_repeat,
        ]);
        for v in [net.hidden, net.classes, self.vocabulary.len()] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for v in [self.temperature, self.oos_threshold, self.gate_threshold] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for name in &self.classes {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        for key in self.vocabulary.keys() {
            out.extend_from_slice(&key.to_le_bytes());
        }
        write_rows(&mut out, &net.embeddings, net.hidden);
        for v in &net.b1 {
            out.extend_from_slice(&v.to_le_bytes());
        }
        write_rows(&mut out, &net.w2, net.hidden);
        for v in &net.b2 {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses a model file, checking magic, version, sizes and checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IntentError> {
        let bad = |m: &str| IntentError::BadModel(m.to_string());
        if bytes.len() < 8 + 8 || &bytes[..8] != MAGIC {
            return Err(bad("not an OptiClaw intent model"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body) != u64::from_le_bytes(tail.try_into().expect("8 bytes")) {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader {
            bytes: body,
            pos: 8,
        };
        if r.u32()? != VERSION {
            return Err(bad("unsupported version"));
        }
        let flags = r.take(4)?;
        let features = FeatureConfig {
            char_min: flags[0],
            char_max: flags[1],
            word_bigrams: flags[2] != 0,
            word_repeat: flags[3],
        };
        if features.char_max > 8
            || features.char_min > features.char_max
            || features.word_repeat > crate::text::MAX_WORD_REPEAT
        {
            return Err(bad("unsupported n-gram range"));
        }
        let hidden = r.u32()? as usize;
        let n_classes = r.u32()? as usize;
        let rows = r.u32()? as usize;
        if hidden == 0 || n_classes == 0 {
            return Err(bad("empty network"));
        }
        let temperature = r.f32()?;
        let oos_threshold = r.f32()?;
        let gate_threshold = r.f32()?;
        let mut classes = Vec::with_capacity(n_classes);
        for _ in 0..n_classes {
            let len = r.u16()? as usize;
            let name = std::str::from_utf8(r.take(len)?).map_err(|_| bad("class name"))?;
            classes.push(name.to_string());
        }
        let mut keys = Vec::with_capacity(rows);
        for _ in 0..rows {
            keys.push(r.u32()?);
        }
        let embeddings = r.rows(rows, hidden)?;
        let b1 = r.floats(hidden)?;
        let w2 = r.rows(n_classes, hidden)?;
        let b2 = r.floats(n_classes)?;
        if r.pos != body.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            features,
            classes,
            vocabulary: Vocabulary::new(keys),
            network: Network {
                hidden,
                classes: n_classes,
                embeddings,
                b1,
                w2,
                b2,
            },
            temperature,
            oos_threshold,
            gate_threshold,
        })
    }
}

fn quantise_row(row: &[f32]) -> (f32, Vec<i8>) {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return (0.0, vec![0; row.len()]);
    }
    let scale = max / 127.0;
    let q = row
        .iter()
        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (scale, q)
}

fn write_rows(out: &mut Vec<u8>, weights: &[f32], width: usize) {
    for row in weights.chunks(width) {
        let (scale, q) = quantise_row(row);
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend(q.iter().map(|&v| v as u8));
    }
}

/// FNV-1a, 64-bit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IntentError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| IntentError::BadModel("truncated".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, IntentError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, IntentError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn f32(&mut self) -> Result<f32, IntentError> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn floats(&mut self, n: usize) -> Result<Vec<f32>, IntentError> {
        (0..n).map(|_| self.f32()).collect()
    }
    fn rows(&mut self, rows: usize, width: usize) -> Result<Vec<f32>, IntentError> {
        let mut out = Vec::with_capacity(rows.saturating_mul(width).min(self.bytes.len()));
        for _ in 0..rows {
            let scale = self.f32()?;
            out.extend(self.take(width)?.iter().map(|&b| b as i8 as f32 * scale));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let mut network = Network::zeros(2, 3, 2);
        network.embeddings = vec![0.5, -0.25, 0.125, 1.0, 0.0, -1.0];
        network.w2 = vec![0.3, 0.2, -0.1, 0.0, 0.7, 0.1];
        network.b1 = vec![0.01, 0.02, 0.03];
        network.b2 = vec![-0.5, 0.5];
        Model {
            features: FeatureConfig::default(),
            classes: vec!["greeting".into(), "oos".into()],
            vocabulary: Vocabulary::new(vec![11, 42]),
            network,
            temperature: 1.5,
            oos_threshold: 0.3,
            gate_threshold: 0.8,
        }
    }

    #[test]
    fn a_model_survives_a_round_trip_within_quantisation_error() {
        let model = tiny();
        let back = Model::from_bytes(&model.to_bytes()).unwrap();
        assert_eq!(back.classes, model.classes);
        assert_eq!(back.vocabulary, model.vocabulary);
        assert_eq!(back.features, model.features);
        assert_eq!(back.temperature, model.temperature);
        assert_eq!(back.network.b1, model.network.b1);
        let pairs = back
            .network
            .embeddings
            .iter()
            .zip(&model.network.embeddings);
        for (a, b) in pairs.chain(back.network.w2.iter().zip(&model.network.w2)) {
            assert!((a - b).abs() <= 1.0 / 254.0 + 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let mut bytes = tiny().to_bytes();
        bytes[40] ^= 1;
        assert!(matches!(
            Model::from_bytes(&bytes),
            Err(IntentError::BadModel(_))
        ));
    }

    #[test]
    fn truncated_or_foreign_files_are_refused() {
        let bytes = tiny().to_bytes();
        assert!(Model::from_bytes(&bytes[..bytes.len() / 2]).is_err());
        assert!(Model::from_bytes(b"hello").is_err());
        assert!(Model::from_bytes(&[]).is_err());
    }
}
