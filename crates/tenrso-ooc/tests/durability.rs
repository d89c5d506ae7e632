//! Operations end their batched writes: what they return is committed, and
//! the arrays they hand back are synced per chunk again for whoever writes
//! through them next.

use tenrso_ooc::exec::{ExecOptions, Session};
use tenrso_ooc::ops::{Fill, Generate};
use tenrso_ooc::store::{ArraySpec, Durability, ZarrArray};
use tenrso_ooc::{Block, DType};

#[test]
fn an_operation_returns_its_array_committed_and_synced_per_chunk_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.zarr");
    let spec = ArraySpec::new(vec![64, 32], vec![8, 32], DType::F64);
    let session = Session::new(
        ExecOptions::default()
            .with_threads(2)
            .with_durability(Durability::Batch),
    );
    let report = Generate::new(&path, spec, Fill::Ones)
        .plan(&session)
        .unwrap()
        .run()
        .unwrap();
    // Every chunk is in place (no queued temporary) when the run returns.
    let fresh = ZarrArray::open(&path).unwrap();
    assert_eq!(fresh.stored_chunks().unwrap().len(), 8);
    assert_eq!(fresh.stale_temporaries().unwrap().len(), 0);
    // The array handed back writes synced per chunk: another reader sees
    // a later write at once, with nothing queued.
    let array = &report.array;
    assert_eq!(array.durability(), Durability::Chunk);
    let twos = Block::<f64>::from_vec(vec![8, 32], vec![2.0; 256]).unwrap();
    array.write_chunk(&[3, 0], &twos).unwrap();
    let again = ZarrArray::open(&path).unwrap();
    assert_eq!(again.read_chunk::<f64>(&[3, 0]).unwrap(), twos);
}
