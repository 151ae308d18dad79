//! Reproducible training: same options and data, same model bytes.
//!
//! The network is trained with plain SGD (one example at a time, learning
//! rate decaying linearly to zero, input-feature dropout) on CLINC150's
//! `train` and `oos_train` splits plus the assistant examples in
//! `data/assistant.json`. The model is then quantised to its file format and
//! read back, and that exact model is calibrated on CLINC150's `val` and
//! `oos_val`: softmax temperature, out-of-scope threshold and fast-path gate.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use crate::IntentError;
use crate::calibrate::{
    Scored, accuracy_and_recall, choose_gate_threshold, choose_oos_threshold, fit_temperature,
};
use crate::classifier::Classifier;
use crate::data::{Clinc150, Example, OOS, assistant_examples, default_clinc_path};
use crate::model::Model;
use crate::network::{Network, Vocabulary, softmax};
use crate::rng::Rng;
use crate::text::{FeatureConfig, TextBuffers};

/// Everything that determines a trained model. [`TrainOptions::default`] is
/// what produced the shipped model.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// CLINC150's `data_full.json`.
    pub data: PathBuf,
    /// Seed of every random choice (initialisation, order, dropout).
    pub seed: u64,
    /// Passes over the training data.
    pub epochs: usize,
    /// Hidden width of each ensemble member.
    pub hidden: usize,
    /// Independently trained members (seeds `seed`, `seed + 1`, ...) whose
    /// logits are averaged; stored as one network of width
    /// `ensemble × hidden`.
    pub ensemble: usize,
    /// Initial SGD learning rate (decays linearly to 0).
    pub learning_rate: f32,
    /// Probability of dropping each input feature during training.
    pub input_dropout: f32,
    /// Probability of dropping each word (with its n-grams and the bigram
    /// it starts) during training.
    pub word_dropout: f32,
    /// Probability of dropping each hidden unit during training.
    pub hidden_dropout: f32,
    /// Features seen fewer times than this in training are not kept.
    pub min_count: u32,
    /// Which n-grams to extract.
    pub features: FeatureConfig,
    /// Label smoothing of the training targets.
    pub label_smoothing: f32,
    /// Scale of the uniform initialisation of feature embeddings.
    pub init_scale: f32,
    /// Weight of out-of-scope recall against in-scope accuracy when the
    /// out-of-scope threshold is chosen on validation data.
    pub oos_weight: f32,
    /// Required precision of confident predictions when the fast-path gate
    /// is chosen on validation data.
    pub gate_precision: f32,
    /// Each out-of-scope training example is seen this many times per epoch.
    pub oos_repeat: usize,
    /// Train on the assistant-specific examples too.
    pub assistant_examples: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            data: default_clinc_path(),
            seed: 7,
            epochs: 30,
            hidden: 48,
            ensemble: 3,
            learning_rate: 0.2,
            input_dropout: 0.1,
            word_dropout: 0.2,
            hidden_dropout: 0.0,
            min_count: 3,
            features: FeatureConfig::default(),
            label_smoothing: 0.2,
            init_scale: 0.1,
            oos_weight: 0.07,
            gate_precision: 0.98,
            oos_repeat: 1,
            assistant_examples: true,
        }
    }
}

/// A trained, quantised and calibrated model.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// The model file (what ships as `model/intent.ocm`).
    pub bytes: Vec<u8>,
    /// The model read back from `bytes`.
    pub classifier: Classifier,
    /// Figures measured on the validation splits.
    pub report: TrainReport,
}

/// What training measured on CLINC150's `val` and `oos_val`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainReport {
    /// Known features.
    pub vocabulary: usize,
    /// Fitted softmax temperature.
    pub temperature: f32,
    /// Chosen out-of-scope threshold.
    pub oos_threshold: f32,
    /// Chosen fast-path gate.
    pub gate_threshold: f32,
    /// In-scope accuracy on `val` with the threshold applied.
    pub val_accuracy: f32,
    /// Out-of-scope recall on `oos_val` with the threshold applied.
    pub val_oos_recall: f32,
}

impl std::fmt::Display for TrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vocabulary={} temperature={:.3} oos_threshold={:.2} gate_threshold={:.2} \
             val_acc={:.4} val_oos_recall={:.4}",
            self.vocabulary,
            self.temperature,
            self.oos_threshold,
            self.gate_threshold,
            self.val_accuracy,
            self.val_oos_recall
        )
    }
}

