//! CIFAR-10 and CIFAR-100 from the official binary releases.
//!
//! `cifar-10-binary.tar.gz` holds `cifar-10-batches-bin/data_batch_{1..5}.bin`,
//! `test_batch.bin` and `batches.meta.txt` (the class names, one a line). Each `.bin` file is a
//! sequence of 3073-byte records: one label byte, then 3072 pixel bytes, the 1024 red values
//! row by row, then green, then blue, which is the CHW order of [`ImageStore`].
//!
//! `cifar-100-binary.tar.gz` holds `cifar-100-binary/train.bin` and `test.bin` with 3074-byte
//! records (coarse label byte, fine label byte, 3072 pixels), and `fine_label_names.txt` and
//! `coarse_label_names.txt`. The fine labels (100 classes) are used unless
//! [`Cifar100Labels::Coarse`] (20 super-classes) is asked for.
//!
//! Either release is read straight from the archive (`.tar.gz` or `.tar`), without extracting
//! it, or from a folder holding the extracted files (the folder itself, or its
//! `cifar-10-batches-bin` / `cifar-100-binary` sub-folder). Files are found by name, wherever
//! they sit in the archive.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::config::Config;

use crate::archive;
use crate::error::{DataError, entry_path};
use crate::store::{DecodedSet, IMAGE_BYTES, ImageStore};

/// Which CIFAR-100 labels become the targets.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 100 fine classes (the paper's CIFAR-100 results).
    Fine,
    /// The 20 coarse super-classes.
    Coarse,
}

/// Which CIFAR release to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarVariant {
    /// CIFAR-10.
    Cifar10,
    /// CIFAR-100 with the given labels.
    Cifar100(Cifar100Labels),
}

/// The CIFAR-10 class names in label order, as in `batches.meta.txt`; used when that file is
/// missing from a user's folder.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

struct Layout {
    train: &'static [&'static str],
    test: &'static str,
    names: &'static str,
    label_bytes: usize,
    label_index: usize,
    classes: usize,
}

impl CifarVariant {
    fn layout(self) -> Layout {
        match self {
            CifarVariant::Cifar10 => Layout {
                train: &[
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                test: "test_batch.bin",
                names: "batches.meta.txt",
                label_bytes: 1,
                label_index: 0,
                classes: 10,
            },
            CifarVariant::Cifar100(labels) => Layout {
                train: &["train.bin"],
                test: "test.bin",
                names: match labels {
                    Cifar100Labels::Fine => "fine_label_names.txt",
                    Cifar100Labels::Coarse => "coarse_label_names.txt",
                },
                label_bytes: 2,
                label_index: match labels {
                    Cifar100Labels::Coarse => 0,
                    Cifar100Labels::Fine => 1,
                },
                classes: match labels {
                    Cifar100Labels::Fine => 100,
                    Cifar100Labels::Coarse => 20,
                },
            },
        }
    }

    /// The sub-folder the official archive extracts to.
    fn folder(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "cifar-10-batches-bin",
            CifarVariant::Cifar100(_) => "cifar-100-binary",
        }
    }

    fn name(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "CIFAR-10",
            CifarVariant::Cifar100(_) => "CIFAR-100",
        }
    }
}

/// Whether `path` (an archive or a folder) holds the binary release of `variant`: an archive
/// member or a file named like its first training batch.
pub fn looks_like_binary_release(path: &Path, variant: CifarVariant) -> Result<bool, DataError> {
    let first = variant.layout().train[0];
    if path.is_dir() {
        return Ok(find_folder(path, variant).is_some());
    }
    let listing = archive::read_members(path, |_| false)?;
    Ok(listing.all_files.iter().any(|p| file_name(p) == first))
}

