//! Checkpoints of iterative decompositions: after each iteration the model
//! and the history go into `OUT/checkpoint/`, atomically, so a killed run
//! resumes from its last completed iteration.
//!
//! Layout: `checkpoint/iter-NNNNNN/` holds the matrices as `.npy` files
//! (`factor_0.npy` …, `weights.npy`, `core.npy`); `checkpoint/state.json`
//! names the directory of the last complete iteration and is replaced (by
//! rename) only after that directory is fully written and synced. Older
//! iteration directories are removed afterwards.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::core::{Error, Result};
use crate::decomp::matrix::write_npy_values;
use crate::decomp::{Iteration, Matrix};
use crate::io::read_npy_values;
use crate::store::{sync_dir, write_atomically};

/// The state of a decomposition after a completed iteration.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    /// Iterations completed.
    pub iteration: usize,
    /// Everything else to restore (options, history, norm), as JSON.
    pub state: Value,
    /// Factor matrices.
    pub factors: Vec<Matrix>,
    /// Named extra arrays (`weights`, `core`): shape and values.
    pub arrays: Vec<(String, Vec<u64>, Vec<f64>)>,
}

fn root(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Writes `ckpt` under `out/checkpoint/` atomically (see the module docs).
///
/// # Errors
/// I/O errors, naming the file.
pub(crate) fn save(out: &Path, ckpt: &Checkpoint) -> Result<()> {
    let root = root(out);
    let name = format!("iter-{:06}", ckpt.iteration);
    let dir = root.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for (k, f) in ckpt.factors.iter().enumerate() {
        f.write_npy(&dir.join(format!("factor_{k}.npy")))?;
    }
    for (array, shape, values) in &ckpt.arrays {
        write_npy_values(&dir.join(format!("{array}.npy")), shape, values)?;
    }
    // Each file is synced into `dir`; `dir` itself must be in `root` before
    // `state.json` names it.
    sync_dir(&root).map_err(|e| Error::io(&root, e))?;
    let state = json!({
        "iteration": ckpt.iteration,
        "directory": name,
        "factors": ckpt.factors.len(),
        "arrays": ckpt.arrays.iter().map(|(a, _, _)| a.clone()).collect::<Vec<_>>(),
        "state": ckpt.state,
    });
    let text = serde_json::to_string_pretty(&state).map_err(|e| Error::invalid(e.to_string()))?;
    write_atomically(&root.join("state.json"), text.as_bytes())?;
    // Older iterations are no longer needed.
    for entry in std::fs::read_dir(&root)
        .map_err(|e| Error::io(&root, e))?
        .flatten()
    {
        let file_name = entry.file_name();
        let other = file_name.to_string_lossy();
        if other.starts_with("iter-") && other != name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Reads the last complete checkpoint under `out`, if any.
///
/// # Errors
/// [`Error::InvalidFile`] for a damaged checkpoint.
pub(crate) fn load(out: &Path) -> Result<Option<Checkpoint>> {
    let path = root(out).join("state.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let bad = |reason: &str| Error::InvalidFile {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let iteration = v["iteration"].as_u64().ok_or_else(|| bad("no iteration"))? as usize;
    let name = v["directory"]
        .as_str()
        .filter(|n| !n.is_empty() && !n.contains(['/', '\\', '\0']) && *n != "." && *n != "..")
        .ok_or_else(|| bad("no directory name (a plain name within the checkpoint)"))?;
    let dir = root(out).join(name);
    let n = v["factors"]
        .as_u64()
        .ok_or_else(|| bad("no factor count"))? as usize;
    let factors = (0..n)
        .map(|k| Matrix::read_npy(&dir.join(format!("factor_{k}.npy"))))
        .collect::<Result<Vec<_>>>()?;
    let mut arrays = Vec::new();
    for a in v["arrays"].as_array().ok_or_else(|| bad("no array list"))? {
        let a = a
            .as_str()
            .filter(|a| !a.is_empty() && !a.contains(['/', '\\', '\0']))
            .ok_or_else(|| bad("bad array name"))?;
        let (shape, values) = read_npy_values(&dir.join(format!("{a}.npy")))?;
        arrays.push((a.to_string(), shape, values));
    }
    Ok(Some(Checkpoint {
        iteration,
        state: v["state"].clone(),
        factors,
        arrays,
    }))
}

/// What a resumed run restores from a checkpoint's state: the history, the
/// tensor's norm and whether the run had converged. Refuses a checkpoint made
/// with other `options` (anything that changes the arithmetic) or a damaged
/// one.
pub(crate) fn restore(ckpt: &Checkpoint, options: &Value) -> Result<(Vec<Iteration>, f64, bool)> {
    if &ckpt.state["options"] != options {
        return Err(Error::invalid(format!(
            "the checkpoint was made with other options ({}); these are {options}: rerun with the same options and input, or start afresh instead of resuming",
            ckpt.state["options"]
        )));
    }
    let damaged = |what: &str| Error::invalid(format!("the checkpoint is damaged: {what}"));
    let history = ckpt.state["iterations"]
        .as_array()
        .ok_or_else(|| damaged("no iteration history"))?;
    let iterations: Vec<Iteration> = history.iter().map(Iteration::from_json).collect();
    if iterations.len() != ckpt.iteration {
        return Err(damaged("the history does not match the iteration count"));
    }
    let norm = ckpt.state["norm"]
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| damaged("no norm"))?;
    Ok((
        iterations,
        norm,
        ckpt.state["converged"].as_bool().unwrap_or(false),
    ))
}

/// The checkpoint a run starts from: the last one in `dir` when resuming;
/// none when starting afresh, and the `writer` of the checkpoints (the one
/// process, or rank 0 of several) removes any old one.
///
/// # Errors
/// Resuming without a directory; a damaged checkpoint.
pub(crate) fn start(dir: Option<&Path>, resume: bool, writer: bool) -> Result<Option<Checkpoint>> {
    match (dir, resume) {
        (Some(dir), true) => load(dir),
        (None, true) => Err(Error::invalid("resuming needs a checkpoint directory")),
        (Some(dir), false) => {
            if writer {
                clear(dir);
            }
            Ok(None)
        }
        (None, false) => Ok(None),
    }
}

/// Removes `out/checkpoint/` (a finished or restarted run).
pub(crate) fn clear(out: &Path) {
    let _ = std::fs::remove_dir_all(root(out));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_keeps_only_the_last_iteration() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        for it in 1..=2 {
            let ckpt = Checkpoint {
                iteration: it,
                state: json!({"fits": [0.5]}),
                factors: vec![Matrix::from_vec(2, 1, vec![1.0, it as f64]).unwrap()],
                arrays: vec![("weights".into(), vec![1], vec![3.0])],
            };
            save(dir.path(), &ckpt).unwrap();
        }
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.iteration, 2);
        assert_eq!(back.factors[0].get(1, 0), 2.0);
        assert_eq!(back.arrays[0].2, vec![3.0]);
        assert!(!dir.path().join("checkpoint/iter-000001").exists());
        clear(dir.path());
        assert!(load(dir.path()).unwrap().is_none());
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz_config::fuzz_config(300))]

        /// A damaged `state.json` (any key given any value, or its text cut
        /// or edited) loads as an error, never a panic, and restores only
        /// when what it holds is consistent.
        #[test]
        fn damaged_state_is_refused(
            key in proptest::sample::select(vec!["iteration", "directory", "factors", "arrays", "state"]),
            value in proptest::prop_oneof![
                proptest::strategy::Just(Value::Null),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "[a-z./_0-9]{0,12}".prop_map(Value::from),
                proptest::strategy::Just(json!(["../weights", "weights"])),
                proptest::strategy::Just(json!({"options": null, "iterations": [1], "norm": "NaN"})),
            ],
            cut in proptest::option::of(0usize..400),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let ckpt = Checkpoint {
                iteration: 1,
                state: json!({"options": {"rank": 1}, "iterations": [{"iteration": 1, "fit": 0.5}], "norm": 2.0}),
                factors: vec![Matrix::from_vec(2, 1, vec![1.0, 2.0]).unwrap()],
                arrays: vec![("weights".into(), vec![1], vec![3.0])],
            };
            save(dir.path(), &ckpt).unwrap();
            let path = root(dir.path()).join("state.json");
            let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            doc[key] = value;
            let mut text = doc.to_string().into_bytes();
            if let Some(cut) = cut {
                text.truncate(cut);
            }
            std::fs::write(&path, &text).unwrap();
            if let Ok(Some(back)) = load(dir.path()) {
                let _ = restore(&back, &json!({"rank": 1}));
            }
        }
    }
}