/// Trains a model from scratch. Deterministic: the same options and data
/// give the same bytes.
///
/// ```no_run
/// use opticlaw_intent::train::{TrainOptions, train};
/// let trained = train(&TrainOptions::default()).unwrap();
/// std::fs::write("intent.ocm", &trained.bytes).unwrap();
/// println!("{}", trained.report);
/// ```
pub fn train(options: &TrainOptions) -> Result<TrainedModel, IntentError> {
    validate(options)?;
    let data = Clinc150::load(&options.data)?;
    let mut examples: Vec<Example> = data.train.clone();
    for _ in 0..options.oos_repeat.max(1) {
        examples.extend(data.oos_train.iter().cloned());
    }
    if options.assistant_examples {
        examples.extend(assistant_examples());
    }
    let classes: Vec<String> = examples
        .iter()
        .map(|e| e.intent.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !classes.iter().any(|c| c == OOS) {
        return Err(IntentError::Training("no out-of-scope examples".into()));
    }
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();

    let (vocabulary, rows) = build_features(&examples, options);
    let labels: Vec<usize> = examples.iter().map(|e| index[e.intent.as_str()]).collect();
    let members: Vec<Network> = (0..options.ensemble as u64)
        .map(|k| {
            let seed = options.seed.wrapping_add(k);
            fit(
                &rows,
                &labels,
                vocabulary.len(),
                classes.len(),
                seed,
                options,
            )
        })
        .collect();
    let network = concatenate(&members);

    let mut model = Model {
        features: options.features,
        classes: classes.clone(),
        vocabulary,
        network,
        temperature: 1.0,
        oos_threshold: 0.0,
        gate_threshold: 1.0,
    };
    let quantised = Classifier::from_bytes(&model.to_bytes())?;
    let validation: Vec<&Example> = data.val.iter().chain(&data.oos_val).collect();
    let (temperature, scored) = calibrate(&quantised, &validation, &index)?;
    let oos = quantised.model().oos_index().expect("classes contain oos");
    model.temperature = temperature;
    model.oos_threshold = choose_oos_threshold(&scored, oos, options.oos_weight);
    model.gate_threshold =
        choose_gate_threshold(&scored, oos, model.oos_threshold, options.gate_precision);
    let (val_accuracy, val_oos_recall) = accuracy_and_recall(&scored, oos, model.oos_threshold);
    let bytes = model.to_bytes();
    let classifier = Classifier::from_bytes(&bytes)?;
    let report = TrainReport {
        vocabulary: model.vocabulary.len(),
        temperature,
        oos_threshold: model.oos_threshold,
        gate_threshold: model.gate_threshold,
        val_accuracy,
        val_oos_recall,
    };
    Ok(TrainedModel {
        bytes,
        classifier,
        report,
    })
}

fn validate(o: &TrainOptions) -> Result<(), IntentError> {
    let bad = |m: &str| Err(IntentError::Training(m.into()));
    if o.hidden == 0 || o.epochs == 0 || o.ensemble == 0 {
        return bad("hidden, ensemble and epochs must be positive");
    }
    if o.features.char_max > 8 || o.features.char_min > o.features.char_max {
        return bad("character n-grams must satisfy char_min <= char_max <= 8");
    }
    if o.features.word_repeat > crate::text::MAX_WORD_REPEAT {
        return bad("word_repeat is at most 4");
    }
    if !(0.0..1.0).contains(&o.input_dropout) || !(0.0..1.0).contains(&o.label_smoothing) {
        return bad("dropout and label smoothing must be in [0, 1)");
    }
    Ok(())
}

/// Counts feature keys over the training texts, keeps those seen at least
/// `min_count` times (in order of first appearance) and maps every example
/// to its known feature rows.
fn build_features(examples: &[Example], options: &TrainOptions) -> (Vocabulary, Vec<Sample>) {
    let mut buffers = TextBuffers::new();
    let mut counts: HashMap<u32, u32> = HashMap::new();
    let mut order: Vec<u32> = Vec::new();
    let mut keyed: Vec<Vec<(u32, u16)>> = Vec::with_capacity(examples.len());
    for e in examples {
        buffers.featurise(&e.text, &options.features);
        let keys: Vec<(u32, u16)> = buffers.features.iter().map(|f| (f.key, f.word)).collect();
        for &(k, _) in &keys {
            let c = counts.entry(k).or_insert(0);
            if *c == 0 {
                order.push(k);
            }
            *c += 1;
        }
        keyed.push(keys);
    }
    let kept: Vec<u32> = order
        .into_iter()
        .filter(|k| counts[k] >= options.min_count)
        .collect();
    let vocabulary = Vocabulary::new(kept);
    let samples = keyed
        .iter()
        .map(|keys| {
            let (rows, words) = keys
                .iter()
                .filter_map(|&(k, w)| vocabulary.row(k).map(|r| (r, w)))
                .unzip();
            Sample { rows, words }
        })
        .collect();
    (vocabulary, samples)
}

/// One training example's known feature rows and the word each came from
/// (`u16::MAX` for the sentence-start bigram).
struct Sample {
    rows: Vec<u32>,
    words: Vec<u16>,
}

/// SGD on softmax cross-entropy.
fn fit(
    rows: &[Sample],
    labels: &[usize],
    n_rows: usize,
    n_classes: usize,
    seed: u64,
    o: &TrainOptions,
) -> Network {
    let h = o.hidden;
    let mut rng = Rng::new(seed);
    let mut net = Network::zeros(n_rows, h, n_classes);
    for w in net.embeddings.iter_mut() {
        *w = (rng.unit() * 2.0 - 1.0) * o.init_scale;
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut kept: Vec<u32> = Vec::new();
    let mut hidden = vec![0.0f32; h];
    let mut logits = vec![0.0f32; n_classes];
    let mut probs = vec![0.0f32; n_classes];
    let mut grad_hidden = vec![0.0f32; h];
    let mut mask = vec![1.0f32; h];
    let mut dropped: Vec<bool> = Vec::new();
    let total = (o.epochs * rows.len()) as f32;
    let mut step = 0usize;
    let smooth = o.label_smoothing / n_classes as f32;
    for _ in 0..o.epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let lr = o.learning_rate * (1.0 - step as f32 / total);
            step += 1;
            kept.clear();
            if o.word_dropout > 0.0 {
                dropped.clear();
                let words = rows[i].words.iter().filter(|&&w| w != u16::MAX);
                let n_words = words.max().map_or(0, |&w| w as usize + 1);
                dropped.extend((0..n_words).map(|_| rng.unit() < o.word_dropout));
            }
            for (&r, &w) in rows[i].rows.iter().zip(&rows[i].words) {
                let word_gone = dropped.get(w as usize).copied().unwrap_or(false);
                if rng.unit() >= o.input_dropout && !word_gone {
                    kept.push(r);
                }
            }
            net.forward(&kept, &mut hidden, &mut logits);
            if o.hidden_dropout > 0.0 {
                let keep = 1.0 - o.hidden_dropout;
                for (m, v) in mask.iter_mut().zip(hidden.iter_mut()) {
                    *m = if rng.unit() < o.hidden_dropout {
                        0.0
                    } else {
                        1.0 / keep
                    };
                    *v *= *m;
                }
                for (c, logit) in logits.iter_mut().enumerate() {
                    *logit = net.b2[c] + crate::network::dot(&net.w2[c * h..(c + 1) * h], &hidden);
                }
            }
            softmax(&logits, 1.0, &mut probs);
            for (c, p) in probs.iter_mut().enumerate() {
                let target = smooth
                    + if c == labels[i] {
                        1.0 - o.label_smoothing
                    } else {
                        0.0
                    };
                *p -= target;
            }
            grad_hidden.fill(0.0);
            for (c, &g) in probs.iter().enumerate() {
                let w = &mut net.w2[c * h..(c + 1) * h];
                for j in 0..h {
                    grad_hidden[j] += g * w[j];
                    w[j] -= lr * g * hidden[j];
                }
                net.b2[c] -= lr * g;
            }
            for j in 0..h {
                if hidden[j] <= 0.0 {
                    grad_hidden[j] = 0.0;
                }
                grad_hidden[j] *= mask[j];
                net.b1[j] -= lr * grad_hidden[j];
            }
            if kept.is_empty() {
                continue;
            }
            let scale = lr / (kept.len() as f32).sqrt();
            for &r in &kept {
                let e = &mut net.embeddings[r as usize * h..(r as usize + 1) * h];
                for j in 0..h {
                    e[j] -= scale * grad_hidden[j];
                }
            }
        }
    }
    net
}

