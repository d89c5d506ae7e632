//! Fuzzing, on stable Rust, of every public parser of untrusted text or
//! bytes: einsum subscripts, `map` expressions, sizes and shapes, `.npy`
//! headers and `zarr.json`. Inputs are generated and mutated by proptest;
//! the properties are that nothing panics (nor overflows the stack) and that
//! whatever parses is consistent, round-tripping where a printer exists.
//!
//! Each property runs a bounded number of cases here (the suite stays
//! fast); `PROPTEST_CASES=1000000 cargo test --release --test
//! hostile_input` runs the long mode (docs/testing.md).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use tenrso_ooc::io::{npy_header_bytes, read_npy_header};
use tenrso_ooc::ops::Expr;
use tenrso_ooc::plan::EinsumSpec;
use tenrso_ooc::store::{ArraySpec, Compression, ZarrArray};
use tenrso_ooc::{ByteSize, DType, Shape};

/// `cases` per property, or `PROPTEST_CASES` when set (the long mode).
fn cases(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text made of `tokens` and a few arbitrary characters.
fn token_soup(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(tokens).prop_map(str::to_string),
            1 => any::<char>().prop_map(|c| c.to_string()),
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

const EINSUM_TOKENS: &[&str] = &[
    "i", "j", "k", "a", "Z", ",", "->", "-", ">", "...", ".", " ", "\t", "ii", "ij", "jk",
];

const EXPR_TOKENS: &[&str] = &[
    "x", "y", "1", "2.5", "1e3", "e", "pi", "(", ")", "+", "-", "*", "/", "^", "**", ",", " ",
    "sqrt(", "clip(", "min(", "pow(", "log(", ".", "E", "nan",
];

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn einsum_subscripts(
        text in token_soup(EINSUM_TOKENS, 24),
        shapes in prop::collection::vec(prop::collection::vec(0u64..4, 0..5), 0..4),
    ) {
        let Ok(spec) = EinsumSpec::parse(&text) else { return Ok(()) };
        // The compact text parses back to the same subscripts.
        prop_assert_eq!(EinsumSpec::parse(spec.text()).unwrap(), spec.clone());
        let shapes: Vec<&[u64]> = shapes.iter().map(Vec::as_slice).collect();
        if let Ok(problem) = spec.bind(&shapes) {
            prop_assert_eq!(problem.operands.len(), shapes.len());
            for (axes, shape) in problem.operands.iter().zip(&shapes) {
                prop_assert_eq!(axes.len(), shape.len());
                for (label, &size) in axes.iter().zip(shape.iter()) {
                    match label {
                        Some(l) => prop_assert_eq!(problem.sizes[l], size),
                        None => prop_assert_eq!(size, 1),
                    }
                }
            }
            let out = problem.output_shape();
            prop_assert_eq!(out.len(), problem.output.len());
        }
    }

    #[test]
    fn map_expressions(text in token_soup(EXPR_TOKENS, 40)) {
        let Ok(expr) = Expr::parse(&text) else { return Ok(()) };
        prop_assert_eq!(Expr::parse(&expr.to_string()).unwrap(), expr.clone());
        let x = [0.0, -1.5, 3.0, f64::NAN];
        let mut out = [0.0; 4];
        expr.eval(&x, Some(&x), &mut out);
    }

    #[test]
    fn sizes_and_shapes(text in "[0-9a-zA-Z_.,x× \\-]{0,24}", n in any::<u64>()) {
        let _ = text.parse::<ByteSize>();
        if let Ok(shape) = text.parse::<Shape>() {
            prop_assert_eq!(shape.to_string().parse::<Shape>().unwrap(), shape);
        }
        prop_assert_eq!(n.to_string().parse::<ByteSize>().unwrap(), ByteSize(n));
        // The two-decimal display reads back within its rounding.
        let shown = ByteSize(n).to_string().parse::<ByteSize>().unwrap().0 as f64;
        prop_assert!((shown - n as f64).abs() <= n as f64 * 0.005 + 0.5, "{n}: {shown}");
    }
}

/// Parses `text` as `T`; when it parses, its printed form parses back to
/// the same value.
fn round_trips<T>(text: &str) -> Result<(), TestCaseError>
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = text.parse::<T>() {
        let shown = value.to_string();
        let back = shown.parse::<T>();
        prop_assert!(
            back.as_ref().is_ok_and(|b| *b == value),
            "{text:?} -> {shown:?} -> {back:?}",
            back = back.ok()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Every option value the CLI and Python hand to the library.
    #[test]
    fn option_values(
        text in prop_oneof![
            "[a-z0-9:._\\-]{0,16}",
            "(zstd|lz4|none|blosc|lowrank|normal|uniform|range|ones|zeros|sum|mean|norm|min|max|lru|lfu|greedy|optimal|auto|f32|f64|float32|/tmp|snappy)(:[0-9a-zA-Z.\\-]{0,12}){0,3}",
        ],
    ) {
        round_trips::<tenrso_ooc::ops::ReduceOp>(&text)?;
        round_trips::<tenrso_ooc::ops::Fill>(&text)?;
        round_trips::<tenrso_ooc::plan::PathStrategy>(&text)?;
        round_trips::<Compression>(&text)?;
        round_trips::<DType>(&text)?;
        round_trips::<tenrso_ooc::memory::SpillCodec>(&text)?;
        round_trips::<tenrso_ooc::memory::PolicyKind>(&text)?;
        let _ = text.parse::<tenrso_ooc::io::ColumnarCompression>();
        let _ = text.parse::<tenrso_ooc::memory::SpillDirSpec>();
    }
}

/// A valid `.npy` file of zeros.
fn npy_file(dtype: DType, shape: &[u64]) -> Vec<u8> {
    let mut bytes = npy_header_bytes(dtype, shape);
    let n: u64 = shape.iter().product();
    bytes.resize(bytes.len() + (n as usize) * dtype.size(), 0);
    bytes
}

/// An edit of a byte string: overwrite, insert, delete, or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
            2 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
            2 => any::<usize>().prop_map(Edit::Delete),
            1 => any::<usize>().prop_map(Edit::Truncate),
        ],
        1..max,
    )
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Set(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            Edit::Truncate(at) => bytes.truncate(at % len),
            _ => {}
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F64)]
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn npy_headers_round_trip(dtype in dtype(), shape in prop::collection::vec(0u64..12, 0..5)) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.npy", &npy_file(dtype, &shape));
        let layout = read_npy_header(&path).unwrap();
        prop_assert_eq!(layout.shape, shape);
        prop_assert_eq!(layout.dtype, dtype);
        prop_assert!(!layout.fortran_order && !layout.big_endian);
    }

    #[test]
    fn npy_headers_mutated(
        dtype in dtype(),
        shape in prop::collection::vec(0u64..6, 0..4),
        edits in edits(6),
        in_header in any::<bool>(),
    ) {
        let mut bytes = npy_file(dtype, &shape);
        // Mostly edit the header (where parsing happens), sometimes anywhere.
        let header_len = npy_header_bytes(dtype, &shape).len();
        if in_header {
            let mut header = bytes[..header_len].to_vec();
            apply(&mut header, &edits);
            bytes.splice(..header_len, header);
        } else {
            apply(&mut bytes, &edits);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.npy", &bytes);
        if let Ok(layout) = read_npy_header(&path) {
            // Whatever parses describes the file exactly.
            let data = layout.data_bytes().unwrap();
            prop_assert_eq!(layout.data_offset + data, bytes.len() as u64);
        }
    }
}

