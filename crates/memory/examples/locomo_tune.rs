//! Development aid: LoCoMo with cached embeddings and fusion weights from
//! the environment (W_FT, W_VEC, W_GRAPH, CTX_COL, RRF_K).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use opticlaw_memory::{Embedder, EngineConfig, Result};

struct Cached {
    inner: Arc<dyn Embedder>,
    cache: Arc<Mutex<HashMap<String, Vec<f32>>>>,
}

impl Embedder for Cached {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let missing: Vec<&str> = {
            let c = self.cache.lock().unwrap();
            texts.iter().copied().filter(|t| !c.contains_key(*t)).collect()
        };
        if !missing.is_empty() {
            let v = self.inner.embed(&missing)?;
            let mut c = self.cache.lock().unwrap();
            for (t, v) in missing.iter().zip(v) {
                c.insert(t.to_string(), v);
            }
        }
        let c = self.cache.lock().unwrap();
        Ok(texts.iter().map(|t| c[*t].clone()).collect())
    }
}

fn env(name: &str, default: f32) -> f32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let path = "/tmp/locomo_embcache.json";
    let cache: HashMap<String, Vec<f32>> =
        std::fs::read_to_string(path).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
    let cache = Arc::new(Mutex::new(cache));
    let inner: Arc<dyn Embedder> = Arc::from(opticlaw_memory::embed::local_embedder().unwrap());
    let mut config = EngineConfig::default();
    config.fusion.fulltext = env("W_FT", config.fusion.fulltext);
    config.fusion.vector = env("W_VEC", config.fusion.vector);
    config.fusion.graph = env("W_GRAPH", config.fusion.graph);
    config.fusion.k = env("RRF_K", config.fusion.k);
    config.fusion.context_column = env("CTX_COL", config.fusion.context_column as f32) as f64;
    config.fusion.neighbour = env("NB", config.fusion.neighbour);
    config.fusion.depth = env("DEPTH", config.fusion.depth as f32) as usize;
    config.fusion.by_score = std::env::var("BY_SCORE").is_ok();
    config.fusion.feedback = env("PRF", config.fusion.feedback);
    config.fusion.time_boost = env("TB", config.fusion.time_boost);
    let dir = PathBuf::from("/work/shared/data/locomo");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    let c2 = cache.clone();
    let make = move || Ok(Box::new(Cached { inner: inner.clone(), cache: c2.clone() }) as Box<dyn Embedder>);
    let r = opticlaw_memory::bench::locomo_with(&files, &config, &make).unwrap();
    println!("{r}");
    std::fs::write(path, serde_json::to_string(&*cache.lock().unwrap()).unwrap()).unwrap();
}
