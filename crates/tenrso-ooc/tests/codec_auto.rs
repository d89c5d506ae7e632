//! `--codec auto` through the library: the choice is measured, recorded in
//! the array, kept on resume, and the data round-trips bit for bit.

use tenrso_ooc::exec::Session;
use tenrso_ooc::io::DenseFile;
use tenrso_ooc::ops::{Fill, Generate, Import, ImportOptions};
use tenrso_ooc::store::{ArraySpec, CodecChoice, CodecDecision, CodecGoal, Compression, ZarrArray};
use tenrso_ooc::{Block, DType, Region};

#[test]
fn generate_records_the_choice_and_resume_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.zarr");
    let spec = ArraySpec::new(vec![256, 256], vec![64, 256], DType::F64);
    let session = Session::default();
    let report = Generate::new(&path, spec.clone(), Fill::Range)
        .with_codec(CodecChoice::Auto(CodecGoal::Size))
        .plan(&session)
        .unwrap()
        .run()
        .unwrap();
    let decision = report.codec_choice.expect("auto decides");
    assert_eq!(decision.candidates.len(), 5);
    // Consecutive integers compress well with byte shuffle or zstd.
    assert_ne!(decision.chosen, Compression::None, "{}", decision.summary());
    let best_ratio = decision
        .candidates
        .iter()
        .map(|m| m.ratio())
        .fold(0.0, f64::max);
    assert_eq!(decision.chosen_measurement().unwrap().ratio(), best_ratio);
    let array = ZarrArray::open(&path).unwrap();
    let recorded = &array.attributes()[CodecDecision::ATTRIBUTE];
    assert_eq!(recorded["chosen"], decision.chosen.to_string());
    let values = array
        .read_region::<f64>(&Region::full(&[256, 256]))
        .unwrap();
    let want: Vec<f64> = (0..256 * 256).map(|i| i as f64).collect();
    assert_eq!(values.as_slice(), &want[..]);
    // A resumed run reuses the recorded codec without measuring again.
    let again = Generate::new(&path, spec, Fill::Range)
        .with_codec(CodecChoice::Auto(CodecGoal::Speed))
        .with_resume(true)
        .plan(&session)
        .unwrap()
        .run()
        .unwrap();
    assert!(again.codec_choice.is_none());
    assert_eq!(again.chunks_written, 0);
    assert_eq!(
        ZarrArray::open(&path).unwrap().codec_description(),
        array.codec_description()
    );
}

#[test]
fn import_auto_measures_the_source_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("z.npy");
    let npy = DenseFile::create_npy(&src, DType::F32, &[300, 200]).unwrap();
    let mut v = vec![0f32; 300 * 200];
    for i in (0..v.len()).step_by(997) {
        v[i] = i as f32 * 0.25;
    }
    npy.write_region(
        &Region::full(&[300, 200]),
        &Block::from_vec(vec![300, 200], v.clone()).unwrap(),
    )
    .unwrap();
    drop(npy);
    let session = Session::default();
    for goal in [CodecGoal::Speed, CodecGoal::Size] {
        let dst = dir.path().join(format!("z-{goal:?}.zarr"));
        let options = ImportOptions::default()
            .with_chunk_shape([64, 200])
            .with_codec(CodecChoice::Auto(goal));
        let report = Import::new(&src, &dst)
            .with_options(options)
            .plan(&session)
            .unwrap()
            .run()
            .unwrap();
        let decision = report.codec_choice.unwrap();
        let chosen = decision.chosen_measurement().unwrap();
        match goal {
            // The winner by the model, whatever this disk's speed.
            CodecGoal::Speed => assert!(
                decision
                    .candidates
                    .iter()
                    .all(|m| decision.effective_rate(m) <= decision.effective_rate(chosen))
            ),
            // Mostly zeros: hundreds of times smaller compressed.
            CodecGoal::Size => assert!(chosen.ratio() > 50.0, "{}", decision.summary()),
        }
        let back = ZarrArray::open(&dst)
            .unwrap()
            .read_region::<f32>(&Region::full(&[300, 200]))
            .unwrap();
        assert_eq!(back.as_slice(), &v[..]);
    }
    // Fixed codecs are taken as they are.
    let fixed = ImportOptions::default().with_codec(CodecChoice::Fixed(Compression::Lz4));
    assert_eq!(
        (fixed.compression, fixed.auto_codec),
        (Compression::Lz4, None)
    );
}

#[test]
fn map_measures_the_expression_of_its_inputs_and_other_outputs_refuse_auto() {
    use tenrso_ooc::ops::{Expr, Map, OutputOptions, Reduce, ReduceOp};
    let dir = tempfile::tempdir().unwrap();
    let session = Session::default();
    let spec = ArraySpec::new(vec![256, 128], vec![64, 128], DType::F64);
    let x = Generate::new(dir.path().join("x.zarr"), spec, Fill::Normal)
        .plan(&session)
        .unwrap()
        .run()
        .unwrap()
        .array;
    // x barely compresses (random normals); x*0 does, and map measures the
    // expression of samples of x, not x.
    let out = dir.path().join("f.zarr");
    let auto = OutputOptions::default().with_codec(CodecChoice::Auto(CodecGoal::Size));
    Map::new(Expr::parse("x*0").unwrap(), &x, &out)
        .with_output_options(auto.clone())
        .plan(&session)
        .unwrap()
        .run()
        .unwrap();
    let mapped = ZarrArray::open(&out).unwrap();
    let attributes = mapped.attributes();
    let choice = &attributes[CodecDecision::ATTRIBUTE];
    assert_ne!(choice["chosen"], "none", "{choice}");
    let values = mapped
        .read_region::<f64>(&Region::full(&[256, 128]))
        .unwrap();
    assert!(values.as_slice().iter().all(|v| *v == 0.0));
    let Err(err) = Reduce::new(ReduceOp::Sum, &x)
        .with_axes(vec![0])
        .with_out(dir.path().join("s.zarr"))
        .with_output_options(auto)
        .plan(&session)
    else {
        panic!("reduce refuses auto");
    };
    assert!(err.to_string().contains("name a codec"), "{err}");
}
