//! [`Compare`]: element-wise comparison of two arrays (stores or files).

use std::sync::Mutex;

use crate::core::shape::join_dims;
use crate::core::{Element, Error, Result, max_nan};
use crate::dispatch_dtype;
use crate::exec::{Progress, Session, TaskSet, for_each_task};
use crate::io::{ArrayRef, IntoArrayRef, ReadableArray};
use crate::ops::{ChunkPlan, Planned};

/// What a [`Compare`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompareReport {
    /// Elements compared.
    pub elements: u64,
    /// Elements whose bits differ.
    pub elements_differing: u64,
    /// Largest absolute difference (NaN when some pair differs by NaN).
    pub max_abs_diff: f64,
}

impl CompareReport {
    /// True when every element is bitwise equal.
    pub fn is_identical(&self) -> bool {
        self.elements_differing == 0
    }
}

/// Compares two arrays of the same shape and element type element by
/// element, whatever their chunkings, one chunk of `a` at a time.
#[derive(Debug, Clone)]
pub struct Compare {
    a: ArrayRef,
    b: ArrayRef,
}

impl Compare {
    /// Compares `a` with `b`.
    pub fn new(a: &impl IntoArrayRef, b: &impl IntoArrayRef) -> Self {
        Self {
            a: a.array_ref(),
            b: b.array_ref(),
        }
    }

    /// Plans the comparison.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when shapes or element types differ.
    pub fn plan<'s>(&self, session: &'s Session) -> Result<Planned<'s, ChunkPlan, CompareReport>> {
        crate::distributed::one_process_only(session.ranks(), "compare")?;
        let (a, b) = (self.a.clone(), self.b.clone());
        if a.shape() != b.shape() || a.dtype() != b.dtype() {
            return Err(Error::invalid(format!(
                "cannot compare {} ({} {}) with {} ({} {})",
                a.path().display(),
                a.dtype(),
                join_dims(a.shape()),
                b.path().display(),
                b.dtype(),
                join_dims(b.shape())
            )));
        }
        let plan = ChunkPlan {
            operation: format!("compare {} with {}", a.path().display(), b.path().display()),
            tasks: a.chunk_grid().num_chunks(),
            bytes_read: 2 * a.nbytes(),
            bytes_written: 0,
            task_bytes: a.chunk_working_set() + a.chunk_nbytes() + b.chunk_working_set(),
            memory_limit: session.memory_limit(),
        };
        Ok(Planned::new(plan, move |_: &ChunkPlan, progress| {
            progress.start("compare", a.nbytes());
            let result =
                dispatch_dtype!(a.dtype(), T => compare_chunks::<T>(&*a, &*b, session, progress));
            progress.finish();
            result
        }))
    }
}

fn compare_chunks<T: Element>(
    a: &dyn ReadableArray,
    b: &dyn ReadableArray,
    session: &Session,
    progress: &dyn Progress,
) -> Result<CompareReport> {
    let grid = a.chunk_grid();
    let total = Mutex::new(CompareReport::default());
    // One chunk of `a`, the region of `b` it covers, and the chunks of `b` decoded to build it.
    let per_task = a.chunk_working_set() + a.chunk_nbytes() + b.chunk_working_set();
    for_each_task(
        session,
        TaskSet {
            count: grid.num_chunks() as usize,
            bytes_each: per_task,
            what: "comparing one chunk",
        },
        progress,
        |i| {
            let chunk = grid.chunk_coords(i as u64);
            let x = a.read_chunk::<T>(&chunk)?;
            let y = b.read_region::<T>(&grid.chunk_region(&chunk))?;
            let mut part = CompareReport {
                elements: x.len() as u64,
                ..Default::default()
            };
            for (p, q) in x.as_slice().iter().zip(y.as_slice()) {
                if bytemuck::bytes_of(p) != bytemuck::bytes_of(q) {
                    part.elements_differing += 1;
                    part.max_abs_diff = max_nan(part.max_abs_diff, (p.to_f64() - q.to_f64()).abs());
                }
            }
            let mut t = total.lock().unwrap_or_else(|p| p.into_inner());
            t.elements += part.elements;
            t.elements_differing += part.elements_differing;
            t.max_abs_diff = max_nan(t.max_abs_diff, part.max_abs_diff);
            session.metrics().bytes_read.add(2 * x.byte_len() as u64);
            Ok(x.byte_len() as u64)
        },
    )?;
    Ok(total.into_inner().unwrap_or_else(|p| p.into_inner()))
}
