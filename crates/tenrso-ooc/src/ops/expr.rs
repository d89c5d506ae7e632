//! [`Expr`]: the small expression language of `map`.

use std::fmt;

use crate::core::error::excerpt;
use crate::core::{Error, Result};

/// An element-wise expression over one or two inputs, `x` and `y`.
///
/// Operators `+ - * /` and `^` (or `**`, power, right-associative), unary
/// minus, parentheses, numbers (`2`, `1.5e-3`), constants `pi` and `e`, and
/// the functions `sqrt abs exp log log2 log10 sin cos tan tanh floor ceil`
/// of one argument, `pow min max` of two, and `clip(v, lo, hi)`.
/// Evaluation is in `f64` (results are rounded to the array's type), over
/// batches of elements, with no per-element dispatch.
///
/// ```
/// use tenrso_ooc::ops::Expr;
/// let e = Expr::parse("clip(x*2+1, 0, 10) + y")?;
/// assert!(e.uses_y());
/// let (x, y) = ([1.0, 7.0], [0.5, 0.5]);
/// let mut out = [0.0; 2];
/// e.eval(&x, Some(&y), &mut out);
/// assert_eq!(out, [3.5, 10.5]);
/// assert!(Expr::parse("sqrt(x").is_err());
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    text: String,
    program: Vec<Op>,
    depth: usize,
    uses_y: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Const(f64),
    X,
    Y,
    Neg,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    Clip,
    /// A one-argument function, by its index in `FUNCTIONS_1`.
    Fn1(u8),
}

