//! Shows the shipped model's decision on a message, with probabilities and
//! the features behind it.
//!
//! `cargo run --release -p opticlaw-intent --example explain -- "set an alarm for 7"`

fn main() {
    let text = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let p = opticlaw_intent::Classifier::shipped().classify(&text);
    println!(
        "intent={} confidence={:.3} in_scope={} confident={} urgency={:.2} tool_needed={:.2} domain={} fast_handler={}",
        p.intent,
        p.confidence,
        p.in_scope,
        p.confident,
        p.urgency,
        p.tool_needed,
        p.profile.domain,
        p.profile.fast_path
    );
    for (intent, prob) in &p.top {
        println!("  {prob:.3} {intent}");
    }
    println!("because:");
    for (feature, weight) in &p.contributions {
        println!("  {weight:+.3} {feature}");
    }
}
