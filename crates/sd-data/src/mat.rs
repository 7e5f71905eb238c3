//! A small reader for MATLAB level-5 MAT files (the format of SVHN's `.mat` files).
//!
//! A level-5 file is a 128-byte header (text, subsystem offset, version `0x0100`, endian
//! indicator `IM` for little-endian) followed by data elements. Each element has an 8-byte tag
//! (type, byte count) and data padded to 8 bytes; a "small" element packs type and count in
//! one word with up to 4 data bytes. A variable is an `miMATRIX` element holding sub-elements:
//! array flags (class), dimensions, name and the real part. MATLAB usually wraps each variable
//! in an `miCOMPRESSED` element, a zlib stream of the `miMATRIX` element, not padded.
//!
//! Only what numeric data sets need is supported: real numeric arrays of any class, stored in
//! any numeric type (MATLAB may store a `double` array as `uint8` when its values fit).
//! Little-endian files only; cells, structs, sparse, character and complex arrays are
//! skipped; big-endian and v7.3 (HDF5) files are refused with an error saying so.
//!
//! Every length read from the file is checked against what is left of the file (or of the
//! decompressed element) before it is used, so a corrupt file gives a [`DataError::Format`],
//! never a huge allocation or a panic.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::ZlibDecoder;

use crate::error::DataError;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// MATLAB's `uint8` array class.
pub const CLASS_UINT8: u8 = 9;
/// MATLAB's `double` array class.
pub const CLASS_DOUBLE: u8 = 6;

/// One real numeric variable.
#[derive(Clone, Debug, PartialEq)]
pub struct MatArray {
    /// The variable name.
    pub name: String,
    /// The MATLAB class (`mxUINT8_CLASS` = 9, `mxDOUBLE_CLASS` = 6, ...).
    pub class: u8,
    /// The dimensions, first fastest (column-major).
    pub dims: Vec<usize>,
    storage: u32,
    data: Vec<u8>,
}

impl MatArray {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes, if the array is stored as `uint8` (no copy).
    pub fn into_u8(self) -> Option<Vec<u8>> {
        (self.storage == MI_UINT8).then_some(self.data)
    }

    /// Every element converted to `f64`, in column-major order.
    pub fn to_f64(&self) -> Vec<f64> {
        let d = &self.data;
        macro_rules! conv {
            ($t:ty, $n:expr) => {
                d.chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")) as f64)
                    .collect()
            };
        }
        match self.storage {
            MI_INT8 => d.iter().map(|&b| f64::from(b as i8)).collect(),
            MI_UINT8 => d.iter().map(|&b| f64::from(b)).collect(),
            MI_INT16 => conv!(i16, 2),
            MI_UINT16 => conv!(u16, 2),
            MI_INT32 => conv!(i32, 4),
            MI_UINT32 => conv!(u32, 4),
            MI_SINGLE => conv!(f32, 4),
            MI_DOUBLE => conv!(f64, 8),
            MI_INT64 => conv!(i64, 8),
            MI_UINT64 => conv!(u64, 8),
            _ => unreachable!("storage types are checked when read"),
        }
    }
}

fn element_size(storage: u32) -> Option<usize> {
    match storage {
        MI_INT8 | MI_UINT8 => Some(1),
        MI_INT16 | MI_UINT16 => Some(2),
        MI_INT32 | MI_UINT32 | MI_SINGLE => Some(4),
        MI_DOUBLE | MI_INT64 | MI_UINT64 => Some(8),
        _ => None,
    }
}

fn pad8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

