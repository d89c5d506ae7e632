//! Resolving a [`CodecChoice`] for an array a request creates: the fixed
//! compressor, the one recorded by the run being resumed, or one measured
//! on samples of the data about to be written.

use std::path::Path;

use crate::core::{Block, Element, Region, Result};
use crate::exec::Session;
use crate::store::{ArraySpec, CodecChoice, CodecDecision, choose_codec, recorded_codec_choice};

/// Most bytes sampled for a decision: 4 MiB, or an eighth of the memory
/// limit when that is less.
fn sample_budget(session: &Session) -> u64 {
    (session.memory_limit() / 8).min(4 << 20)
}

/// Sets `spec`'s compressor from `choice`. For `auto`, a resumed array
/// keeps the codec its first run chose; otherwise samples read with `read`
/// decide, and the decision is recorded in `spec`'s attributes and
/// returned.
///
/// # Errors
/// `read`'s errors and [`choose_codec`]'s.
pub(crate) fn resolve_codec<T: Element>(
    choice: CodecChoice,
    spec: &mut ArraySpec,
    path: &Path,
    resume: bool,
    session: &Session,
    read: impl Fn(&Region) -> Result<Block<T>>,
) -> Result<Option<CodecDecision>> {
    let goal = match choice {
        CodecChoice::Fixed(compression) => {
            spec.compression = compression;
            return Ok(None);
        }
        CodecChoice::Auto(goal) => goal,
    };
    if resume && let Some(compression) = recorded_codec_choice(path) {
        spec.compression = compression;
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let decision = choose_codec(spec, goal, dir, sample_budget(session), read)?;
    decision.apply_to(spec);
    Ok(Some(decision))
}
