//! Hyper-parameter exploration: `tune key=value ...` trains with the given
//! options and prints validation accuracy against out-of-scope recall for a
//! range of thresholds. Test splits are left to the bench.

use opticlaw_intent::calibrate::{Scored, accuracy_and_recall};
use opticlaw_intent::data::{Clinc150, Example, default_clinc_path};
use opticlaw_intent::train::{TrainOptions, train};
use opticlaw_intent::{Classifier, network::softmax};

fn score(c: &Classifier, examples: &[Example], t: f32) -> Vec<Scored> {
    let mut s = c.scratch();
    let classes = &c.model().classes;
    let mut probs = vec![0.0; classes.len()];
    examples
        .iter()
        .map(|e| {
            let l = c.logits(&e.text, &mut s);
            softmax(&l, t, &mut probs);
            let (predicted, confidence) = probs
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, p)| if p > b.1 { (i, p) } else { b });
            Scored {
                predicted,
                confidence,
                gold: classes
                    .iter()
                    .position(|x| *x == e.intent)
                    .unwrap_or(usize::MAX),
            }
        })
        .collect()
}

fn main() {
    let mut o = TrainOptions::default();
    for arg in std::env::args().skip(1) {
        let (k, v) = arg.split_once('=').expect("key=value");
        match k {
            "seed" => o.seed = v.parse().unwrap(),
            "epochs" => o.epochs = v.parse().unwrap(),
            "hidden" => o.hidden = v.parse().unwrap(),
            "ensemble" => o.ensemble = v.parse().unwrap(),
            "lr" => o.learning_rate = v.parse().unwrap(),
            "wdrop" => o.word_dropout = v.parse().unwrap(),
            "hdrop" => o.hidden_dropout = v.parse().unwrap(),
            "dropout" => o.input_dropout = v.parse().unwrap(),
            "min_count" => o.min_count = v.parse().unwrap(),
            "char_min" => o.features.char_min = v.parse().unwrap(),
            "char_max" => o.features.char_max = v.parse().unwrap(),
            "bigrams" => o.features.word_bigrams = v.parse().unwrap(),
            "word_repeat" => o.features.word_repeat = v.parse().unwrap(),
            "oos_repeat" => o.oos_repeat = v.parse().unwrap(),
            "smooth" => o.label_smoothing = v.parse().unwrap(),
            "init" => o.init_scale = v.parse().unwrap(),
            "assistant" => o.assistant_examples = v.parse().unwrap(),
            _ => panic!("unknown option {k}"),
        }
    }
    let started = std::time::Instant::now();
    let trained = train(&o).unwrap();
    println!(
        "{:?}\n{} bytes={} secs={:.1}",
        o,
        trained.report,
        trained.bytes.len(),
        started.elapsed().as_secs_f64()
    );
    let data = Clinc150::load(&default_clinc_path()).unwrap();
    let c = &trained.classifier;
    let oos = c.model().oos_index().unwrap();
    let t = c.model().temperature;
    let val: Vec<Example> = data.val.iter().chain(&data.oos_val).cloned().collect();
    let sv = score(c, &val, t);
    for th in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7] {
        let (va, vr) = accuracy_and_recall(&sv, oos, th);
        println!("th={th:.2} val_acc={va:.4} val_oos_recall={vr:.3}");
    }
}
