//! SVHN cropped digits (format 2) from the official `.mat` files.
//!
//! `train_32x32.mat`, `test_32x32.mat` and `extra_32x32.mat` each hold two variables: `X`, a
//! `uint8` array of dimensions `[32, 32, 3, N]` (row, column, channel, image; MATLAB stores it
//! column-major, so rows vary fastest), and `y`, `[N, 1]` labels from 1 to 10 where 10 stands
//! for the digit 0. Here the label is the digit: 10 becomes 0, and class `d` is named `"d"`.
//!
//! The files are read with the crate's own MAT reader ([`crate::mat`]), compressed or not.
//! `extra_32x32.mat` is optional: without it the data set has no extra part (and the paper's
//! validation split takes its 200 per class from nowhere; see [`crate::load`]).

use std::path::Path;

use crate::error::DataError;
use crate::mat::{self, CLASS_UINT8};
use crate::store::{DecodedSet, IMAGE_BYTES, IMAGE_SIDE, ImageStore};

/// The file names of the three parts.
pub const TRAIN_FILE: &str = "train_32x32.mat";
/// The test part.
pub const TEST_FILE: &str = "test_32x32.mat";
/// The extra training part.
pub const EXTRA_FILE: &str = "extra_32x32.mat";

/// The class names: the digits in label order.
pub fn classes() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// Reads the SVHN parts from the folder `dir`.
pub fn read(dir: &Path) -> Result<DecodedSet, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what: format!("folder holding {TRAIN_FILE} and {TEST_FILE}"),
        });
    }
    let train = read_file(&dir.join(TRAIN_FILE))?;
    let test = read_file(&dir.join(TEST_FILE))?;
    let extra_path = dir.join(EXTRA_FILE);
    let extra = if extra_path.exists() {
        Some(read_file(&extra_path)?)
    } else {
        log::warn!(
            "{}: not found; SVHN without its extra part",
            extra_path.display()
        );
        None
    };
    Ok(DecodedSet { train, test, extra })
}

/// Reads one SVHN `.mat` file into a store.
pub fn read_file(path: &Path) -> Result<ImageStore, DataError> {
    let mut arrays = mat::read(path)?;
    let position = |name: &str| {
        arrays
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| DataError::format(path, format!("no variable {name:?}")))
    };
    let (xi, yi) = (position("X")?, position("y")?);
    let (x, y) = (&arrays[xi], &arrays[yi]);
    let n = match x.dims.as_slice() {
        [32, 32, 3, n] => *n,
        [32, 32, 3] => 1,
        dims => {
            return Err(DataError::Image {
                path: path.to_path_buf(),
                problem: format!("X has dimensions {dims:?}, expected [32, 32, 3, N]"),
            });
        }
    };
    if x.class != CLASS_UINT8 {
        return Err(DataError::format(
            path,
            format!("X has MATLAB class {}, expected uint8 (9)", x.class),
        ));
    }
    if y.len() != n || !y.dims.contains(&n) {
        return Err(DataError::format(
            path,
            format!("y has dimensions {:?}, expected [{n}, 1]", y.dims),
        ));
    }
    let mut labels = Vec::with_capacity(n);
    for (record, value) in y.to_f64().into_iter().enumerate() {
        if value.fract() != 0.0 || !(1.0..=10.0).contains(&value) {
            return Err(DataError::Label {
                path: path.to_path_buf(),
                record,
                label: value as i64,
                classes: 10,
            });
        }
        labels.push((value as u16) % 10);
    }
    let mut pixels = arrays
        .swap_remove(xi)
        .into_u8()
        .ok_or_else(|| DataError::format(path, "X is not stored as uint8 bytes"))?;
    to_chw(&mut pixels);
    Ok(ImageStore::new(pixels, labels, classes()))
}

