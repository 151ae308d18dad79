//! Synthetic scale bench (see [`scale`]).

/// What [`scale`] measured.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ScaleReport {
    /// Records in memory.
    pub records: usize,
}

/// Not yet implemented.
pub fn scale(records: usize) -> crate::Result<ScaleReport> {
    Ok(ScaleReport { records })
}