/// A named function of one argument.
type Function1 = (&'static str, fn(f64) -> f64);

const FUNCTIONS_1: [Function1; 12] = [
    ("sqrt", f64::sqrt),
    ("abs", f64::abs),
    ("exp", f64::exp),
    ("log", f64::ln),
    ("log2", f64::log2),
    ("log10", f64::log10),
    ("sin", f64::sin),
    ("cos", f64::cos),
    ("tan", f64::tan),
    ("tanh", f64::tanh),
    ("floor", f64::floor),
    ("ceil", f64::ceil),
];

/// Elements evaluated per batch.
const BATCH: usize = 1024;

/// The longest expression accepted, in bytes.
pub const MAX_EXPR_LEN: usize = 64 << 10;

/// The deepest nesting accepted: parentheses, function calls, unary signs
/// and powers, each one level. Bounds the parser's recursion and the
/// evaluator's stack (one 8 KiB batch per level).
pub const MAX_EXPR_DEPTH: usize = 256;

impl Expr {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the position and what was expected,
    /// or the limit exceeded: longer than `MAX_EXPR_LEN` (65 536) bytes,
    /// nested deeper than `MAX_EXPR_DEPTH` (256) levels.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_EXPR_LEN {
            return Err(Error::invalid(format!(
                "bad expression: {} bytes long, more than the {MAX_EXPR_LEN} accepted",
                text.len()
            )));
        }
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            out: Vec::new(),
            depth: 0,
        };
        p.expr()?;
        p.skip_ws();
        if p.i < p.s.len() {
            return Err(p.error("an operator or the end"));
        }
        let mut depth = 0usize;
        let mut max_depth = 0usize;
        for op in &p.out {
            depth = depth + 1 - op.arity();
            max_depth = max_depth.max(depth);
        }
        let uses_y = p.out.contains(&Op::Y);
        Ok(Self {
            text: text.trim().to_string(),
            program: p.out,
            depth: max_depth,
            uses_y,
        })
    }

    /// True when the expression reads the second input `y`.
    pub fn uses_y(&self) -> bool {
        self.uses_y
    }

    /// True when the expression reads the first input `x`.
    pub fn uses_x(&self) -> bool {
        self.program.contains(&Op::X)
    }

    /// Evaluates over `x` (and `y`), writing `out`; all three have one length.
    ///
    /// # Panics
    /// If lengths differ or `y` is missing while the expression uses it.
    pub fn eval(&self, x: &[f64], y: Option<&[f64]>, out: &mut [f64]) {
        assert_eq!(x.len(), out.len());
        assert!(
            !self.uses_y || y.is_some_and(|y| y.len() == x.len()),
            "expression needs y of equal length"
        );
        let mut stack = vec![[0.0f64; BATCH]; self.depth.max(1)];
        for start in (0..x.len()).step_by(BATCH) {
            let n = BATCH.min(x.len() - start);
            let xs = &x[start..start + n];
            let ys = y.map(|y| &y[start..start + n]);
            let mut top = 0usize;
            for op in &self.program {
                match *op {
                    Op::Const(c) => {
                        stack[top][..n].fill(c);
                        top += 1;
                    }
                    Op::X => {
                        stack[top][..n].copy_from_slice(xs);
                        top += 1;
                    }
                    Op::Y => {
                        stack[top][..n].copy_from_slice(ys.expect("checked above"));
                        top += 1;
                    }
                    Op::Neg => stack[top - 1][..n].iter_mut().for_each(|v| *v = -*v),
                    Op::Fn1(k) => {
                        let f = FUNCTIONS_1[k as usize].1;
                        stack[top - 1][..n].iter_mut().for_each(|v| *v = f(*v));
                    }
                    Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Min | Op::Max => {
                        let (lower, upper) = stack.split_at_mut(top - 1);
                        let (a, b) = (&mut lower[top - 2][..n], &upper[0][..n]);
                        let f: fn(f64, f64) -> f64 = match op {
                            Op::Add => |a, b| a + b,
                            Op::Sub => |a, b| a - b,
                            Op::Mul => |a, b| a * b,
                            Op::Div => |a, b| a / b,
                            Op::Pow => f64::powf,
                            Op::Min => f64::min,
                            _ => f64::max,
                        };
                        a.iter_mut().zip(b).for_each(|(a, b)| *a = f(*a, *b));
                        top -= 1;
                    }
                    Op::Clip => {
                        let (lower, upper) = stack.split_at_mut(top - 2);
                        let v = &mut lower[top - 3][..n];
                        let (lo, hi) = (&upper[0][..n], &upper[1][..n]);
                        for ((v, lo), hi) in v.iter_mut().zip(lo).zip(hi) {
                            *v = v.max(*lo).min(*hi);
                        }
                        top -= 2;
                    }
                }
            }
            out[start..start + n].copy_from_slice(&stack[0][..n]);
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Op {
    /// Stack values consumed.
    fn arity(&self) -> usize {
        match self {
            Op::Const(_) | Op::X | Op::Y => 0,
            Op::Neg | Op::Fn1(_) => 1,
            Op::Clip => 3,
            _ => 2,
        }
    }
}

/// Recursive-descent parser producing postfix code.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    out: Vec<Op>,
    /// Nesting levels entered (see [`MAX_EXPR_DEPTH`]).
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, expected: &str) -> Error {
        let whole = String::from_utf8_lossy(self.s);
        let text = excerpt(&whole);
        let rest = &self.s[self.i.min(self.s.len())..];
        let found = String::from_utf8_lossy(&rest[..rest.len().min(4)])
            .chars()
            .next()
            .map_or("the end".to_string(), |c| format!("`{c}`"));
        Error::invalid(format!(
            "bad expression `{text}`: expected {expected} at position {}, found {found}",
            self.i + 1
        ))
    }

    /// Enters one nesting level: refused past [`MAX_EXPR_DEPTH`].
    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return Err(Error::invalid(format!(
                "bad expression: nested more than {MAX_EXPR_DEPTH} levels deep (parentheses, calls, signs or powers) at position {}",
                self.i + 1
            )));
        }
        Ok(())
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.s[self.i..].starts_with(token.as_bytes()) {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<()> {
        self.term()?;
        loop {
            if self.eat("+") {
                self.term()?;
                self.out.push(Op::Add);
            } else if self.eat("-") {
                self.term()?;
                self.out.push(Op::Sub);
            } else {
                return Ok(());
            }
        }
    }

    fn term(&mut self) -> Result<()> {
        self.unary()?;
        loop {
            self.skip_ws();
            if self.s[self.i..].starts_with(b"**") {
                return Ok(()); // power is handled below `unary`
            }
            if self.eat("*") {
                self.unary()?;
                self.out.push(Op::Mul);
            } else if self.eat("/") {
                self.unary()?;
                self.out.push(Op::Div);
            } else {
                return Ok(());
            }
        }
    }

    fn unary(&mut self) -> Result<()> {
        self.enter()?;
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<()> {
        if self.eat("-") {
            self.unary()?;
            self.out.push(Op::Neg);
            return Ok(());
        }
        if self.eat("+") {
            return self.unary();
        }
        self.atom()?;
        if self.eat("**") || self.eat("^") {
            self.unary()?; // right-associative: x^-2, 2^x^2
            self.out.push(Op::Pow);
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<()> {
        self.skip_ws();
        if self.eat("(") {
            self.expr()?;
            if !self.eat(")") {
                return Err(self.error("`)`"));
            }
            return Ok(());
        }
        let start = self.i;
        if self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
        {
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
            {
                self.i += 1;
            }
            if self.s.get(self.i).is_some_and(|c| *c == b'e' || *c == b'E') {
                let save = self.i;
                self.i += 1;
                if self.s.get(self.i).is_some_and(|c| *c == b'+' || *c == b'-') {
                    self.i += 1;
                }
                if self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                } else {
                    self.i = save;
                }
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
            let value = text.parse::<f64>().map_err(|_| {
                self.i = start;
                self.error("a number")
            })?;
            self.out.push(Op::Const(value));
            return Ok(());
        }
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.i])
            .unwrap_or_default()
            .to_string();
        match name.as_str() {
            "" => {
                self.i = start;
                Err(self.error("a number, `x`, `y`, a function or `(`"))
            }
            "x" => {
                self.out.push(Op::X);
                Ok(())
            }
            "y" => {
                self.out.push(Op::Y);
                Ok(())
            }
            "pi" => {
                self.out.push(Op::Const(std::f64::consts::PI));
                Ok(())
            }
            "e" => {
                self.out.push(Op::Const(std::f64::consts::E));
                Ok(())
            }
            _ => self.call(&name, start),
        }
    }

    fn call(&mut self, name: &str, start: usize) -> Result<()> {
        let (arity, op) = if let Some(k) = FUNCTIONS_1.iter().position(|(n, _)| *n == name) {
            (1, Op::Fn1(k as u8))
        } else {
            match name {
                "pow" => (2, Op::Pow),
                "min" => (2, Op::Min),
                "max" => (2, Op::Max),
                "clip" => (3, Op::Clip),
                _ => {
                    self.i = start;
                    return Err(self.error("a known function (sqrt abs exp log log2 log10 sin cos tan tanh floor ceil pow min max clip) or x, y"));
                }
            }
        };
        if !self.eat("(") {
            return Err(self.error(&format!("`(` after `{name}`")));
        }
        for k in 0..arity {
            if k > 0 && !self.eat(",") {
                return Err(self.error(&format!("`,`: {name} takes {arity} arguments")));
            }
            self.expr()?;
        }
        if !self.eat(")") {
            return Err(self.error(&format!("`)`: {name} takes {arity} argument(s)")));
        }
        self.out.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval1(text: &str, x: f64) -> f64 {
        let e = Expr::parse(text).unwrap();
        let mut out = [0.0];
        e.eval(&[x], Some(&[10.0]), &mut out);
        out[0]
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(eval1("x*2+1", 3.0), 7.0);
        assert_eq!(eval1("1+x*2", 3.0), 7.0);
        assert_eq!(eval1("(1+x)*2", 3.0), 8.0);
        assert_eq!(eval1("x-1-1", 3.0), 1.0);
        assert_eq!(eval1("x/2/2", 8.0), 2.0);
        assert_eq!(eval1("2^3^2", 0.0), 512.0);
        assert_eq!(eval1("-x^2", 3.0), -9.0);
        assert_eq!(eval1("x**-1", 4.0), 0.25);
        assert_eq!(eval1("x*y", 3.0), 30.0);
        assert_eq!(eval1("1.5e1 + 2E-1", 0.0), 15.2);
    }

    #[test]
    fn functions() {
        assert_eq!(eval1("sqrt(abs(x))", -16.0), 4.0);
        assert_eq!(eval1("clip(x, 0, 1)", 5.0), 1.0);
        assert_eq!(eval1("clip(x, 0, 1)", -5.0), 0.0);
        assert_eq!(eval1("pow(x, 2)", 3.0), 9.0);
        assert_eq!(eval1("max(x, y)", 3.0), 10.0);
        assert!((eval1("log(exp(x))", 1.25) - 1.25).abs() < 1e-15);
        assert!((eval1("cos(pi)", 0.0) + 1.0).abs() < 1e-15);
    }

    #[test]
    fn batches_match_scalar_evaluation() {
        let e = Expr::parse("x*x - 3*y + sqrt(abs(x*y))").unwrap();
        let x: Vec<f64> = (0..5000).map(|i| i as f64 * 0.37 - 400.0).collect();
        let y: Vec<f64> = (0..5000).map(|i| (i % 17) as f64).collect();
        let mut out = vec![0.0; x.len()];
        e.eval(&x, Some(&y), &mut out);
        for i in 0..x.len() {
            assert_eq!(
                out[i],
                x[i] * x[i] - 3.0 * y[i] + (x[i] * y[i]).abs().sqrt()
            );
        }
    }

    #[test]
    fn errors_say_where_and_what() {
        for (bad, want) in [
            ("x +", "position 4"),
            ("sqrt(x", "`)`"),
            ("foo(x)", "known function"),
            ("clip(x, 1)", "3 arguments"),
            ("x y", "operator or the end"),
            ("", "a number"),
        ] {
            let err = Expr::parse(bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert!(!Expr::parse("x*2").unwrap().uses_y());
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let nested = |n: usize| format!("{}x{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(eval1(&nested(MAX_EXPR_DEPTH - 1), 2.0), 2.0);
        for deep in [
            nested(20_000),
            format!("{}x", "-".repeat(60_000)),
            format!("{}x{}", "sqrt(".repeat(10_000), ")".repeat(10_000)),
            vec!["x"; 10_000].join("^"),
        ] {
            let err = Expr::parse(&deep).unwrap_err().to_string();
            assert!(err.contains("nested more than"), "{err}");
        }
        let long = vec!["x"; MAX_EXPR_LEN].join("+");
        let err = Expr::parse(&long).unwrap_err().to_string();
        assert!(err.contains("bytes long"), "{err}");
        // Errors quote long input by its start and end: one short line.
        let err = Expr::parse(&format!("{}?", "x+".repeat(20_000)))
            .unwrap_err()
            .to_string();
        assert!(
            err.len() < 300 && err.contains("(40001 characters)"),
            "{err}"
        );
        // A long flat sum stays within the evaluator's stack.
        let flat = vec!["x"; 5000].join("+");
        assert_eq!(eval1(&flat, 1.0), 5000.0);
    }
}