/// Reads the real numeric variables of the MAT file at `path`.
pub fn read(path: &Path) -> Result<Vec<MatArray>, DataError> {
    let bad = |problem: String| DataError::format(path, problem);
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            path: path.to_path_buf(),
            what: "MAT file".into(),
        },
        _ => DataError::io(path, e),
    })?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);

    let mut header = [0u8; 128];
    if file_len < 128 {
        return Err(bad(format!(
            "{file_len} bytes is too short for a MAT file header"
        )));
    }
    reader
        .read_exact(&mut header)
        .map_err(|e| DataError::io(path, e))?;
    if header.starts_with(b"MATLAB 7.3") {
        return Err(bad(
            "MAT v7.3 (HDF5) files are not supported; save with -v7".into(),
        ));
    }
    if !header.starts_with(b"MATLAB 5.0") {
        return Err(bad("not a MATLAB level-5 MAT file (header text)".into()));
    }
    match &header[126..128] {
        b"IM" => {}
        b"MI" => return Err(bad("big-endian MAT files are not supported".into())),
        other => return Err(bad(format!("bad endian indicator {other:?}"))),
    }

    let mut arrays = Vec::new();
    let mut pos = 128u64;
    while pos < file_len {
        if file_len - pos < 8 {
            return Err(bad(format!(
                "{} stray bytes after the last element",
                file_len - pos
            )));
        }
        let mut tag = [0u8; 8];
        reader
            .read_exact(&mut tag)
            .map_err(|e| DataError::io(path, e))?;
        let kind = u32::from_le_bytes(tag[0..4].try_into().expect("4 bytes"));
        let size = u64::from(u32::from_le_bytes(tag[4..8].try_into().expect("4 bytes")));
        let left = file_len - pos - 8;
        if size > left {
            return Err(bad(format!(
                "element at byte {pos} claims {size} bytes but only {left} remain (truncated?)"
            )));
        }
        let next = match kind {
            MI_COMPRESSED => {
                let mut z = ZlibDecoder::new((&mut reader).take(size));
                let mut inner = [0u8; 8];
                z.read_exact(&mut inner).map_err(|e| {
                    bad(format!("compressed element at byte {pos} is corrupt: {e}"))
                })?;
                let inner_kind = u32::from_le_bytes(inner[0..4].try_into().expect("4 bytes"));
                let inner_size =
                    u64::from(u32::from_le_bytes(inner[4..8].try_into().expect("4 bytes")));
                if inner_kind == MI_MATRIX {
                    let mut body = Vec::new();
                    (&mut z)
                        .take(inner_size)
                        .read_to_end(&mut body)
                        .map_err(|e| {
                            bad(format!("compressed element at byte {pos} is corrupt: {e}"))
                        })?;
                    if body.len() as u64 != inner_size {
                        return Err(bad(format!(
                            "compressed element at byte {pos} holds {} of its {inner_size} \
                             bytes (truncated?)",
                            body.len()
                        )));
                    }
                    // read to the end of the zlib stream so that its checksum is verified
                    std::io::copy(&mut z, &mut std::io::sink()).map_err(|e| {
                        bad(format!("compressed element at byte {pos} is corrupt: {e}"))
                    })?;
                    if let Some(array) = parse_matrix(body, pos, path)? {
                        arrays.push(array);
                    }
                }
                pos + 8 + size
            }
            MI_MATRIX => {
                let mut body = vec![0u8; size as usize];
                reader
                    .read_exact(&mut body)
                    .map_err(|e| DataError::io(path, e))?;
                if let Some(array) = parse_matrix(body, pos, path)? {
                    arrays.push(array);
                }
                (pos + 8 + pad8(size)).min(file_len)
            }
            _ => (pos + 8 + pad8(size)).min(file_len),
        };
        reader
            .seek(SeekFrom::Start(next))
            .map_err(|e| DataError::io(path, e))?;
        pos = next;
    }
    Ok(arrays)
}

/// Reads the sub-element at `*at` of an `miMATRIX` body: `(type, data range)`.
fn sub_element(
    body: &[u8],
    at: &mut usize,
    element: u64,
    path: &Path,
) -> Result<(u32, std::ops::Range<usize>), DataError> {
    let bad = |what: &str| {
        DataError::format(
            path,
            format!("variable at byte {element}: {what} (file truncated or corrupt)"),
        )
    };
    if body.len() < *at + 8 {
        return Err(bad("sub-element tag runs past the end"));
    }
    let word = u32::from_le_bytes(body[*at..*at + 4].try_into().expect("4 bytes"));
    if word >> 16 != 0 {
        // small data element: type and size in one word, data in the next four bytes
        let (kind, size) = (word & 0xFFFF, (word >> 16) as usize);
        if size > 4 {
            return Err(bad("small data element longer than 4 bytes"));
        }
        let range = *at + 4..*at + 4 + size;
        *at += 8;
        return Ok((kind, range));
    }
    let size = u32::from_le_bytes(body[*at + 4..*at + 8].try_into().expect("4 bytes")) as usize;
    let start = *at + 8;
    if body.len() - start < size {
        return Err(bad("sub-element runs past the end"));
    }
    *at = start + pad8(size as u64) as usize;
    Ok((word, start..start + size))
}