/// One network whose logits are the mean of the members' logits: hidden
/// units side by side, output weights divided by the member count.
fn concatenate(members: &[Network]) -> Network {
    let k = members.len();
    let (h, c) = (members[0].hidden, members[0].classes);
    let rows = members[0].embeddings.len() / h;
    let mut net = Network::zeros(rows, k * h, c);
    for (m, member) in members.iter().enumerate() {
        for r in 0..rows {
            net.embeddings[r * k * h + m * h..r * k * h + (m + 1) * h]
                .copy_from_slice(&member.embeddings[r * h..(r + 1) * h]);
        }
        net.b1[m * h..(m + 1) * h].copy_from_slice(&member.b1);
        for class in 0..c {
            for j in 0..h {
                net.w2[class * k * h + m * h + j] = member.w2[class * h + j] / k as f32;
            }
            net.b2[class] += member.b2[class] / k as f32;
        }
    }
    net
}

/// Fits the temperature on `validation` and scores it with that temperature.
fn calibrate(
    classifier: &Classifier,
    validation: &[&Example],
    index: &HashMap<&str, usize>,
) -> Result<(f32, Vec<Scored>), IntentError> {
    let mut scratch = classifier.scratch();
    let mut logits = Vec::with_capacity(validation.len());
    let mut gold = Vec::with_capacity(validation.len());
    for e in validation {
        let Some(&g) = index.get(e.intent.as_str()) else {
            return Err(IntentError::Training(format!(
                "validation intent {} is not a training class",
                e.intent
            )));
        };
        logits.push(classifier.logits(&e.text, &mut scratch));
        gold.push(g);
    }
    let temperature = fit_temperature(&logits, &gold);
    let mut probs = vec![0.0; classifier.model().classes.len()];
    let scored = logits
        .iter()
        .zip(&gold)
        .map(|(l, &g)| {
            softmax(l, temperature, &mut probs);
            let (predicted, confidence) =
                probs
                    .iter()
                    .copied()
                    .enumerate()
                    .fold(
                        (0, f32::MIN),
                        |best, (i, p)| if p > best.1 { (i, p) } else { best },
                    );
            Scored {
                predicted,
                confidence,
                gold: g,
            }
        })
        .collect();
    Ok((temperature, scored))
}
