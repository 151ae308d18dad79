//! [`MemoryEngine`]: one SQLite connection, the L1 hot cache, the vector
//! index and an optional embedder, behind a small API.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use uuid::Uuid;

use crate::cache::HotCache;
use crate::embed::Embedder;
use crate::error::{MemoryError, Result};
use crate::record::{NewMemory, StoredMemory};
use crate::retrieve::{FusionWeights, Hit, Query, Retriever, VectorCandidates, candidate_depth};
use crate::store::{self, PreparedRecord};
use crate::vector::VectorIndex;

/// Limits and knobs of an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Largest record content accepted, in bytes.
    pub max_record_bytes: usize,
    /// Byte budget of the L1 hot cache.
    pub hot_cache_bytes: usize,
    /// Vector count above which the index switches to HNSW.
    pub hnsw_threshold: usize,
    /// Retrieval fusion weights.
    pub fusion: FusionWeights,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_record_bytes: 64 * 1024,
            hot_cache_bytes: 4 * 1024 * 1024,
            hnsw_threshold: crate::vector::DEFAULT_HNSW_THRESHOLD,
            fusion: FusionWeights::default(),
        }
    }
}

/// The memory engine. Each write is one SQLite transaction.
pub struct MemoryEngine {
    pub(crate) conn: Connection,
    pub(crate) embedder: Option<Box<dyn Embedder>>,
    pub(crate) vectors: Option<VectorIndex>,
    pub(crate) hot: HotCache,
    pub(crate) config: EngineConfig,
    /// Recent query vectors (the budgeter searches again for the same text).
    query_vectors: std::sync::Mutex<Vec<(String, Vec<f32>)>>,
}

/// Query vectors remembered.
const QUERY_VECTOR_CACHE: usize = 32;

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field(
                "embedder",
                &self.embedder.as_ref().map(|e| e.model_id().to_string()),
            )
            .field("vectors", &self.vectors)
            .finish()
    }
}

/// Decode bytes as record content, with a clear error for invalid UTF-8.
pub fn content_from_bytes(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| MemoryError::InvalidUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Embed `texts`, checking the count and dimension of what comes back.
fn checked_embed(e: &dyn Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let vecs = e.embed(texts)?;
    if vecs.len() != texts.len() {
        return Err(MemoryError::Embedder(format!(
            "{} vectors for {} texts",
            vecs.len(),
            texts.len()
        )));
    }
    if let Some(bad) = vecs.iter().find(|v| v.len() != e.dim()) {
        return Err(MemoryError::DimensionMismatch {
            expected: e.dim(),
            actual: bad.len(),
        });
    }
    Ok(vecs)
}

/// Where a search's query vector comes from.
enum VectorSource<'a> {
    /// Given with the query or embedded already.
    Known(Vec<f32>),
    /// To be embedded (on the vector tier's thread).
    Embed(&'a dyn Embedder),
}

/// A query's embedding, from the recent-query cache when the same text was
/// embedded lately (the budgeter searches again for the same text).
fn cached_query_vector(
    e: &dyn Embedder,
    cache: &std::sync::Mutex<Vec<(String, Vec<f32>)>>,
    text: &str,
) -> Result<Vec<f32>> {
    // Tokenizers split on whitespace: texts differing only in spacing are
    // one query (embedded in their normalised form, so the cache is exact).
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cached = cache
        .lock()
        .ok()
        .and_then(|c| c.iter().find(|(t, _)| *t == text).map(|(_, v)| v.clone()));
    if let Some(v) = cached {
        return Ok(v);
    }
    let v = checked_embed(e, &[&text])?.pop().unwrap_or_default();
    if let Ok(mut c) = cache.lock() {
        if c.len() >= QUERY_VECTOR_CACHE {
            c.remove(0);
        }
        c.push((text, v.clone()));
    }
    Ok(v)
}

/// A read transaction held while it lives, when the connection is not in
/// one already (a caller's transaction is left alone).
struct ReadSnapshot<'a>(Option<&'a Connection>);

impl<'a> ReadSnapshot<'a> {
    fn begin(conn: &'a Connection) -> Result<Self> {
        if !conn.is_autocommit() {
            return Ok(Self(None));
        }
        conn.execute_batch("BEGIN")?;
        Ok(Self(Some(conn)))
    }
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            // Nothing was written: ending it cannot lose anything.
            let _ = conn.execute_batch("COMMIT");
        }
    }
}

/// Earlier turns of a thread indexed as a new episodic record's context.
const CONTEXT_BEFORE: usize = 2;