/// Parses an `miMATRIX` body; `None` for arrays that are not real numeric ones.
fn parse_matrix(
    mut body: Vec<u8>,
    element: u64,
    path: &Path,
) -> Result<Option<MatArray>, DataError> {
    let bad = |what: String| DataError::format(path, format!("variable at byte {element}: {what}"));
    let mut at = 0;
    if body.is_empty() {
        return Ok(None);
    }
    let (_, flags) = sub_element(&body, &mut at, element, path)?;
    if flags.len() < 8 {
        return Err(bad("array flags are shorter than 8 bytes".into()));
    }
    let flags_word = u32::from_le_bytes(body[flags.start..flags.start + 4].try_into().expect("4"));
    let class = (flags_word & 0xFF) as u8;
    let complex = flags_word & 0x0800 != 0;
    if !(6..=15).contains(&class) {
        // cell, struct, object, char or sparse: not data we read
        return Ok(None);
    }
    let (dims_kind, dims) = sub_element(&body, &mut at, element, path)?;
    if dims_kind != MI_INT32 || dims.len() % 4 != 0 || dims.len() < 8 {
        return Err(bad("dimensions are not at least two int32 values".into()));
    }
    let dims: Vec<usize> = body[dims]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
        .map(|d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<_, _>>()?;
    let (_, name) = sub_element(&body, &mut at, element, path)?;
    let name = String::from_utf8_lossy(&body[name]).into_owned();
    if complex {
        return Err(bad(format!("{name}: complex arrays are not supported")));
    }
    let (storage, data) = sub_element(&body, &mut at, element, path)?;
    let Some(width) = element_size(storage) else {
        return Err(bad(format!("{name}: unsupported storage type {storage}")));
    };
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("{name}: dimensions {dims:?} overflow")))?;
    if data.len() != count * width {
        return Err(bad(format!(
            "{name}: real part has {} bytes, dimensions {dims:?} need {}",
            data.len(),
            count * width
        )));
    }
    // keep the data bytes only, without a second copy of the body
    body.truncate(data.end);
    body.drain(..data.start);
    Ok(Some(MatArray {
        name,
        class,
        dims,
        storage,
        data: body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{MatVar, TempDir, write_mat};
    use std::fs;

    fn vars() -> Vec<MatVar<'static>> {
        vec![
            MatVar {
                name: "X",
                class: CLASS_UINT8,
                dims: vec![2, 3],
                storage: MI_UINT8,
                data: vec![1, 2, 3, 4, 5, 6],
            },
            MatVar {
                name: "labels",
                class: CLASS_DOUBLE,
                dims: vec![2, 1],
                storage: MI_DOUBLE,
                data: [10.0f64, 3.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            },
            MatVar {
                name: "y",
                class: CLASS_DOUBLE,
                dims: vec![3, 1],
                storage: MI_UINT8,
                data: vec![7, 8, 10],
            },
        ]
    }

    #[test]
    fn compressed_and_plain_files_read_alike() {
        let dir = TempDir::new("mat");
        for compressed in [false, true] {
            let path = dir.path().join("v.mat");
            write_mat(&path, &vars(), compressed);
            let arrays = read(&path).unwrap();
            assert_eq!(arrays.len(), 3);
            assert_eq!(arrays[0].name, "X");
            assert_eq!(arrays[0].dims, vec![2, 3]);
            assert_eq!(arrays[1].name, "labels");
            assert_eq!(arrays[1].to_f64(), vec![10.0, 3.0]);
            assert_eq!(arrays[2].to_f64(), vec![7.0, 8.0, 10.0]);
            assert_eq!(arrays[2].class, CLASS_DOUBLE);
            assert_eq!(arrays[0].clone().into_u8().unwrap(), vec![1, 2, 3, 4, 5, 6]);
        }
    }

    #[test]
    fn truncated_and_corrupt_files_are_errors() {
        let dir = TempDir::new("mat-bad");
        let path = dir.path().join("v.mat");
        for compressed in [false, true] {
            write_mat(&path, &vars(), compressed);
            let bytes = fs::read(&path).unwrap();
            for cut in [100, 140, bytes.len() - 3] {
                fs::write(&path, &bytes[..cut]).unwrap();
                let err = read(&path).unwrap_err();
                assert!(matches!(err, DataError::Format { .. }), "cut {cut}: {err}");
                assert!(err.to_string().contains("v.mat"));
            }
            // flip bytes inside the first element's data
            let mut broken = bytes.clone();
            for b in &mut broken[140..150] {
                *b ^= 0x5a;
            }
            fs::write(&path, &broken).unwrap();
            assert!(read(&path).is_err(), "compressed = {compressed}");
        }
    }

    #[test]
    fn other_mat_versions_are_refused_by_name() {
        let dir = TempDir::new("mat-version");
        let path = dir.path().join("v73.mat");
        let mut header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00".to_vec();
        header.resize(512, b' ');
        fs::write(&path, header).unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("v7.3 (HDF5)"), "{err}");
    }
}
