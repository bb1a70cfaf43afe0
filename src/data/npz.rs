//! `.npz` files (NumPy's zip of `.npy` arrays, as MedMNIST ships them), read whole into memory.
//!
//! Members may be stored or deflated (`np.savez` vs `np.savez_compressed`). Each `.npy` member is parsed from its
//! header (format versions 1.0, 2.0 and 3.0): C-order arrays of `uint8`/`bool` stay bytes, other integer types
//! (`i1 u2 i2 u4 i4 u8 i8`, either byte order) become `i64`. Floats, objects and Fortran-order arrays are errors
//! naming the file and the member.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The elements of one array.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// `uint8` (or `bool`) elements, as stored.
    U8(Vec<u8>),
    /// Any other integer type, widened.
    I64(Vec<i64>),
}

/// One `.npy` array: its shape (C order) and elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The numpy dtype string as stored (`|u1`, `<i8`, ...).
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

impl Array {
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::U8(v) => v.len(),
            ArrayData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as an integer.
    pub fn get_i64(&self, i: usize) -> Option<i64> {
        match &self.data {
            ArrayData::U8(v) => v.get(i).map(|&x| x as i64),
            ArrayData::I64(v) => v.get(i).copied(),
        }
    }

    /// The bytes of a `uint8` array, `None` for other types.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            ArrayData::U8(v) => Some(v),
            ArrayData::I64(_) => None,
        }
    }
}

/// Every array of one `.npz` file, by name without the `.npy` suffix (`train_images`, `train_labels`, ...).
#[derive(Clone, Debug, Default)]
pub struct Arrays {
    pub path: PathBuf,
    pub arrays: BTreeMap<String, Array>,
}

impl Arrays {
    pub fn get(&self, key: &str) -> Option<&Array> {
        self.arrays.get(key)
    }

    /// Image `index` of the image array `key` as RGB8 `(width, height, pixels)`: `(N,H,W)` and `(N,H,W,1)` grey
    /// arrays are replicated to three channels, `(N,H,W,3)` is copied, `(N,H,W,4)` drops alpha.
    pub fn image_rgb8(&self, key: &str, index: usize) -> Result<(u32, u32, Vec<u8>)> {
        let err = |reason: String| Error::Invalid(format!("{}: array '{key}': {reason}", self.path.display()));
        let a = self.get(key).ok_or_else(|| err("no such array".into()))?;
        let bytes = a.as_u8().ok_or_else(|| err(format!("images must be uint8, found dtype {}", a.dtype)))?;
        let (n, h, w, c) = match a.shape[..] {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c] if matches!(c, 1 | 3 | 4) => (n, h, w, c),
            _ => return Err(err(format!("shape {:?} is not (N,H,W) or (N,H,W,C) with C in 1, 3, 4", a.shape))),
        };
        if index >= n {
            return Err(err(format!("image {index} out of range (the array holds {n})")));
        }
        let plane = h * w * c;
        let src = &bytes[index * plane..(index + 1) * plane];
        let px: Vec<u8> = match c {
            1 => src.iter().flat_map(|&v| [v; 3]).collect(),
            3 => src.to_vec(),
            _ => src.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        };
        Ok((w as u32, h as u32, px))
    }
}

/// Reads every `.npy` member of the `.npz` at `path` (other members are ignored).
pub fn read_npz(path: &Path) -> Result<Arrays> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::Invalid(format!("{}: {reason}", path.display()));
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(format!("not a valid .npz (zip) file: {e}")))?;
    let mut arrays = BTreeMap::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| bad(format!("zip member {i}: {e}")))?;
        let name = member.name().to_string();
        let Some(key) = name.strip_suffix(".npy") else { continue };
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member.read_to_end(&mut bytes).map_err(|e| bad(format!("member {name}: cannot read: {e}")))?;
        let array = parse_npy(&bytes).map_err(|reason| bad(format!("member {name}: {reason}")))?;
        arrays.insert(key.to_string(), array);
    }
    if arrays.is_empty() {
        return Err(bad("no .npy arrays in this .npz".into()));
    }
    Ok(Arrays { path: path.to_path_buf(), arrays })
}

