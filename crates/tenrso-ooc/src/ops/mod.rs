//! Operations on stored arrays: generators, verification, comparison, import
//! and export.

mod compare;
mod generate;
mod random;
mod transfer;
mod verify;

pub use compare::{CompareReport, compare};
pub use generate::{Fill, GenerateReport, Generator, generate};
pub use random::CounterRng;
pub use transfer::{ImportOptions, TransferReport, export, import, is_npy};
pub use verify::{BadChunk, VerifyReport, verify};
