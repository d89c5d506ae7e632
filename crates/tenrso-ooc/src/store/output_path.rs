//! Outputs never land on inputs: an output path is resolved as the file
//! system will (symbolic links, `.` and `..`) and refused, before any work,
//! when it is an input array or file or lies inside an input store.

use std::path::{Component, Path, PathBuf};

use crate::core::{Error, Result};

/// Refuses `output` when it is, or resolves to, one of `inputs` or a path
/// inside one of them (a file in an input store's directory).
///
/// ```
/// use tenrso_ooc::store::check_output_not_input;
/// let dir = tempfile::tempdir()?;
/// let input = dir.path().join("x.npy");
/// std::fs::write(&input, b"")?;
/// let sneaky = dir.path().join("sub/../x.npy");
/// assert!(check_output_not_input(&sneaky, &[&input]).is_err());
/// assert!(check_output_not_input(&dir.path().join("y.npy"), &[&input]).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] naming the output, what it resolves to and
/// the input.
pub fn check_output_not_input(output: &Path, inputs: &[&Path]) -> Result<()> {
    let resolved = resolve(output);
    for input in inputs {
        let input_resolved = resolve(input);
        if resolved.starts_with(&input_resolved) {
            let relation = if resolved == input_resolved {
                "is"
            } else {
                "lies inside"
            };
            return Err(Error::invalid(format!(
                "the output {} resolves to {}, which {relation} the input {}: inputs are never written; choose another output path",
                output.display(),
                resolved.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// `path` as the file system resolves it: the longest existing prefix
/// canonicalised (symbolic links followed), the rest appended with `.`
/// dropped and `..` applied.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    // Walk down from the root while the prefix exists, canonicalising it.
    let mut resolved = PathBuf::new();
    let mut components = absolute.components().peekable();
    while let Some(component) = components.next() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                let next = resolved.join(name);
                match std::fs::canonicalize(&next) {
                    Ok(canonical) => resolved = canonical,
                    // Not there (or a dangling link): the rest is lexical.
                    Err(_) => {
                        resolved = next;
                        for rest in components.by_ref() {
                            match rest {
                                Component::ParentDir => {
                                    resolved.pop();
                                }
                                Component::Normal(name) => resolved.push(name),
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_parents_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("a.zarr");
        std::fs::create_dir(&store).unwrap();
        let file = dir.path().join("a.npy");
        std::fs::write(&file, b"").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link.npy")).unwrap();
        std::os::unix::fs::symlink(&store, dir.path().join("link.zarr")).unwrap();
        let inputs = [store.as_path(), file.as_path()];
        for bad in [
            "a.npy",
            "link.npy",
            "link.zarr",
            "a.zarr/x.npy",
            "link.zarr/c/0",
            "a.zarr/../a.npy",
            "missing/../a.npy",
            "./a.zarr/.",
        ] {
            let err = check_output_not_input(&dir.path().join(bad), &inputs).unwrap_err();
            assert!(
                err.to_string().contains("inputs are never written"),
                "{bad}"
            );
        }
        for good in ["b.npy", "a.zarr.npy", "new/a.npy", "a.zarr/../b.npy"] {
            check_output_not_input(&dir.path().join(good), &inputs).unwrap();
        }
    }
}
