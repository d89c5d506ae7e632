//! Operations on stored arrays: generators, verification, import and export.

mod generate;
mod random;
mod transfer;
mod verify;

pub use generate::{Fill, GenerateReport, Generator, generate};
pub use random::CounterRng;
pub use transfer::{ImportOptions, TransferReport, export, import};
pub use verify::{BadChunk, VerifyReport, verify};