/// A valid array document, from a random layout.
fn zarr_document() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(1u64..20, 1..4),
        dtype(),
        0usize..4,
        any::<bool>(),
    )
        .prop_map(|(shape, dtype, codec, sharded)| {
            let chunks: Vec<u64> = shape.iter().map(|d| d.div_ceil(2)).collect();
            let compression = [
                Compression::None,
                Compression::Zstd { level: 1 },
                Compression::Lz4,
                Compression::None,
            ][codec];
            let mut spec =
                ArraySpec::new(shape, chunks.clone(), dtype).with_compression(compression);
            if sharded {
                spec = spec.with_shards(chunks.iter().map(|c| c * 2).collect());
            }
            // The document the library writes for it.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.zarr");
            ZarrArray::create(&path, &spec).unwrap();
            serde_json::from_slice(&std::fs::read(path.join("zarr.json")).unwrap()).unwrap()
        })
}

/// A JSON value of the kinds metadata holds, including hostile ones.
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_0-9]{0,8}".prop_map(Value::from),
        prop::collection::vec(0u64..5, 0..70).prop_map(|v| json!(v)),
        Just(json!([1_000_000_000_000u64, 1_000_000_000_000u64])),
        Just(json!({"name": "crc32c"})),
        Just(json!([{"name": "crc32c"}, {"name": "bytes"}])),
    ]
}