/// Turns each image from MATLAB's column-major `[row, column, channel]` layout into CHW, in
/// place: within each channel plane, element `(r, c)` moves from `r + 32 c` to `32 r + c`.
fn to_chw(pixels: &mut [u8]) {
    let mut plane = [0u8; IMAGE_SIDE * IMAGE_SIDE];
    for image in pixels.chunks_exact_mut(IMAGE_BYTES) {
        for channel in image.chunks_exact_mut(IMAGE_SIDE * IMAGE_SIDE) {
            plane.copy_from_slice(channel);
            for r in 0..IMAGE_SIDE {
                for c in 0..IMAGE_SIDE {
                    channel[r * IMAGE_SIDE + c] = plane[r + IMAGE_SIDE * c];
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{MatVar, TempDir, test_image, write_mat};
    use std::fs;

    /// Writes an SVHN file in the official layout holding `images` (CHW) with `digits` as
    /// labels (0 written as 10), `y` stored as doubles.
    pub fn write_svhn(path: &Path, images: &[Vec<u8>], digits: &[u8], compressed: bool) {
        let n = images.len();
        // column-major [32, 32, 3, N]: index r + 32 c + 1024 ch + 3072 k
        let mut x = vec![0u8; n * IMAGE_BYTES];
        for (k, image) in images.iter().enumerate() {
            for ch in 0..3 {
                for r in 0..32 {
                    for c in 0..32 {
                        x[r + 32 * c + 1024 * ch + 3072 * k] = image[ch * 1024 + r * 32 + c];
                    }
                }
            }
        }
        let y: Vec<u8> = digits
            .iter()
            .flat_map(|&d| f64::from(if d == 0 { 10 } else { d }).to_le_bytes())
            .collect();
        let vars = [
            MatVar {
                name: "X",
                class: CLASS_UINT8,
                dims: vec![32, 32, 3, n as i32],
                storage: 2,
                data: x,
            },
            MatVar {
                name: "y",
                class: mat::CLASS_DOUBLE,
                dims: vec![n as i32, 1],
                storage: 9,
                data: y,
            },
        ];
        write_mat(path, &vars, compressed);
    }

    #[test]
    fn images_come_out_chw_and_ten_means_zero() {
        let dir = TempDir::new("svhn");
        let images: Vec<Vec<u8>> = (0..4).map(test_image).collect();
        for compressed in [true, false] {
            write_svhn(
                &dir.path().join(TRAIN_FILE),
                &images,
                &[0, 1, 9, 0],
                compressed,
            );
            write_svhn(&dir.path().join(TEST_FILE), &images[..1], &[5], compressed);
            let set = read(dir.path()).unwrap();
            assert_eq!(set.train.labels(), &[0, 1, 9, 0]);
            assert_eq!(set.train.image(2), &images[2][..]);
            assert_eq!(set.test.label(0), 5);
            assert!(set.extra.is_none());
        }
        write_svhn(&dir.path().join(EXTRA_FILE), &images[1..], &[3, 3, 3], true);
        let set = read(dir.path()).unwrap();
        assert_eq!(set.extra.unwrap().labels(), &[3, 3, 3]);
    }

    #[test]
    fn bad_labels_sizes_and_files_are_errors() {
        let dir = TempDir::new("svhn-bad");
        let path = dir.path().join(TRAIN_FILE);
        let images: Vec<Vec<u8>> = (0..2).map(test_image).collect();

        write_svhn(&path, &images, &[1, 11], true);
        let err = read_file(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Label {
                    record: 1,
                    label: 11,
                    ..
                }
            ),
            "{err}"
        );

        let vars = [
            MatVar {
                name: "X",
                class: CLASS_UINT8,
                dims: vec![28, 28, 3, 1],
                storage: 2,
                data: vec![0; 28 * 28 * 3],
            },
            MatVar {
                name: "y",
                class: mat::CLASS_DOUBLE,
                dims: vec![1, 1],
                storage: 2,
                data: vec![4],
            },
        ];
        write_mat(&path, &vars, false);
        let err = read_file(&path).unwrap_err();
        assert!(err.to_string().contains("expected [32, 32, 3, N]"), "{err}");

        fs::write(&path, b"not a mat file at all").unwrap();
        assert!(matches!(
            read_file(&path).unwrap_err(),
            DataError::Format { .. }
        ));

        let err = read(&dir.path().join("nowhere")).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
    }
}