/// Reads the binary release of `variant` from an archive or folder at `path`.
pub fn read(path: &Path, variant: CifarVariant) -> Result<DecodedSet, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
            what: format!("{} binary release (archive or folder)", variant.name()),
        });
    }
    let layout = variant.layout();
    let mut files: BTreeMap<&'static str, (PathBuf, Vec<u8>)> = BTreeMap::new();
    let wanted: Vec<&'static str> = layout
        .train
        .iter()
        .copied()
        .chain([layout.test, layout.names])
        .collect();

    if path.is_dir() {
        let folder = find_folder(path, variant).ok_or_else(|| DataError::Missing {
            path: path.join(layout.train[0]),
            what: format!("{} member {}", variant.name(), layout.train[0]),
        })?;
        for &name in &wanted {
            let file = folder.join(name);
            match fs::read(&file) {
                Ok(bytes) => {
                    files.insert(name, (file, bytes));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DataError::io(&file, e)),
            }
        }
    } else {
        let listing = archive::read_members(path, |p| wanted.contains(&file_name(p)))?;
        for member in listing.files {
            let name = *wanted
                .iter()
                .find(|&&w| w == file_name(&member.path))
                .expect("the filter only keeps wanted names");
            if files.contains_key(name) {
                return Err(DataError::format(
                    path,
                    format!("archive holds more than one {name}"),
                ));
            }
            files.insert(name, (entry_path(path, &member.path), member.data));
        }
    }

    let missing = |name: &str| DataError::Missing {
        path: path.join(variant.folder()).join(name),
        what: format!("{} member {name}", variant.name()),
    };
    let classes = match files.get(layout.names) {
        Some((file, bytes)) => parse_names(file, bytes, layout.classes)?,
        None => {
            log::warn!(
                "{}: no {}; using built-in class names",
                path.display(),
                layout.names
            );
            default_names(variant, layout.classes)
        }
    };

    let mut train = ImageStore::empty(classes.clone());
    for &name in layout.train {
        let (file, bytes) = files.get(name).ok_or_else(|| missing(name))?;
        train = train.concat(&parse_records(file, bytes, &layout, &classes)?);
    }
    let (file, bytes) = files.get(layout.test).ok_or_else(|| missing(layout.test))?;
    let test = parse_records(file, bytes, &layout, &classes)?;
    Ok(DecodedSet {
        train,
        test,
        extra: None,
    })
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn find_folder(path: &Path, variant: CifarVariant) -> Option<PathBuf> {
    let first = variant.layout().train[0];
    [path.to_path_buf(), path.join(variant.folder())]
        .into_iter()
        .find(|dir| dir.join(first).is_file())
}

fn default_names(variant: CifarVariant, classes: usize) -> Vec<String> {
    match variant {
        CifarVariant::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        CifarVariant::Cifar100(_) => (0..classes).map(|i| format!("class_{i:02}")).collect(),
    }
}

/// One class name a line; blank lines (the files end with some) are dropped.
fn parse_names(file: &Path, bytes: &[u8], expected: usize) -> Result<Vec<String>, DataError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| DataError::format(file, "class-name file is not UTF-8 text"))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != expected {
        return Err(DataError::format(
            file,
            format!("holds {} class names, expected {expected}", names.len()),
        ));
    }
    Ok(names)
}

