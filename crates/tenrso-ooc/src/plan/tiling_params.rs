//! [`TilingParams`]: what a contraction's tiles and result chunks are sized by.

/// How the steps of a contraction are sized: the result's chunking, the
/// element size, and the memory every task must fit.
///
/// ```
/// use tenrso_ooc::plan::TilingParams;
/// let params = TilingParams::new(8, 1 << 30).with_output_chunks([1024, 1024]);
/// assert_eq!(params.target_chunk_bytes, 8 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TilingParams {
    /// Chunk shape of the result; `None`: the operands' chunking along each
    /// index, halved until a chunk is at most `target_chunk_bytes`.
    pub output_chunks: Option<Vec<u64>>,
    /// Bytes per element.
    pub itemsize: u64,
    /// The memory limit the tiles are grown under (a task gets a share).
    pub memory_limit: u64,
    /// Bytes aimed at for a default result chunk.
    pub target_chunk_bytes: u64,
}

impl TilingParams {
    /// Elements of `itemsize` bytes under `memory_limit`, default result
    /// chunks of about 8 MiB.
    pub fn new(itemsize: u64, memory_limit: u64) -> Self {
        Self {
            output_chunks: None,
            itemsize,
            memory_limit,
            target_chunk_bytes: 8 << 20,
        }
    }

    /// Chunks the result as `chunks`.
    pub fn with_output_chunks(mut self, chunks: impl Into<Vec<u64>>) -> Self {
        self.output_chunks = Some(chunks.into());
        self
    }

    /// Aims default result chunks at `bytes`.
    pub fn with_target_chunk_bytes(mut self, bytes: u64) -> Self {
        self.target_chunk_bytes = bytes;
        self
    }
}