/// Parses one `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<Array, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (bad magic)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(format!("unsupported .npy format version {major}")),
    };
    let header = bytes.get(start..start + header_len).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
    let fortran = dict_value(header, "fortran_order").ok_or("the .npy header has no 'fortran_order'")?;
    let shape_text = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let shape_text = shape_text.trim().trim_start_matches('(').trim_end_matches(')');
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| format!("bad shape entry '{s}'")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let data = &bytes[start + header_len..];
    let (order, kind, size) = {
        let b = descr.as_bytes();
        if b.len() < 3 {
            return Err(format!("unsupported dtype '{descr}'"));
        }
        (b[0], b[1], descr[2..].parse::<usize>().map_err(|_| format!("unsupported dtype '{descr}'"))?)
    };
    let need = count.checked_mul(size).ok_or("array size overflows")?;
    if data.len() < need {
        return Err(format!("truncated data: shape {shape:?} of {descr} needs {need} bytes, found {}", data.len()));
    }
    let data = &data[..need];
    let is_fortran = fortran.trim().starts_with("True");
    let multi_dim = shape.iter().filter(|&&d| d > 1).count() > 1;
    if is_fortran && multi_dim {
        return Err("Fortran-order arrays are not supported (save with np.ascontiguousarray)".into());
    }
    let big = order == b'>';
    let read = |chunk: &[u8], signed: bool| -> i64 {
        let mut buf = [0u8; 8];
        if big {
            buf[8 - chunk.len()..].copy_from_slice(chunk);
            buf.reverse();
        } else {
            buf[..chunk.len()].copy_from_slice(chunk);
        }
        let n = chunk.len();
        let v = u64::from_le_bytes(buf);
        if signed && n < 8 && (v >> (8 * n - 1)) & 1 == 1 {
            (v | (!0u64 << (8 * n))) as i64
        } else {
            v as i64
        }
    };
    let data = match (kind, size) {
        (b'u', 1) | (b'b', 1) => ArrayData::U8(data.to_vec()),
        (b'i', 1 | 2 | 4 | 8) => ArrayData::I64(data.chunks_exact(size).map(|c| read(c, true)).collect()),
        (b'u', 2 | 4) => ArrayData::I64(data.chunks_exact(size).map(|c| read(c, false)).collect()),
        (b'u', 8) => ArrayData::I64(
            data.chunks_exact(8)
                .map(|c| i64::try_from(read(c, false) as u64).map_err(|_| "uint64 value too large".to_string()))
                .collect::<std::result::Result<_, _>>()?,
        ),
        _ => return Err(format!("unsupported dtype '{descr}' (expected uint8 images and integer labels)")),
    };
    Ok(Array { dtype: descr, shape, data })
}

/// The text after `'key':` in a Python dict literal, up to the matching `,` at nesting depth 0 (or the end).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

/// A `.npy` file (format 1.0) holding `data` with `shape` and numpy dtype `descr`; used by tests and fixture
/// writers. `data` must already be in the dtype's byte layout.
pub fn write_npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_npy_headers_and_types() {
        let a = parse_npy(&write_npy("|u1", &[2, 2, 3], &[1; 12])).unwrap();
        assert_eq!(a.shape, [2, 2, 3]);
        assert_eq!(a.as_u8().unwrap(), &[1; 12]);
        let vals: Vec<u8> = [-1i64, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = parse_npy(&write_npy("<i8", &[2, 1], &vals)).unwrap();
        assert_eq!(a.data, ArrayData::I64(vec![-1, 5]));
        let a = parse_npy(&write_npy(">i2", &[2], &[0xff, 0xfe, 0x00, 0x07])).unwrap();
        assert_eq!(a.data, ArrayData::I64(vec![-2, 7]));
        let a = parse_npy(&write_npy("<u4", &[1], &[1, 1, 0, 0])).unwrap();
        assert_eq!(a.data, ArrayData::I64(vec![257]));
        assert!(parse_npy(&write_npy("<f4", &[1], &[0; 4])).unwrap_err().contains("f4"));
        assert!(parse_npy(&write_npy("|u1", &[4], &[0; 2])).unwrap_err().contains("truncated"));
        assert!(parse_npy(b"not numpy at all").unwrap_err().contains("magic"));
    }

    #[test]
    fn grey_and_rgb_images_become_rgb8() {
        let mut arrays = Arrays { path: "x.npz".into(), arrays: BTreeMap::new() };
        arrays.arrays.insert("g".into(), parse_npy(&write_npy("|u1", &[2, 1, 2], &[1, 2, 3, 4])).unwrap());
        arrays.arrays.insert("c".into(), parse_npy(&write_npy("|u1", &[1, 1, 1, 3], &[7, 8, 9])).unwrap());
        assert_eq!(arrays.image_rgb8("g", 1).unwrap(), (2, 1, vec![3, 3, 3, 4, 4, 4]));
        assert_eq!(arrays.image_rgb8("c", 0).unwrap(), (1, 1, vec![7, 8, 9]));
        assert!(arrays.image_rgb8("g", 2).unwrap_err().to_string().contains("out of range"));
        assert!(arrays.image_rgb8("nope", 0).unwrap_err().to_string().contains("no such array"));
    }
}
