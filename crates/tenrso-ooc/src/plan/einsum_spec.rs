//! [`EinsumSpec`]: NumPy's einsum subscripts, parsed, then bound to operand
//! shapes as an [`EinsumProblem`].

use std::collections::BTreeMap;
use std::fmt;

use crate::core::error::excerpt;
use crate::core::{Error, Result};

/// An index of an einsum: a letter, or one of the dimensions an ellipsis
/// stands for (shown as `…0`, `…1`, … from the left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// A dimension the ellipsis covers, numbered from the left of the
    /// broadcast dimensions.
    Broadcast(u8),
    /// A letter of the subscripts.
    Letter(char),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Letter(c) => write!(f, "{c}"),
            Label::Broadcast(k) => write!(f, "…{k}"),
        }
    }
}

/// Writes labels as subscripts, e.g. `ij` or `…0k`.
pub fn labels_text(labels: &[Label]) -> String {
    labels.iter().map(Label::to_string).collect()
}

/// One operand's (or the output's) subscripts: letters with an optional
/// ellipsis between them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    letters: Vec<char>,
    /// How many letters come before the ellipsis, if there is one.
    ellipsis: Option<usize>,
}

impl Term {
    fn parse(text: &str, what: &str) -> Result<Self> {
        let shown = excerpt(text);
        let mut letters = Vec::new();
        let mut ellipsis = None;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("...") {
                if ellipsis.replace(letters.len()).is_some() {
                    return Err(Error::invalid(format!(
                        "einsum: {what} `{shown}` has more than one ellipsis"
                    )));
                }
                rest = after;
                continue;
            }
            if !c.is_ascii_alphabetic() {
                return Err(Error::invalid(format!(
                    "einsum: {what} `{shown}` has `{}`, which is not an index (a-z, A-Z) or `...`",
                    c.escape_debug()
                )));
            }
            letters.push(c);
            rest = &rest[c.len_utf8()..];
        }
        Ok(Self { letters, ellipsis })
    }
}

/// Einsum subscripts in NumPy's syntax: explicit (`ij,jk->ik`) or implicit
/// (`ij,jk`, output = the indices that appear once, sorted) output, `...`
/// for broadcast dimensions, repeated indices within an operand (diagonals,
/// traces), any number of operands, and scalar outputs (`ij,ij->`).
///
/// ```
/// use tenrso_ooc::plan::EinsumSpec;
/// let spec = EinsumSpec::parse("ij,jk->ik")?;
/// assert_eq!(spec.num_operands(), 2);
/// let problem = spec.bind(&[&[3, 4], &[4, 5]])?;
/// assert_eq!(problem.output_shape(), vec![3, 5]);
/// assert!(EinsumSpec::parse("ij,jk->ik")?.bind(&[&[3, 4], &[5, 6]]).is_err());
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EinsumSpec {
    text: String,
    inputs: Vec<Term>,
    /// `None`: implicit output.
    output: Option<Term>,
}

