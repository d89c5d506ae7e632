//! The `.npy` header: parse and write (format versions 1.0, 2.0 and 3.0).
//!
//! See <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::core::error::excerpt;
use crate::core::shape::join_dims;
use crate::core::{DType, Error, Result};
use crate::io::DenseLayout;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads the header of the `.npy` file at `path` and returns where and how
/// its data lies.
///
/// # Errors
/// [`Error::InvalidFile`] for a file that is not `.npy`, a malformed header,
/// an element type other than float32/float64, or a data size that does not
/// match the shape (a truncated file).
pub fn read_npy_header(path: &Path) -> Result<DenseLayout> {
    let invalid = |reason: String| Error::InvalidFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut prefix = [0u8; 12];
    let got = read_up_to(&mut file, &mut prefix).map_err(|e| Error::io(path, e))?;
    if got < 10 || &prefix[..6] != MAGIC {
        return Err(invalid("not a .npy file (bad magic string)".into()));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let (header_len, header_start) = match major {
        _ if minor != 0 => {
            return Err(invalid(format!(
                "unsupported .npy format version {major}.{minor} (NumPy reads 1.0, 2.0 and 3.0)"
            )));
        }
        1 => (u64::from(u16::from_le_bytes([prefix[8], prefix[9]])), 10u64),
        2 | 3 if got == 12 => (
            u64::from(u32::from_le_bytes([
                prefix[8], prefix[9], prefix[10], prefix[11],
            ])),
            12u64,
        ),
        v => {
            return Err(invalid(format!(
                "unsupported .npy format version {v}.{minor} (NumPy reads 1.0, 2.0 and 3.0)"
            )));
        }
    };
    let data_offset = header_start + header_len;
    if data_offset > file_len || header_len > 1 << 20 {
        return Err(invalid("truncated .npy header".into()));
    }
    let mut header = vec![0u8; header_len as usize];
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut header, header_start)
            .map_err(|e| Error::io(path, e))?;
    }
    let header = header_text(header, major).map_err(invalid)?;
    let dict = parse_header_dict(&header).map_err(|e| {
        invalid(format!(
            "malformed header {:?}: {e}",
            excerpt(header.trim())
        ))
    })?;
    let (dtype, big_endian) = parse_descr(&dict.descr).ok_or_else(|| {
        invalid(format!(
            "element type `{}` is not supported (tenrso-ooc reads float32 and float64 .npy files)",
            excerpt(&dict.descr)
        ))
    })?;
    let layout = DenseLayout {
        shape: dict.shape,
        dtype,
        data_offset,
        fortran_order: dict.fortran_order,
        big_endian,
    };
    let expected = layout
        .data_bytes()
        .and_then(|n| n.checked_add(data_offset))
        .ok_or_else(|| invalid(format!("shape {} is too large", join_dims(&layout.shape))))?;
    if file_len != expected {
        return Err(invalid(format!(
            "file is {file_len} bytes but shape {} of {} needs {expected}{}",
            join_dims(&layout.shape),
            layout.dtype,
            if file_len < expected {
                " (truncated?)"
            } else {
                ""
            }
        )));
    }
    Ok(layout)
}

