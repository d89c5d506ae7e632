//! [`Elements`]: where a block's elements live — memory it owns, or a
//! read-only mapping of a stored chunk's file ([`MappedElements`]).

use std::marker::PhantomData;

use bytemuck::Pod;

/// The elements of a stored chunk, read in place from the page cache
/// through a read-only memory mapping of its file, instead of copied into
/// owned memory. The mapping's pages count in the process's resident set
/// exactly as an owned buffer of the same size would.
pub struct MappedElements<T> {
    map: memmap2::Mmap,
    len: usize,
    element: PhantomData<T>,
}

impl<T: Pod> MappedElements<T> {
    /// Views the first `len` elements of `map`; `None` when the mapping is
    /// too short or not aligned for `T`.
    pub(crate) fn new(map: memmap2::Mmap, len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let fits = bytes <= map.len() && map.as_ptr().align_offset(std::mem::align_of::<T>()) == 0;
        fits.then_some(Self {
            map,
            len,
            element: PhantomData,
        })
    }

    /// The elements.
    pub(crate) fn as_slice(&self) -> &[T] {
        bytemuck::cast_slice(&self.map[..self.len * std::mem::size_of::<T>()])
    }
}

impl<T> std::fmt::Debug for MappedElements<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedElements")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A block's elements: owned, or mapped from a stored chunk's file. Reads
/// see a slice either way; the first write to mapped elements copies them
/// into owned memory (the file is never written through a block).
pub(crate) enum Elements<T> {
    /// Memory the block owns.
    Owned(Vec<T>),
    /// A read-only mapping of a stored chunk.
    Mapped(MappedElements<T>),
}

impl<T: Pod> Elements<T> {
    /// The elements.
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => m.as_slice(),
        }
    }

    /// The elements as an owned vector, copied out of a mapping first.
    pub(crate) fn to_mut(&mut self) -> &mut Vec<T> {
        if let Self::Mapped(m) = self {
            *self = Self::Owned(m.as_slice().to_vec());
        }
        match self {
            Self::Owned(v) => v,
            Self::Mapped(_) => unreachable!("just copied into owned memory"),
        }
    }

    /// The elements by value, copied out of a mapping.
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => m.as_slice().to_vec(),
        }
    }

    /// Whether the elements are read in place from a stored chunk's file.
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped(_))
    }
}

impl<T: Pod> Clone for Elements<T> {
    /// A clone owns its elements (a copy of the mapped ones).
    fn clone(&self) -> Self {
        Self::Owned(self.as_slice().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(values: &[f64]) -> (tempfile::TempDir, Elements<f64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk");
        std::fs::write(&path, bytemuck::cast_slice(values)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the file is private to this test and not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let elements = MappedElements::new(map, values.len()).unwrap();
        (dir, Elements::Mapped(elements))
    }

    #[test]
    fn mapped_elements_read_in_place_and_copy_on_write() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let (dir, mut elements) = mapped(&values);
        assert!(elements.is_mapped());
        assert_eq!(elements.as_slice(), &values[..]);
        let copy = elements.clone();
        assert!(!copy.is_mapped());
        assert_eq!(copy.as_slice(), &values[..]);
        elements.to_mut()[3] = -1.0;
        assert!(!elements.is_mapped());
        assert_eq!(elements.as_slice()[3], -1.0);
        // The file is untouched.
        let on_disk = std::fs::read(dir.path().join("chunk")).unwrap();
        assert_eq!(on_disk, bytemuck::cast_slice::<f64, u8>(&values));
        assert_eq!(mapped(&values).1.into_vec(), values);
    }

    #[test]
    fn a_mapping_shorter_than_the_elements_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk");
        std::fs::write(&path, [0u8; 24]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: as above.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        assert!(MappedElements::<f64>::new(map, 4).is_none());
    }
}