/// Every path to a value in `doc` (object keys and list indices).
fn paths(doc: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(json!(k));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(list) => {
            for (i, v) in list.iter().enumerate() {
                prefix.push(json!(i));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn slot<'a>(doc: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(doc, |v, step| match step {
        Value::String(k) => &mut v[k.as_str()],
        Value::Number(i) => &mut v[i.as_u64().unwrap() as usize],
        _ => unreachable!("paths are keys and indices"),
    })
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn zarr_metadata_mutated(
        doc in zarr_document(),
        structural in prop::collection::vec((0u8..7, any::<prop::sample::Index>()), 0..3),
        picks in prop::collection::vec((any::<prop::sample::Index>(), json_value()), 0..3),
        text_edits in prop::option::of(edits(4)),
    ) {
        let mut doc = doc;
        // Edits of the structure the spec constrains: codec chains (the
        // top one or sharding's inner ones), dimension names.
        for (kind, at) in structural {
            let chain = if doc["codecs"][0]["name"] == "sharding_indexed" && at.index(2) == 1 {
                &mut doc["codecs"][0]["configuration"]["codecs"]
            } else {
                &mut doc["codecs"]
            };
            let Some(list) = chain.as_array_mut() else { continue };
            let (n, slots) = (list.len().max(1), list.len() + 1);
            match kind {
                0 => list.reverse(),
                1 if !list.is_empty() => {
                    let c = list[at.index(n)].clone();
                    list.insert(at.index(slots), c);
                }
                2 if !list.is_empty() => {
                    list.remove(at.index(n));
                }
                3 => list.insert(at.index(slots), json!({"name": "transpose", "configuration": {"order": [0]}})),
                4 => list.insert(at.index(slots), json!({"name": "vlen-utf8"})),
                5 if !list.is_empty() => list.swap(at.index(n), 0),
                _ => {
                    let names: Vec<Value> = (0..at.index(5)).map(|k| json!(format!("d{k}"))).collect();
                    doc["dimension_names"] = json!(names);
                }
            }
        }
        for (pick, value) in picks {
            let mut all = Vec::new();
            paths(&doc, &mut Vec::new(), &mut all);
            let path = pick.get(&all).clone();
            *slot(&mut doc, &path) = value;
        }
        let mut text = serde_json::to_vec_pretty(&doc).unwrap();
        if let Some(edits) = text_edits {
            apply(&mut text, &edits);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("x.zarr");
        std::fs::create_dir(&store).unwrap();
        write(&store, "zarr.json", &text);
        if let Ok(array) = ZarrArray::open(&store) {
            // What opens is a consistent array; reading an absent chunk gives
            // the fill value without error or panic.
            let grid = array.chunk_grid();
            prop_assert_eq!(grid.chunk_shape().len(), array.shape().len());
            prop_assert!(grid.chunk_shape().iter().all(|&c| c > 0));
            if grid.num_chunks() > 0 && grid.chunk_elements() <= 1 << 16 {
                let first = vec![0; array.shape().len()];
                let _ = array.read_chunk::<f64>(&first);
            }
        }
        // The document was only read.
        prop_assert_eq!(std::fs::read(store.join("zarr.json")).unwrap(), text);
    }
}

/// A valid store declaring one chunk of 4 TB: reading it is refused with
/// the numbers, never an allocation that aborts.
#[test]
fn chunks_larger_than_the_machine_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("c.zarr");
    std::fs::create_dir(&store).unwrap();
    let doc = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": [1_000_000, 1_000_000],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1_000_000, 1_000_000]}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    });
    write(&store, "zarr.json", doc.to_string().as_bytes());
    let array = ZarrArray::open(&store).unwrap();
    for err in [
        array.read_chunk::<f32>(&[0, 0]).unwrap_err(),
        array
            .read_region::<f32>(&tenrso_ooc::Region::new(vec![0, 0], vec![1, 1]))
            .unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            matches!(err, tenrso_ooc::Error::MemoryLimit { .. })
                && text.contains("decoding chunk [0, 0]")
                && text.contains("c.zarr"),
            "{text}"
        );
    }
}

/// What `zarr.json` says about the grid is checked before anything follows
/// from it: ranks that agree, chunk extents of at least 1, at most 64 axes,
/// and a document of at most 16 MiB, which is not read when larger.
#[test]
fn grids_and_oversized_documents_are_refused_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let open_with = |name: &str, shape: Value, chunks: Value, padding: usize| {
        let store = dir.path().join(name);
        std::fs::create_dir(&store).unwrap();
        let doc = json!({
            "zarr_format": 3,
            "node_type": "array",
            "shape": shape,
            "data_type": "float64",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "chunk_key_encoding": {"name": "default"},
            "fill_value": 0.0,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        });
        let text = format!("{doc}{}", " ".repeat(padding));
        write(&store, "zarr.json", text.as_bytes());
        ZarrArray::open(&store).unwrap_err().to_string()
    };
    let e = open_with("rank.zarr", json!([8, 8]), json!([2]), 0);
    assert!(
        e.contains("has 1 axes but the array shape 8x8 has 2"),
        "{e}"
    );
    let e = open_with("zero.zarr", json!([8, 8]), json!([2, 0]), 0);
    assert!(e.contains("zero extent"), "{e}");
    let e = open_with("axes.zarr", json!(vec![1; 65]), json!(vec![1; 65]), 0);
    assert!(e.contains("65 axes: at most 64"), "{e}");
    let e = open_with("big.zarr", json!([8]), json!([2]), 16 << 20);
    assert!(e.contains("more than the 16777216 accepted"), "{e}");
}