impl EinsumSpec {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the term and character at fault.
    pub fn parse(text: &str) -> Result<Self> {
        let shown = excerpt(text);
        // NumPy skips ASCII spaces only; any other whitespace is an error.
        if let Some(c) = text.chars().find(|c| c.is_whitespace() && *c != ' ') {
            return Err(Error::invalid(format!(
                "einsum: `{}` has the whitespace character {c:?}; only ASCII spaces may separate subscripts",
                shown.escape_debug()
            )));
        }
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        let (lhs, rhs) = match compact.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (compact.as_str(), None),
        };
        if rhs.is_some_and(|r| r.contains("->")) {
            return Err(Error::invalid(format!(
                "einsum: `{shown}` has more than one `->`"
            )));
        }
        let inputs = lhs
            .split(',')
            .enumerate()
            .map(|(k, t)| Term::parse(t, &format!("operand {k}")))
            .collect::<Result<Vec<_>>>()?;
        let output = rhs.map(|r| Term::parse(r, "output")).transpose()?;
        if let Some(out) = &output {
            let mut seen = Vec::new();
            for &c in &out.letters {
                if seen.contains(&c) {
                    return Err(Error::invalid(format!(
                        "einsum: output index `{c}` appears more than once in `{shown}`"
                    )));
                }
                if !inputs.iter().any(|t| t.letters.contains(&c)) {
                    return Err(Error::invalid(format!(
                        "einsum: output index `{c}` does not appear in any operand of `{shown}`"
                    )));
                }
                seen.push(c);
            }
        }
        Ok(Self {
            text: compact,
            inputs,
            output,
        })
    }

    /// The subscripts as given (without whitespace).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of operands the subscripts name.
    pub fn num_operands(&self) -> usize {
        self.inputs.len()
    }

    /// Binds the subscripts to operand shapes: expands ellipses, checks
    /// ranks and index sizes, and fixes the output's indices.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the operand and index at fault: a
    /// wrong number of operands, a rank that does not match the subscripts,
    /// an index with two sizes, broadcast dimensions that do not match, or
    /// broadcast dimensions an explicit output drops without `...`.
    pub fn bind(&self, shapes: &[&[u64]]) -> Result<EinsumProblem> {
        if shapes.len() != self.inputs.len() {
            return Err(Error::invalid(format!(
                "einsum: `{}` names {} operand(s) but {} array(s) were given",
                excerpt(&self.text),
                self.inputs.len(),
                shapes.len()
            )));
        }
        // Number of broadcast dimensions of each operand.
        let mut broadcast_dims = Vec::new();
        for (k, (term, shape)) in self.inputs.iter().zip(shapes).enumerate() {
            let n = term.letters.len();
            let fits = match term.ellipsis {
                None => shape.len() == n,
                Some(_) => shape.len() >= n,
            };
            if !fits {
                return Err(Error::invalid(format!(
                    "einsum: operand {k} has subscripts `{}` ({n} indices{}) but the array has {} axes (shape {shape:?})",
                    term_text(term),
                    if term.ellipsis.is_some() {
                        " and `...`"
                    } else {
                        ""
                    },
                    shape.len()
                )));
            }
            broadcast_dims.push(shape.len() - n);
        }
        let num_broadcast = broadcast_dims.iter().copied().max().unwrap_or(0);
        if num_broadcast > usize::from(u8::MAX) {
            return Err(Error::invalid("einsum: too many broadcast dimensions"));
        }
        let mut sizes: BTreeMap<Label, u64> = BTreeMap::new();
        let mut first_seen: BTreeMap<Label, usize> = BTreeMap::new();
        let mut operands: Vec<Vec<Option<Label>>> = Vec::new();
        // Size-1 broadcast axes, stretched where the dimension is larger.
        let mut stretched = Vec::new();
        for (k, (term, shape)) in self.inputs.iter().zip(shapes).enumerate() {
            let e = broadcast_dims[k];
            let before = term.ellipsis.unwrap_or(term.letters.len());
            let mut axes = Vec::with_capacity(shape.len());
            // A repeated index within one operand takes a diagonal: its axes
            // need equal sizes (no size-1 stretching, as in NumPy).
            let mut own: BTreeMap<Label, (usize, u64)> = BTreeMap::new();
            for (axis, &size) in shape.iter().enumerate() {
                let label = if axis < before {
                    Label::Letter(term.letters[axis])
                } else if axis < before + e {
                    Label::Broadcast((num_broadcast - e + axis - before) as u8)
                } else {
                    Label::Letter(term.letters[axis - e])
                };
                if size == 0 {
                    return Err(Error::invalid(format!(
                        "einsum: operand {k} has an empty axis {axis} (shape {shape:?})"
                    )));
                }
                if let Some(&(first_axis, first_size)) = own.get(&label)
                    && first_size != size
                {
                    return Err(Error::invalid(format!(
                        "einsum: index `{label}` repeats in operand {k} with sizes {first_size} (axis {first_axis}) and {size} (axis {axis}); a repeated index takes a diagonal and needs equal sizes"
                    )));
                }
                own.entry(label).or_insert((axis, size));
                first_seen.entry(label).or_insert(k);
                match sizes.get(&label) {
                    // A dimension of size 1 stretches to the others (NumPy
                    // broadcasts lettered and `...` dimensions alike).
                    _ if size == 1 => {
                        sizes.entry(label).or_insert(1);
                        stretched.push((k, axis));
                    }
                    Some(&known) if known != 1 && known != size => {
                        return Err(Error::invalid(format!(
                            "einsum: index `{label}` has size {size} in operand {k} (axis {axis}) but size {known} in operand {}",
                            first_seen[&label]
                        )));
                    }
                    _ => {
                        sizes.insert(label, size);
                    }
                }
                axes.push(Some(label));
            }
            operands.push(axes);
        }
        for (k, axis) in stretched {
            if operands[k][axis].is_some_and(|l| sizes[&l] > 1) {
                operands[k][axis] = None;
            }
        }
        let broadcast: Vec<Label> = (0..num_broadcast)
            .map(|p| Label::Broadcast(p as u8))
            .collect();
        let output = match &self.output {
            Some(term) => {
                let before = term.ellipsis.unwrap_or(term.letters.len());
                if term.ellipsis.is_none() && !broadcast.is_empty() {
                    return Err(Error::invalid(format!(
                        "einsum: the operands of `{}` have broadcast dimensions (`...`) but the output does not name them; add `...` to the output",
                        excerpt(&self.text)
                    )));
                }
                let mut out: Vec<Label> = term.letters[..before]
                    .iter()
                    .map(|&c| Label::Letter(c))
                    .collect();
                if term.ellipsis.is_some() {
                    out.extend(broadcast.iter().copied());
                }
                out.extend(term.letters[before..].iter().map(|&c| Label::Letter(c)));
                out
            }
            None => {
                let mut counts: BTreeMap<char, usize> = BTreeMap::new();
                for t in &self.inputs {
                    for &c in &t.letters {
                        *counts.entry(c).or_default() += 1;
                    }
                }
                let mut out = broadcast.clone();
                out.extend(
                    counts
                        .into_iter()
                        .filter(|&(_, n)| n == 1)
                        .map(|(c, _)| Label::Letter(c)),
                );
                out
            }
        };
        Ok(EinsumProblem {
            text: self.text.clone(),
            operands,
            output,
            sizes,
        })
    }
}