/// Later turns of a thread indexed as an episodic record's context.
const CONTEXT_AFTER: usize = 1;

/// The text embedded for a record: the speaker's name and the content, as
/// the full-text index sees it ("what did Sam say about X").
fn embedding_text(p: &PreparedRecord) -> String {
    match &p.new.speaker {
        Some(s) => format!("{s}: {}", p.new.content),
        None => p.new.content.clone(),
    }
}

impl MemoryEngine {
    /// Open (creating and migrating) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, EngineConfig::default())
    }

    /// [`MemoryEngine::open`] with a config.
    pub fn open_with(path: impl AsRef<Path>, config: EngineConfig) -> Result<Self> {
        let conn = Connection::open(path)?;
        // The daemon and the CLI may write at once: wait for the lock.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // A 32 MiB page cache and reads through a map of up to 2 GiB
        // (SQLite's default ceiling; address space, not memory: the
        // kernel's page cache holds what is read). At a million records the
        // file is ~1.6 GB, and each page past the 256 MiB map it had was a
        // read() call and a copy.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;
             PRAGMA cache_size = -32768; PRAGMA mmap_size = 2147418112;",
        )?;
        Self::from_connection(conn, config)
    }

    /// An engine over an in-memory database (tests, benches).
    pub fn open_in_memory(config: EngineConfig) -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?, config)
    }

    /// Wrap an existing connection, applying [`crate::MIGRATIONS`].
    pub fn from_connection(conn: Connection, config: EngineConfig) -> Result<Self> {
        crate::schema::migrate(&conn)?;
        Ok(Self {
            conn,
            embedder: None,
            vectors: None,
            hot: HotCache::new(config.hot_cache_bytes),
            config,
            query_vectors: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The underlying connection (read-only use by callers).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Attach an embedder. Fails with [`MemoryError::DimensionMismatch`] when
    /// stored vectors have another dimension; loads stored vectors of this
    /// model into the index and embeds records that have none.
    pub fn set_embedder(&mut self, embedder: Box<dyn Embedder>) -> Result<()> {
        let dim = embedder.dim();
        let stored: Option<i64> = self
            .conn
            .query_row(
                "SELECT dim FROM memory_vectors WHERE model = ?1 LIMIT 1",
                [embedder.model_id()],
                |r| r.get(0),
            )
            .ok();
        if let Some(d) = stored.filter(|&d| d as usize != dim) {
            return Err(MemoryError::DimensionMismatch {
                expected: d as usize,
                actual: dim,
            });
        }
        let probe = embedder.embed(&["dimension probe"])?;
        if probe.first().map(Vec::len) != Some(dim) {
            return Err(MemoryError::DimensionMismatch {
                expected: dim,
                actual: probe.first().map_or(0, Vec::len),
            });
        }
        let mut index = VectorIndex::with_threshold(dim, self.config.hnsw_threshold);
        {
            let mut stmt = self
                .conn
                .prepare("SELECT seq, vector FROM memory_vectors WHERE model = ?1")?;
            let rows = stmt.query_map([embedder.model_id()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            let mut all = Vec::new();
            for row in rows {
                let (seq, blob) = row?;
                all.push((seq, store::blob_to_vector(&blob)));
            }
            index.insert_many(&all)?;
        }
        self.vectors = Some(index);
        self.embedder = Some(embedder);
        if let Ok(mut c) = self.query_vectors.lock() {
            c.clear();
        }
        self.embed_missing()?;
        Ok(())
    }

    /// The attached embedder's model id, if any.
    pub fn embedder_model(&self) -> Option<&str> {
        self.embedder.as_deref().map(Embedder::model_id)
    }

    fn embed_missing(&mut self) -> Result<()> {
        let Some(model) = self.embedder.as_ref().map(|e| e.model_id().to_string()) else {
            return Ok(());
        };
        let missing: Vec<(i64, String)> = {
            let mut stmt = self.conn.prepare(
                "SELECT seq, CASE WHEN speaker IS NULL THEN content ELSE speaker || ': ' || content END
                   FROM memory_records r WHERE NOT EXISTS
                   (SELECT 1 FROM memory_vectors v WHERE v.seq = r.seq AND v.model = ?1)",
            )?;
            stmt.query_map([&model], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut pending = Vec::new();
        for chunk in missing.chunks(1024) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let vecs = self.embed_texts(&texts)?;
            let tx = self.conn.unchecked_transaction()?;
            for ((seq, _), v) in chunk.iter().zip(vecs) {
                store::put_vector(&tx, *seq, &model, &v)?;
                pending.push((*seq, v));
            }
            tx.commit()?;
            if pending.len() >= 100_000 {
                if let Some(idx) = self.vectors.as_mut() {
                    idx.insert_many(&std::mem::take(&mut pending))?;
                }
            }
        }
        if let Some(idx) = self.vectors.as_mut() {
            idx.insert_many(&pending)?;
        }
        Ok(())
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match &self.embedder {
            Some(e) => checked_embed(e.as_ref(), texts),
            None => Ok(Vec::new()),
        }
    }

    fn prepare(&self, mut new: NewMemory, now: DateTime<Utc>) -> Result<PreparedRecord> {
        if new.content.len() > self.config.max_record_bytes {
            return Err(MemoryError::Oversized {
                size: new.content.len(),
                limit: self.config.max_record_bytes,
            });
        }
        if new.content.trim().is_empty() {
            return Err(MemoryError::Invalid("content is empty".into()));
        }
        if new.content.contains('\0') {
            return Err(MemoryError::Invalid("content contains a NUL byte".into()));
        }
        for (name, v) in [("salience", new.salience), ("confidence", new.confidence)] {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                return Err(MemoryError::Invalid(format!("{name} {v} is outside 0..=1")));
            }
        }
        let mut entities: Vec<String> = new
            .entities
            .iter()
            .map(|e| crate::text::normalise_entity_key(e))
            .collect();
        entities.extend(crate::text::extract_entities(&new.content));
        if let Some(s) = &new.speaker {
            entities.push(crate::text::normalise_entity_key(&format!("person:{s}")));
        }
        entities.sort();
        entities.dedup();
        new.entities = entities.clone();
        let before: Vec<&StoredMemory> = match (&new.thread_id, new.kind) {
            (Some(t), opticlaw_core::MemoryType::Episodic) => self.hot.recent(t, CONTEXT_BEFORE),
            _ => Vec::new(),
        };
        let next_of: Vec<i64> = before
            .iter()
            .rev()
            .take(CONTEXT_AFTER)
            .map(|m| m.seq)
            .collect();
        let context = before
            .iter()
            .map(|m| m.record.content.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(PreparedRecord {
            memory_id: new.memory_id.unwrap_or_else(Uuid::now_v7),
            salience: new
                .salience
                .unwrap_or_else(|| crate::text::heuristic_salience(&new.content)),
            occurred_at: new.occurred_at.unwrap_or(now),
            created_at: now,
            entities,
            context,
            previous_seqs: next_of,
            new,
        })
    }

    /// Remember one record; returns it as stored.
    pub fn add(&mut self, new: NewMemory) -> Result<StoredMemory> {
        let mut out = self.add_batch(vec![new])?;
        Ok(out.remove(0))
    }

    /// Remember several records in one transaction (all or nothing),
    /// embedding them in batches. An episodic record of a thread is indexed
    /// with its neighbours as low-weight full-text context: the two turns
    /// before it, and (added when it arrives) the turn after it, so a
    /// question and its answer find each other.
    pub fn add_batch(&mut self, news: Vec<NewMemory>) -> Result<Vec<StoredMemory>> {
        self.add_batch_numbered(news, &[]).map_err(|(_, e)| e)
    }

    /// [`MemoryEngine::add_batch`] that also moves ingestion cursors (see
    /// [`MemoryEngine::cursor`]) in the same transaction: a feed ingested
    /// this way is ingested exactly once, even across a crash. `news` may
    /// be empty (only the cursors move). An error names the index of the
    /// record refused (0 when no single record is to blame).
    pub fn add_batch_at_cursors(
        &mut self,
        news: Vec<NewMemory>,
        cursors: &[(&str, i64)],
    ) -> Result<Vec<StoredMemory>, (usize, MemoryError)> {
        self.add_batch_numbered(news, cursors)
    }

    /// Drop the recent-query embedding cache (benchmarks time uncached queries).
    pub fn clear_query_cache(&self) {
        if let Ok(mut c) = self.query_vectors.lock() {
            c.clear();
        }
    }

    /// The engine's limits and knobs.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Position of the ingestion cursor `name` (0 before the first move).
    pub fn cursor(&self, name: &str) -> Result<i64> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached("SELECT position FROM memory_cursors WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// [`MemoryEngine::add_batch`], naming the index of the record that failed.
    pub(crate) fn add_batch_numbered(
        &mut self,
        news: Vec<NewMemory>,
        cursors: &[(&str, i64)],
    ) -> Result<Vec<StoredMemory>, (usize, MemoryError)> {
        let at = |i: usize| move |e: MemoryError| (i, e);
        let now = Utc::now();
        for new in &news {
            if let Some(t) = new.thread_id.as_deref() {
                self.warm_thread(t).map_err(at(0))?;
            }
        }
        let mut stored: Vec<StoredMemory> = Vec::with_capacity(news.len());
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| (0, e.into()))?;
        let mut prepared = Vec::with_capacity(news.len());
        let mut failure = None;
        for (i, new) in news.into_iter().enumerate() {
            let step = self.prepare(new, now).and_then(|p| {
                let seq = store::insert_record(&tx, &p)?;
                Ok((p, seq))
            });
            let (p, seq) = match step {
                Ok(x) => x,
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            };
            // Built from what was inserted rather than read back: one
            // SELECT per record showed in bulk ingestion.
            let m = p.stored(seq);
            self.hot.push(m.clone());
            prepared.push((seq, embedding_text(&p)));
            stored.push(m);
        }
        let texts: Vec<&str> = prepared.iter().map(|(_, c)| c.as_str()).collect();
        let result = match failure {
            Some(f) => Err(f),
            None => self.embed_texts(&texts).map_err(at(0)),
        };
        let vecs = match result {
            Ok(v) => v,
            Err(e) => {
                drop(tx);
                for m in &stored {
                    self.hot.remove(m.seq);
                }
                return Err(e);
            }
        };
        if let Some(model) = self.embedder.as_ref().map(|e| e.model_id().to_string()) {
            for (i, ((seq, _), v)) in prepared.iter().zip(&vecs).enumerate() {
                store::put_vector(&tx, *seq, &model, v).map_err(at(i))?;
            }
        }
        for (name, position) in cursors {
            store::set_cursor(&tx, name, *position).map_err(|e| (0, e))?;
        }
        tx.commit().map_err(|e| (0, e.into()))?;
        if let Some(idx) = self.vectors.as_mut() {
            let items: Vec<(i64, Vec<f32>)> = prepared.iter().map(|(s, _)| *s).zip(vecs).collect();
            idx.insert_many(&items).map_err(at(0))?;
        }
        Ok(stored)
    }

    /// Load a thread's last records into the hot cache if it has none there
    /// (after a restart), so new turns get their neighbours as context.
    fn warm_thread(&mut self, thread: &str) -> Result<()> {
        if !self.hot.recent(thread, 1).is_empty() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM memory_records WHERE thread_id = ?1 ORDER BY occurred_at DESC, seq DESC LIMIT 4",
            store::RECORD_COLUMNS
        ))?;
        let mut last: Vec<StoredMemory> = stmt
            .query_map([thread], store::row_to_memory)?
            .collect::<rusqlite::Result<_>>()?;
        last.reverse();
        for m in last {
            self.hot.push(m);
        }
        Ok(())
    }

    /// Fetch a record by id.
    pub fn get(&self, id: Uuid) -> Result<Option<StoredMemory>> {
        store::get(&self.conn, id)
    }

    /// Pin (never forgotten by decay) or unpin a record.
    pub fn pin(&mut self, id: Uuid, pinned: bool) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        if !store::set_pinned(&tx, id, pinned)? {
            return Err(MemoryError::NotFound(id));
        }
        tx.commit()?;
        if let Some(m) = self.get(id)? {
            self.hot.set_pinned(m.seq, pinned);
        }
        Ok(())
    }

    /// Truly delete a record everywhere: row, full-text entry, vector (blob
    /// and index), entity links, summaries quoting it, hot cache.
    pub fn forget(&mut self, id: Uuid) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        let seq = store::forget(&tx, id)?.ok_or(MemoryError::NotFound(id))?;
        tx.commit()?;
        self.drop_from_memory(seq);
        Ok(())
    }

    pub(crate) fn drop_from_memory(&mut self, seq: i64) {
        if let Some(idx) = self.vectors.as_mut() {
            idx.remove(seq);
        }
        self.hot.remove(seq);
    }

    /// Delete every record whose `expires_at` has passed; returns how many.
    pub fn purge_expired(&mut self, now: DateTime<Utc>) -> Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        let seqs = store::expired(&tx, now)?;
        for &s in &seqs {
            store::forget_seq(&tx, s)?;
        }
        tx.commit()?;
        for &s in &seqs {
            self.drop_from_memory(s);
        }
        Ok(seqs.len())
    }

    /// Hybrid search (see [`crate::retrieve`]). The vector tier runs on a
    /// second thread (embedding the query if needed, then searching the
    /// index) while full-text and graph candidates are gathered on this one,
    /// unless it is cheaper than a thread: a known vector and a small memory
    /// searched by brute force.
    pub fn search(&self, query: &Query) -> Result<Vec<Hit>> {
        // One read transaction for the whole search: each statement on its
        // own took and released WAL read locks (a few hundred lock system
        // calls per search, one pair per candidate record read).
        let _snapshot = ReadSnapshot::begin(&self.conn)?;
        let cache = &self.query_vectors;
        let text = query.text.as_str();
        let source = match (&self.embedder, &query.vector) {
            (Some(_), Some(v)) => Some(VectorSource::Known(v.clone())),
            (Some(embedder), None) if !text.trim().is_empty() && embedder.uses_two_threads() => {
                // The embedder keeps both cores busy: gathering full-text
                // candidates beside it only made the two take turns (query
                // p95 on LoCoMo 10.9-11.9 ms beside, 9.6-9.7 ms after).
                let vector = cached_query_vector(embedder.as_ref(), cache, text)?;
                Some(VectorSource::Known(vector))
            }
            (Some(embedder), None) if !text.trim().is_empty() => {
                Some(VectorSource::Embed(embedder.as_ref()))
            }
            _ => None,
        };
        let depth = candidate_depth(&self.config.fusion, query.limit);
        std::thread::scope(|scope| {
            let vector_candidates = match (source, self.vectors.as_ref()) {
                // Brute force over a small memory takes microseconds.
                (Some(VectorSource::Known(v)), Some(index)) if !index.uses_hnsw() => {
                    VectorCandidates::Search(v)
                }
                // A graph search at a million records takes milliseconds of
                // CPU, as much as half of full text's: beside it, not after.
                (Some(source), Some(index)) => {
                    let (tx, rx) = std::sync::mpsc::channel();
                    scope.spawn(move || {
                        let vector = match source {
                            VectorSource::Known(v) => Ok(v),
                            VectorSource::Embed(embedder) => {
                                cached_query_vector(embedder, cache, text)
                            }
                        };
                        let _ = tx.send(vector.and_then(|v| index.search(&v, depth)));
                    });
                    VectorCandidates::Pending(rx)
                }
                _ => VectorCandidates::None,
            };
            Retriever {
                conn: &self.conn,
                vectors: self.vectors.as_ref(),
                vector_candidates: std::cell::Cell::new(vector_candidates),
                weights: &self.config.fusion,
                term_rows: Default::default(),
                records_at_most: Default::default(),
            }
            .search(query)
        })
    }

    /// The embedding of a query text with the attached embedder (cached for
    /// recent texts); `None` without an embedder. Pass it as
    /// [`Query::vector`] to search without embedding again.
    pub fn embed_query(&self, text: &str) -> Result<Option<Vec<f32>>> {
        match &self.embedder {
            Some(e) => cached_query_vector(e.as_ref(), &self.query_vectors, text).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the vector index is an HNSW graph (a memory past
    /// [`EngineConfig::hnsw_threshold`] vectors) rather than brute force.
    pub fn uses_hnsw(&self) -> bool {
        self.vectors.as_ref().is_some_and(VectorIndex::uses_hnsw)
    }

    /// Record that these records were used (put in a prompt): decay counts
    /// idle time from the last use, and frequent use lifts salience.
    pub fn mark_used(&mut self, seqs: &[i64]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        store::touch(&tx, seqs, Utc::now())?;
        tx.commit()?;
        Ok(())
    }

    /// Add a relation between two entities (`person:sam -works_at-> org:acme`).
    pub fn relate(&mut self, src: &str, relation: &str, dst: &str) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        crate::graph::relate(&tx, src, relation, dst, Utc::now())?;
        tx.commit()?;
        Ok(())
    }

    /// Entities within `depth` hops of `key`.
    pub fn neighbours(&self, key: &str, depth: u32) -> Result<Vec<crate::graph::Neighbour>> {
        crate::graph::neighbours(&self.conn, key, depth)
    }

    /// Counts of records, vectors, entities and summaries.
    pub fn stats(&self) -> Result<store::StoreStats> {
        store::stats(&self.conn)
    }

    /// Recent records of a thread from the L1 hot cache, oldest first.
    pub fn recent(&self, thread_id: &str, n: usize) -> Vec<StoredMemory> {
        self.hot.recent(thread_id, n).into_iter().cloned().collect()
    }

    /// Bytes held by the L1 hot cache.
    pub fn hot_cache_bytes(&self) -> usize {
        self.hot.used_bytes()
    }
}
