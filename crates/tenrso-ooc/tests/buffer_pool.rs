//! The buffer pool as the global allocator (as in the `tenrso-ooc` binary
//! and the Python module): chunk buffers are recycled across chunks and
//! passes, so a second map over a store of 64 MiB chunks page-faults far
//! less than once per page, and kept buffers go back under memory pressure
//! and when the last memory pool ends.

use tenrso_ooc::DType;
use tenrso_ooc::memory::{RecyclingAllocator, buffer_pool_stats, tune_allocator};
use tenrso_ooc::ops::{Expr, Fill, Map};
use tenrso_ooc::store::ArraySpec;
use tenrso_ooc::store::ZarrArray;

mod common;
use common::{generated, session};

#[global_allocator]
static ALLOCATOR: RecyclingAllocator = RecyclingAllocator::system();

/// Minor page faults of this process so far.
fn minor_faults() -> u64 {
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    usage.ru_minflt as u64
}

/// One test function: the pool's counters and the fault counts are
/// process-wide, so the steps run in order.
#[test]
fn chunk_buffers_are_recycled_and_released_under_pressure() {
    if std::env::var_os(tenrso_ooc::memory::SYSTEM_MALLOC_VAR).is_some() {
        return; // recycling is turned off on purpose
    }
    tune_allocator();
    let dir = tempfile::tempdir().unwrap();
    // 256 MiB of f64 in four chunks of 64 MiB (plain: bytes + crc32c).
    let spec = ArraySpec::new(vec![4096, 8192], vec![1024, 8192], DType::F64);
    let x = generated(dir.path(), "x", spec, Fill::Uniform, 7);
    let s = session(2, 512 << 20);
    // A map writes a 64 MiB output block per chunk (its input is streamed
    // in small slabs); sums need no chunk buffer at all.
    let mut passes = 0;
    let mut pass = || {
        passes += 1;
        let out = dir.path().join(format!("y{passes}"));
        let (before, pool_before) = (minor_faults(), buffer_pool_stats());
        Map::new(Expr::parse("x*2+1").unwrap(), &x, &out)
            .plan(&s)
            .unwrap()
            .run()
            .unwrap();
        let faults = minor_faults() - before;
        let pool = buffer_pool_stats();
        let fresh = pool.fresh - pool_before.fresh;
        let reused = pool.reused - pool_before.reused;
        (out, faults, fresh, reused)
    };
    let (first, ..) = pass();
    let (second, faults, fresh, reused) = pass();
    let last_chunk = |path| {
        ZarrArray::open(path)
            .unwrap()
            .read_chunk::<f64>(&[3, 0])
            .unwrap()
    };
    assert_eq!(last_chunk(&first), last_chunk(&second));
    // Every chunk buffer of the second run is a kept one: none is fresh.
    assert!(reused >= 4, "{reused} chunk buffers reused in pass 2");
    assert_eq!(fresh, 0, "fresh chunk buffers in pass 2");
    // Without recycling, each of the 65536 output pages faults. Heap pages
    // of smaller buffers that `malloc-trim` handed back between the passes
    // fault again (timing-dependent: 1 to 4385 measured), so the bound
    // is a quarter of the data, not zero.
    let pages = (256u64 << 20) / 4096;
    assert!(
        faults < pages / 4,
        "second pass: {faults} minor faults for {pages} pages of data"
    );
    assert!(buffer_pool_stats().kept_bytes > 0);

    // Pressure: an allocation that would not fit beside the kept buffers
    // under the 512 MiB limit takes them back first.
    let big = vec![1u8; 448 << 20];
    assert!(buffer_pool_stats().kept_bytes <= 64 << 20);
    drop(big);
    // When the last pool ends, every kept buffer goes back.
    drop(s);
    assert_eq!(buffer_pool_stats().kept_bytes, 0);
}