fn term_text(term: &Term) -> String {
    let mut s: String = term.letters.iter().collect();
    if let Some(p) = term.ellipsis {
        s.insert_str(p, "...");
    }
    s
}

/// An einsum bound to operand shapes: every operand axis has its index
/// (`None` for a size-1 axis broadcast against a larger one), the output's
/// indices are fixed, and every index has one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EinsumProblem {
    /// The subscripts as given.
    pub text: String,
    /// Per operand, per axis: its index.
    pub operands: Vec<Vec<Option<Label>>>,
    /// The output's indices, in order.
    pub output: Vec<Label>,
    /// The size of every index.
    pub sizes: BTreeMap<Label, u64>,
}

impl EinsumProblem {
    /// The output's shape (empty for a scalar).
    pub fn output_shape(&self) -> Vec<u64> {
        self.output.iter().map(|l| self.sizes[l]).collect()
    }

    /// The subscripts with ellipses expanded, e.g. `…0ij,…0jk->…0ik`.
    pub fn expanded_text(&self) -> String {
        let term = |axes: &[Option<Label>]| -> String {
            axes.iter()
                .map(|a| a.map_or("1".to_string(), |l| l.to_string()))
                .collect()
        };
        let inputs: Vec<String> = self.operands.iter().map(|o| term(o)).collect();
        format!("{}->{}", inputs.join(","), labels_text(&self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(c: char) -> Option<Label> {
        Some(Label::Letter(c))
    }

    #[test]
    fn implicit_output_is_the_sorted_single_indices() {
        let p = EinsumSpec::parse("ba,ac").unwrap();
        let b = p.bind(&[&[2, 3], &[3, 4]]).unwrap();
        assert_eq!(b.output, vec![Label::Letter('b'), Label::Letter('c')]);
        let trace = EinsumSpec::parse("ii").unwrap().bind(&[&[3, 3]]).unwrap();
        assert!(trace.output.is_empty());
    }

    #[test]
    fn ellipsis_broadcasts_from_the_right() {
        let p = EinsumSpec::parse("...ij,...jk->...ik").unwrap();
        let b = p.bind(&[&[5, 2, 3, 4], &[2, 4, 6]]).unwrap();
        assert_eq!(b.output_shape(), vec![5, 2, 3, 6]);
        assert_eq!(b.operands[1][0], Some(Label::Broadcast(1)));
        // A size-1 broadcast axis stretches.
        let b = p.bind(&[&[5, 1, 3, 4], &[2, 4, 6]]).unwrap();
        assert_eq!(b.output_shape(), vec![5, 2, 3, 6]);
        assert_eq!(b.operands[0][1], None);
        assert!(p.bind(&[&[5, 3, 3, 4], &[2, 4, 6]]).is_err());
    }

    #[test]
    fn repeated_indices_are_kept_per_axis() {
        let b = EinsumSpec::parse("ii->i")
            .unwrap()
            .bind(&[&[4, 4]])
            .unwrap();
        assert_eq!(b.operands[0], vec![l('i'), l('i')]);
        assert!(
            EinsumSpec::parse("ii->i")
                .unwrap()
                .bind(&[&[4, 5]])
                .is_err()
        );
    }

    #[test]
    fn errors_name_the_operand_and_index() {
        let e = EinsumSpec::parse("ij,jk->ik")
            .unwrap()
            .bind(&[&[3, 4], &[5, 6]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("index `j`") && e.contains("operand 1"), "{e}");
        let e = EinsumSpec::parse("ij,jk->il").unwrap_err().to_string();
        assert!(e.contains("output index `l`"), "{e}");
        let e = EinsumSpec::parse("ij,jk->ik")
            .unwrap()
            .bind(&[&[3, 4], &[4, 5, 6]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("operand 1") && e.contains("3 axes"), "{e}");
        assert!(EinsumSpec::parse("i$,j").is_err());
        assert!(EinsumSpec::parse("...i...").is_err());
        assert!(EinsumSpec::parse("ij->ii").is_err());
        let e = EinsumSpec::parse("...i->i")
            .unwrap()
            .bind(&[&[3, 4]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("broadcast"), "{e}");
    }

    #[test]
    fn numpy_rules_for_whitespace_diagonals_and_ellipses() {
        assert!(EinsumSpec::parse(" ij , jk -> ik ").is_ok());
        for bad in ["ij,\tjk", "ij,jk->ik\n", "ij\u{a0},jk"] {
            let e = EinsumSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("whitespace"), "{bad:?}: {e}");
        }
        // NumPy: "dimensions in operand 0 for collapsing index 'i' don't match".
        let e = EinsumSpec::parse("jii->")
            .unwrap()
            .bind(&[&[2, 1, 3]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("repeats in operand 0"), "{e}");
        // Across operands a size-1 axis still broadcasts.
        assert!(
            EinsumSpec::parse("ij,jk->ik")
                .unwrap()
                .bind(&[&[2, 1], &[3, 4]])
                .is_ok()
        );
        // Broadcast dimensions of size 1 still need `...` in an explicit output.
        let e = EinsumSpec::parse("...i->i")
            .unwrap()
            .bind(&[&[1, 4]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("add `...`"), "{e}");
        assert!(EinsumSpec::parse("...i->i").unwrap().bind(&[&[4]]).is_ok());
        // Long subscripts are quoted by their start and end.
        let e = EinsumSpec::parse(&format!("{}->i->j", "ij,".repeat(10_000)))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300 && e.contains("characters)"), "{e}");
    }
}