/// The header's text as NumPy's reader takes it: Latin-1 before version
/// 3.0, UTF-8 from it; no NUL bytes (Python's literal parser refuses them);
/// ending with the newline the format puts after the space padding.
fn header_text(bytes: Vec<u8>, major: u8) -> std::result::Result<String, String> {
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(format!(
            "the header has a NUL byte at offset {at} (NumPy pads headers with spaces)"
        ));
    }
    if bytes.last() != Some(&b'\n') {
        return Err("the header does not end with a newline".into());
    }
    if major >= 3 {
        String::from_utf8(bytes).map_err(|_| "the header is not UTF-8 text".into())
    } else {
        Ok(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The bytes of a `.npy` header (magic, version, length, dictionary, padding)
/// for C-order little-endian data of `dtype` and `shape`; the data follows it.
pub fn npy_header_bytes(dtype: DType, shape: &[u64]) -> Vec<u8> {
    let descr = match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    };
    let shape_text = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Version 1.0 has a 2-byte length; fall back to 2.0 for huge headers.
    let (version, prefix_len) = if dict.len() + 1 + 10 <= 65535 {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let total = (prefix_len + dict.len() + 1).next_multiple_of(64);
    let header_len = total - prefix_len;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// The three entries of a `.npy` header dictionary.
#[derive(Debug, PartialEq)]
struct HeaderDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// `<f8` → (F64, little endian); `>f4` → (F32, big endian); `=` and `|` are native.
fn parse_descr(descr: &str) -> Option<(DType, bool)> {
    let (order, kind) = descr.split_at_checked(1)?;
    let big_endian = match order {
        "<" | "|" => false,
        ">" => true,
        "=" => cfg!(target_endian = "big"),
        _ => return None,
    };
    let dtype = match kind {
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    };
    Some((dtype, big_endian))
}

/// Parses the Python dict literal of a `.npy` header.
fn parse_header_dict(text: &str) -> std::result::Result<HeaderDict, String> {
    let mut p = Parser {
        s: text.trim().as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key `{other}`")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected text after the dictionary at byte {}",
            p.i
        ));
    }
    Ok(HeaderDict {
        descr: descr.ok_or("missing `descr`")?,
        fortran_order: fortran.ok_or("missing `fortran_order`")?,
        shape: shape.ok_or("missing `shape`")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = *self.s.get(self.i).ok_or("unexpected end")?;
        if quote != b'\'' && quote != b'"' {
            return Err(format!("expected a string at byte {}", self.i));
        }
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, value) in [("True", true), ("False", false)] {
            let end = self.i + word.len();
            if self.s[self.i..].starts_with(word.as_bytes())
                && !self
                    .s
                    .get(end)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                self.i = end;
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }
    fn tuple(&mut self) -> std::result::Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
            if digits.len() > 1 && digits.starts_with('0') {
                return Err(format!("extent with a leading zero at byte {start}"));
            }
            dims.push(
                digits
                    .parse()
                    .map_err(|_| format!("bad extent at byte {start}"))?,
            );
            // Python 2's NumPy wrote `3L`.
            self.eat(b'L');
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                if dims.len() == 1 {
                    // `(3)` is the integer 3, not a tuple: NumPy refuses it.
                    return Err(format!(
                        "shape `({digits})` is not a tuple (a one-element tuple is written `({digits},)`)"
                    ));
                }
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let d =
            parse_header_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }    ")
                .unwrap();
        assert_eq!(
            d,
            HeaderDict {
                descr: "<f8".into(),
                fortran_order: false,
                shape: vec![3, 4]
            }
        );
        let d =
            parse_header_dict("{'descr': '>f4', 'fortran_order': True, 'shape': (7,)}").unwrap();
        assert_eq!((d.fortran_order, d.shape), (true, vec![7]));
        let d = parse_header_dict("{'shape': (), 'descr': '<f8', 'fortran_order': False}").unwrap();
        assert!(d.shape.is_empty());
        assert!(parse_header_dict("{'descr': '<f8', 'shape': (3,)}").is_err());
        assert!(
            parse_header_dict("{'descr': '<f8', 'fortran_order': Maybe, 'shape': (3,)}").is_err()
        );
        assert!(parse_header_dict("{'descr': '<f8'").is_err());
        for bad in [
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (03,)}",
            "{'descr': '<f8', 'fortran_order': Falsey, 'shape': (3,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,)} x",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
        ] {
            assert!(parse_header_dict(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_text_is_as_numpy_reads_it() {
        assert!(header_text(b"{} \n".to_vec(), 1).is_ok());
        let err = header_text(b"{}\0\0\n".to_vec(), 1).unwrap_err();
        assert!(err.contains("NUL"), "{err}");
        assert!(
            header_text(b"{}   ".to_vec(), 1)
                .unwrap_err()
                .contains("newline")
        );
        assert!(header_text(vec![b'{', b'}', 0xe9, b'\n'], 1).is_ok());
        assert!(header_text(vec![b'{', b'}', 0xe9, b'\n'], 3).is_err());
    }

    #[test]
    fn descr_names() {
        assert_eq!(parse_descr("<f8"), Some((DType::F64, false)));
        assert_eq!(parse_descr(">f4"), Some((DType::F32, true)));
        assert_eq!(parse_descr("<i4"), None);
        assert_eq!(parse_descr(""), None);
    }

    #[test]
    fn written_header_is_aligned_and_parses_back() {
        for shape in [vec![], vec![5], vec![1024, 1024, 3]] {
            let bytes = npy_header_bytes(DType::F32, &shape);
            assert_eq!(bytes.len() % 64, 0);
            assert_eq!(*bytes.last().unwrap(), b'\n');
            let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            let dict =
                parse_header_dict(std::str::from_utf8(&bytes[10..10 + len]).unwrap()).unwrap();
            assert_eq!(dict.shape, shape);
            assert_eq!(dict.descr, "<f4");
        }
    }
}