fn parse_records(
    file: &Path,
    bytes: &[u8],
    layout: &Layout,
    classes: &[String],
) -> Result<ImageStore, DataError> {
    let row = layout.label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || !bytes.len().is_multiple_of(row) {
        return Err(DataError::format(
            file,
            format!(
                "length {} is not a positive multiple of the {row}-byte record \
                 (file truncated or not a CIFAR batch)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / row;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (record, chunk) in bytes.chunks_exact(row).enumerate() {
        let label = chunk[layout.label_index];
        if usize::from(label) >= layout.classes {
            return Err(DataError::Label {
                path: file.to_path_buf(),
                record,
                label: i64::from(label),
                classes: layout.classes,
            });
        }
        labels.push(u16::from(label));
        pixels.extend_from_slice(&chunk[layout.label_bytes..]);
    }
    Ok(ImageStore::new(pixels, labels, classes.to_vec()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{TarBuilder, TempDir, cifar_row, test_image};

    /// The members of a miniature CIFAR-10 release: `per_batch` images in each of the five
    /// training batches and in the test batch; image `k` of batch `b` has label
    /// `(b + k) % 10` and pixels `test_image(10 * b + k)`.
    pub fn cifar10_members(per_batch: usize) -> Vec<(String, Vec<u8>)> {
        let mut members = Vec::new();
        let names: String = CIFAR10_CLASSES.iter().map(|n| format!("{n}\n")).collect();
        members.push((
            "batches.meta.txt".to_string(),
            format!("{names}\n").into_bytes(),
        ));
        for b in 0..6 {
            let mut bytes = Vec::new();
            for k in 0..per_batch {
                let label = ((b + k) % 10) as u8;
                bytes.extend(cifar_row(&[label], &test_image((10 * b + k) as u8)));
            }
            let name = if b < 5 {
                format!("data_batch_{}.bin", b + 1)
            } else {
                "test_batch.bin".to_string()
            };
            members.push((name, bytes));
        }
        members
    }

    pub fn write_cifar10_archive(path: &Path, per_batch: usize, gzip: bool) {
        let mut tar = TarBuilder::new();
        tar.dir("cifar-10-batches-bin/");
        for (name, bytes) in cifar10_members(per_batch) {
            tar.file(&format!("cifar-10-batches-bin/{name}"), &bytes);
        }
        tar.file("cifar-10-batches-bin/readme.html", b"<html></html>");
        tar.write(path, gzip);
    }

    #[test]
    fn cifar10_reads_from_an_archive_and_a_folder_alike() {
        let dir = TempDir::new("cifar10");
        let archive = dir.path().join("cifar-10-binary.tar.gz");
        write_cifar10_archive(&archive, 3, true);
        let from_archive = read(&archive, CifarVariant::Cifar10).unwrap();
        assert_eq!(from_archive.train.len(), 15);
        assert_eq!(from_archive.test.len(), 3);
        assert_eq!(from_archive.train.classes()[9], "truck");
        // batch 2 (b = 1), image 2: label 3, pixels test_image(12)
        assert_eq!(from_archive.train.label(5), 3);
        assert_eq!(from_archive.train.image(5), &test_image(12)[..]);

        let folder = dir.path().join("extracted");
        crate::archive::extract(&archive, &folder).unwrap();
        let from_folder = read(&folder, CifarVariant::Cifar10).unwrap();
        assert_eq!(from_folder, from_archive);
        assert!(looks_like_binary_release(&archive, CifarVariant::Cifar10).unwrap());
    }

    #[test]
    fn cifar100_reads_fine_or_coarse_labels() {
        let dir = TempDir::new("cifar100");
        let fine: String = (0..100).map(|i| format!("fine{i}\n")).collect();
        let coarse: String = (0..20).map(|i| format!("coarse{i}\n")).collect();
        let mut train = Vec::new();
        for k in 0..4u8 {
            train.extend(cifar_row(&[k, 90 + k], &test_image(k)));
        }
        let test = cifar_row(&[19, 99], &test_image(9));
        let mut tar = TarBuilder::new();
        tar.file("cifar-100-binary/fine_label_names.txt", fine.as_bytes());
        tar.file("cifar-100-binary/coarse_label_names.txt", coarse.as_bytes());
        tar.file("cifar-100-binary/train.bin", &train);
        tar.file("cifar-100-binary/test.bin", &test);
        let path = dir.path().join("cifar-100-binary.tar");
        tar.write(&path, false);

        let set = read(&path, CifarVariant::Cifar100(Cifar100Labels::Fine)).unwrap();
        assert_eq!(set.train.labels(), &[90, 91, 92, 93]);
        assert_eq!(set.train.classes().len(), 100);
        assert_eq!(set.test.label(0), 99);
        let set = read(&path, CifarVariant::Cifar100(Cifar100Labels::Coarse)).unwrap();
        assert_eq!(set.train.labels(), &[0, 1, 2, 3]);
        assert_eq!(set.train.classes()[19], "coarse19");
        assert_eq!(set.train.image(2), &test_image(2)[..]);
    }

    #[test]
    fn a_batch_of_the_wrong_length_is_refused() {
        let dir = TempDir::new("cifar-len");
        for (name, bytes) in cifar10_members(2) {
            let bytes = if name == "data_batch_3.bin" {
                bytes[..bytes.len() - 5].to_vec()
            } else {
                bytes
            };
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        let err = read(dir.path(), CifarVariant::Cifar10).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("data_batch_3.bin"), "{text}");
        assert!(text.contains("length 6141"), "{text}");
    }

    #[test]
    fn a_label_out_of_range_names_file_and_record() {
        let dir = TempDir::new("cifar-label");
        for (name, mut bytes) in cifar10_members(2) {
            if name == "test_batch.bin" {
                bytes[3073] = 10;
            }
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        let err = read(dir.path(), CifarVariant::Cifar10).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Label {
                    record: 1,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("test_batch.bin"));
    }

    #[test]
    fn missing_members_and_paths_are_named() {
        let dir = TempDir::new("cifar-missing");
        for (name, bytes) in cifar10_members(1) {
            if name != "data_batch_4.bin" {
                fs::write(dir.path().join(name), bytes).unwrap();
            }
        }
        let err = read(dir.path(), CifarVariant::Cifar10).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        assert!(err.to_string().contains("data_batch_4.bin"), "{err}");

        let err = read(&dir.path().join("nope.tar.gz"), CifarVariant::Cifar10).unwrap_err();
        assert!(err.to_string().contains("nope.tar.gz"), "{err}");
    }

    #[test]
    fn a_wrong_class_name_count_is_refused() {
        let dir = TempDir::new("cifar-names");
        for (name, bytes) in cifar10_members(1) {
            let bytes = if name == "batches.meta.txt" {
                b"a\nb\n".to_vec()
            } else {
                bytes
            };
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        let err = read(dir.path(), CifarVariant::Cifar10).unwrap_err();
        assert!(
            err.to_string().contains("holds 2 class names, expected 10"),
            "{err}"
        );
    }
}
