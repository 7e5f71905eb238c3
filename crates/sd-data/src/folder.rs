//! Image-folder data sets: `root/<split>/<class>/<image>.png|jpg`.
//!
//! The splits are `train` and `test`; other folders beside them are ignored. Class names are
//! the sub-folder names of `train`, sorted (by Unicode code point), and a class's label is its
//! rank in that order, so `airplane` is 0 and `truck` is 9 for CIFAR-10. The test split may
//! lack a class but may not add one. Within a class, images are taken in file-name order, so
//! the store does not depend on the order of a folder listing or of an archive.
//!
//! The root can be a folder, or a `.tar` / `.tar.gz` archive read as a stream without being
//! extracted. In an archive the root is found from the member paths: every image must sit at
//! `<prefix>/<split>/<class>/<file>` with one common prefix (`cifar10/` in the shared
//! CIFAR-10 JPEG archive and in Burn's own CIFAR download, which use this layout). Given a
//! folder, the root is that folder if it has a `train` folder, or else its only sub-folder.
//!
//! Images are recognised by their extension (`.png`, `.jpg`, `.jpeg`, any case); other files
//! are skipped. Every image must be 32x32; any other size is refused with the file named,
//! never resized. Grey-scale, grey-alpha, RGBA and 16-bit images are converted to 8-bit RGB
//! (alpha dropped, grey repeated in the three channels). A class folder without an image is
//! an error. Decoding runs on all cores.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::archive;
use crate::error::{DataError, entry_path};
use crate::store::{DecodedSet, IMAGE_BYTES, IMAGE_SIDE, ImageStore};

/// The split folders that are read.
const SPLITS: [&str; 2] = ["train", "test"];

/// Whether the last component of `name` has an image extension this reader decodes and is
/// not hidden (a leading `.`, as macOS's `._name.jpg` resource files).
pub fn is_image_name(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let lower = base.to_ascii_lowercase();
    !base.starts_with('.')
        && (lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg"))
}

/// Whether a folder name is hidden (`.git`, `.ipynb_checkpoints`): never a class.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Reads an image-folder data set from a folder or an archive at `path`.
pub fn read(path: &Path) -> Result<DecodedSet, DataError> {
    if path.is_dir() {
        read_dir(path)
    } else if path.is_file() {
        read_archive(path)
    } else {
        Err(DataError::Missing {
            path: path.to_path_buf(),
            what: "image-folder data set (folder or .tar/.tar.gz archive)".into(),
        })
    }
}

/// Where the bytes of one image come from.
pub enum ImageSource {
    /// A file to read.
    File(PathBuf),
    /// Bytes already read (from an archive), with the path to show in errors.
    Bytes(PathBuf, Vec<u8>),
}

/// The images of one split, grouped by class name, each list sorted by file name.
type Split = BTreeMap<String, Vec<(String, ImageSource)>>;

fn read_dir(path: &Path) -> Result<DecodedSet, DataError> {
    let root = find_root(path)?;
    let mut splits: Vec<Split> = Vec::new();
    for split in SPLITS {
        let split_dir = root.join(split);
        if !split_dir.is_dir() {
            return Err(DataError::Missing {
                path: split_dir,
                what: format!("the {split} split of an image-folder data set"),
            });
        }
        let mut classes = Split::new();
        for class_dir in sorted_entries(&split_dir)? {
            let class = file_name(&class_dir);
            if !class_dir.is_dir() || is_hidden(&class) {
                log::debug!("{}: not a class folder, skipped", class_dir.display());
                continue;
            }
            let mut images = Vec::new();
            for file in sorted_entries(&class_dir)? {
                let name = file_name(&file);
                if file.is_file() && is_image_name(&name) {
                    images.push((name, ImageSource::File(file)));
                } else {
                    log::debug!("{}: not an image, skipped", file.display());
                }
            }
            if images.is_empty() {
                return Err(DataError::EmptyClass { path: class_dir });
            }
            classes.insert(class, images);
        }
        splits.push(classes);
    }
    let test = splits.pop().expect("two splits");
    let train = splits.pop().expect("two splits");
    assemble(&root, train, test)
}

fn find_root(path: &Path) -> Result<PathBuf, DataError> {
    if path.join("train").is_dir() {
        return Ok(path.to_path_buf());
    }
    let subdirs: Vec<PathBuf> = sorted_entries(path)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    match subdirs.as_slice() {
        [only] if only.join("train").is_dir() => Ok(only.clone()),
        _ => Err(DataError::Missing {
            path: path.join("train"),
            what: "the train split of an image-folder data set".into(),
        }),
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        entries.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_archive(path: &Path) -> Result<DecodedSet, DataError> {
    let listing = archive::read_members(path, |p| {
        let parts: Vec<&str> = p.split('/').collect();
        let n = parts.len();
        n >= 3 && SPLITS.contains(&parts[n - 3]) && !is_hidden(parts[n - 2]) && is_image_name(p)
    })?;
    let mut prefix: Option<String> = None;
    let mut splits = [Split::new(), Split::new()];
    for member in listing.files {
        let parts: Vec<&str> = member.path.split('/').collect();
        let n = parts.len();
        let here = parts[..n - 3].join("/");
        match &prefix {
            None => prefix = Some(here),
            Some(p) if *p != here => {
                return Err(DataError::format(
                    path,
                    format!("images under two roots, {p:?} and {here:?}"),
                ));
            }
            Some(_) => {}
        }
        let split = usize::from(parts[n - 3] == "test");
        let (class, name) = (parts[n - 2].to_string(), parts[n - 1].to_string());
        let source = ImageSource::Bytes(entry_path(path, &member.path), member.data);
        splits[split].entry(class).or_default().push((name, source));
    }
    let Some(prefix) = prefix else {
        return Err(DataError::Missing {
            path: entry_path(path, "<root>/train/<class>/<image>"),
            what: "images in an image-folder layout".into(),
        });
    };
    let join = |rest: &str| {
        if prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{prefix}/{rest}")
        }
    };
    // class folders that exist in the archive but hold no image
    for (s, split) in SPLITS.iter().enumerate() {
        let base = join(split);
        for dir in &listing.dirs {
            if let Some(class) = dir.strip_prefix(&format!("{base}/"))
                && !class.contains('/')
                && !is_hidden(class)
                && !splits[s].contains_key(class)
            {
                return Err(DataError::EmptyClass {
                    path: entry_path(path, dir),
                });
            }
        }
    }
    let [mut train, mut test] = splits;
    if train.is_empty() || test.is_empty() {
        let split = if train.is_empty() { "train" } else { "test" };
        return Err(DataError::Missing {
            path: entry_path(path, &join(split)),
            what: format!("the {split} split of an image-folder data set"),
        });
    }
    for classes in [&mut train, &mut test] {
        for images in classes.values_mut() {
            images.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    assemble(&entry_path(path, &prefix), train, test)
}

/// Labels the splits by the sorted train classes and decodes them.
fn assemble(root: &Path, train: Split, test: Split) -> Result<DecodedSet, DataError> {
    let classes: Vec<String> = train.keys().cloned().collect();
    if classes.len() > usize::from(u16::MAX) + 1 {
        return Err(DataError::format(
            root.join("train"),
            format!(
                "{} class folders; at most 65536 are supported",
                classes.len()
            ),
        ));
    }
    let known: BTreeSet<&String> = classes.iter().collect();
    if let Some(extra) = test.keys().find(|c| !known.contains(c)) {
        return Err(DataError::format(
            root.join("test").join(extra),
            "the test split has a class that the train split lacks",
        ));
    }
    let label_of = |class: &String| {
        classes
            .iter()
            .position(|c| c == class)
            .expect("class was checked") as u16
    };
    let mut stores = Vec::new();
    for split in [train, test] {
        let mut jobs = Vec::new();
        let mut labels = Vec::new();
        for (class, images) in split {
            let label = label_of(&class);
            for (_, source) in images {
                jobs.push(source);
                labels.push(label);
            }
        }
        let pixels = decode_all(jobs)?;
        stores.push(ImageStore::new(pixels, labels, classes.clone()));
    }
    let test = stores.pop().expect("two stores");
    let train = stores.pop().expect("two stores");
    Ok(DecodedSet {
        train,
        test,
        extra: None,
    })
}

/// Decodes every image into one CHW pixel buffer, on all available cores. The error
/// reported, if any, is that of the first failing image in `jobs` order.
pub fn decode_all(jobs: Vec<ImageSource>) -> Result<Vec<u8>, DataError> {
    let mut pixels = vec![0u8; jobs.len() * IMAGE_BYTES];
    if jobs.is_empty() {
        return Ok(pixels);
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(jobs.len());
    let per = jobs.len().div_ceil(threads);
    let errors: Vec<Option<DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .zip(pixels.chunks_mut(per * IMAGE_BYTES))
            .map(|(sources, out)| {
                scope.spawn(move || {
                    for (source, out) in sources.iter().zip(out.chunks_exact_mut(IMAGE_BYTES)) {
                        let result = match source {
                            ImageSource::Bytes(path, bytes) => guarded(bytes, path, out),
                            ImageSource::File(path) => fs::read(path)
                                .map_err(|e| DataError::io(path, e))
                                .and_then(|bytes| guarded(&bytes, path, out)),
                        };
                        if let Err(err) = result {
                            return Some(err);
                        }
                    }
                    None
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a decoding thread panicked"))
            .collect()
    });
    match errors.into_iter().flatten().next() {
        Some(err) => Err(err),
        None => Ok(pixels),
    }
}

/// [`decode_image`], with a panic inside the image decoder turned into an error for `path`
/// (a malformed file must not take the process down).
fn guarded(bytes: &[u8], path: &Path, out: &mut [u8]) -> Result<(), DataError> {
    let run = std::panic::AssertUnwindSafe(|| decode_image(bytes, path, out));
    std::panic::catch_unwind(run).unwrap_or_else(|_| {
        Err(DataError::Image {
            path: path.to_path_buf(),
            problem: "the image decoder panicked on this file".into(),
        })
    })
}

/// Decodes one PNG or JPEG image of 32x32 pixels into 3072 CHW bytes.
pub fn decode_image(bytes: &[u8], path: &Path, out: &mut [u8]) -> Result<(), DataError> {
    let image = image::load_from_memory(bytes).map_err(|e| DataError::Image {
        path: path.to_path_buf(),
        problem: format!("cannot decode image: {e}"),
    })?;
    let (width, height) = (image.width(), image.height());
    if width as usize != IMAGE_SIDE || height as usize != IMAGE_SIDE {
        return Err(DataError::Image {
            path: path.to_path_buf(),
            problem: format!("image is {width}x{height}, expected 32x32"),
        });
    }
    let rgb = image.into_rgb8();
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    for (p, pixel) in rgb.pixels().enumerate() {
        out[p] = pixel[0];
        out[plane + p] = pixel[1];
        out[2 * plane + p] = pixel[2];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TarBuilder, TempDir, encode_image, test_image};
    use image::ImageFormat;

    fn png(seed: u8) -> Vec<u8> {
        encode_image(&test_image(seed), 32, ImageFormat::Png)
    }

    /// root/{train,test}/{cat,dog,ant}/NNNN.png with 2 train and 1 test image per class.
    fn write_tree(root: &Path) {
        for (s, split) in ["train", "test"].iter().enumerate() {
            for (c, class) in ["cat", "dog", "ant"].iter().enumerate() {
                let dir = root.join(split).join(class);
                fs::create_dir_all(&dir).unwrap();
                for k in 0..2 - s {
                    let seed = (10 * s + 3 * c + k) as u8;
                    fs::write(dir.join(format!("{k:04}.png")), png(seed)).unwrap();
                }
            }
        }
    }

    #[test]
    fn a_folder_tree_is_read_with_sorted_classes() {
        let dir = TempDir::new("folder-tree");
        let root = dir.path().join("data");
        write_tree(&root);
        fs::write(root.join("train/cat/notes.txt"), b"not an image").unwrap();
        let set = read(&root).unwrap();
        assert_eq!(set.train.classes(), &["ant", "cat", "dog"]);
        assert_eq!(set.train.labels(), &[0, 0, 1, 1, 2, 2]);
        assert_eq!(set.test.labels(), &[0, 1, 2]);
        // ant (c = 2), image 1 in train: seed 7; PNG is lossless
        assert_eq!(set.train.image(1), &test_image(7)[..]);
        // the parent folder with one sub-folder works too
        assert_eq!(read(dir.path()).unwrap(), set);
    }

    #[test]
    fn the_same_tree_reads_from_an_archive() {
        let dir = TempDir::new("folder-archive");
        let root = dir.path().join("data");
        write_tree(&root);
        let from_dir = read(&root).unwrap();
        let mut tar = TarBuilder::new();
        // members out of order: the reader sorts
        for split in ["test", "train"] {
            for class in ["dog", "cat", "ant"] {
                tar.dir(&format!("cifar/{split}/{class}/"));
                for k in (0..2).rev() {
                    let file = root.join(split).join(class).join(format!("{k:04}.png"));
                    if let Ok(bytes) = fs::read(&file) {
                        tar.file(&format!("cifar/{split}/{class}/{k:04}.png"), &bytes);
                    }
                }
            }
        }
        let path = dir.path().join("d.tar.gz");
        tar.write(&path, true);
        assert_eq!(read(&path).unwrap(), from_dir);
    }

    #[test]
    fn jpeg_and_non_rgb_images_are_converted() {
        let dir = TempDir::new("folder-convert");
        let root = dir.path();
        for split in ["train", "test"] {
            let class = root.join(split).join("a");
            fs::create_dir_all(&class).unwrap();
            fs::write(
                class.join("0.jpg"),
                encode_image(&test_image(1), 32, ImageFormat::Jpeg),
            )
            .unwrap();
            let grey = image::GrayImage::from_pixel(32, 32, image::Luma([77]));
            grey.save(class.join("1.png")).unwrap();
            let rgba = image::RgbaImage::from_pixel(32, 32, image::Rgba([1, 2, 3, 4]));
            rgba.save(class.join("2.PNG")).unwrap();
        }
        let set = read(root).unwrap();
        assert_eq!(set.train.len(), 3);
        assert!(set.train.image(1).iter().all(|&p| p == 77));
        assert_eq!(set.train.image(2)[0], 1);
        assert_eq!(set.train.image(2)[1024], 2);
        assert_eq!(set.train.image(2)[2048], 3);
        // JPEG is lossy: close to the source, not equal
        let diff: i64 = set
            .train
            .image(0)
            .iter()
            .zip(test_image(1))
            .map(|(&a, b)| (i64::from(a) - i64::from(b)).abs())
            .sum();
        assert!(diff / 3072 < 40, "mean abs difference {}", diff / 3072);
    }

    #[test]
    fn bad_images_and_layouts_are_errors_naming_the_file() {
        let dir = TempDir::new("folder-bad");
        let root = dir.path().join("d");

        write_tree(&root);
        fs::write(
            root.join("train/dog/0001.png"),
            b"\x89PNG\r\n\x1a\n garbage",
        )
        .unwrap();
        let err = read(&root).unwrap_err();
        assert!(matches!(err, DataError::Image { .. }), "{err}");
        assert!(err.to_string().contains("train/dog/0001.png"), "{err}");

        write_tree(&root);
        let big = encode_image(&vec![9u8; 3 * 40 * 40], 40, ImageFormat::Png);
        fs::write(root.join("test/cat/0000.png"), big).unwrap();
        let err = read(&root).unwrap_err();
        assert!(
            err.to_string().contains("image is 40x40, expected 32x32"),
            "{err}"
        );
        assert!(err.to_string().contains("test/cat/0000.png"), "{err}");

        write_tree(&root);
        fs::create_dir_all(root.join("train/eel")).unwrap();
        let err = read(&root).unwrap_err();
        assert!(matches!(err, DataError::EmptyClass { .. }), "{err}");
        assert!(err.to_string().contains("train/eel"), "{err}");
        fs::remove_dir(root.join("train/eel")).unwrap();

        fs::create_dir_all(root.join("test/eel")).unwrap();
        fs::write(root.join("test/eel/0.png"), png(1)).unwrap();
        let err = read(&root).unwrap_err();
        assert!(err.to_string().contains("test split has a class"), "{err}");
        fs::remove_dir_all(root.join("test/eel")).unwrap();

        fs::remove_dir_all(root.join("test")).unwrap();
        let err = read(&root).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");

        let err = read(&dir.path().join("absent")).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn a_corrupt_jpeg_and_mixed_image_sizes_are_refused() {
        let dir = TempDir::new("folder-jpeg");
        let root = dir.path();
        write_tree(root);
        let jpeg = encode_image(&test_image(3), 32, ImageFormat::Jpeg);
        // a JPEG cut after its headers: start-of-image and tables, no scan data
        fs::write(root.join("train/cat/0002.jpg"), &jpeg[..jpeg.len() / 4]).unwrap();
        let err = read(root).unwrap_err();
        assert!(matches!(err, DataError::Image { .. }), "{err}");
        assert!(err.to_string().contains("train/cat/0002.jpg"), "{err}");

        // the same class holding 32x32 and 16x16 images
        let small = encode_image(&vec![1u8; 3 * 16 * 16], 16, ImageFormat::Jpeg);
        fs::write(root.join("train/cat/0002.jpg"), small).unwrap();
        let err = read(root).unwrap_err();
        assert!(
            err.to_string().contains("image is 16x16, expected 32x32"),
            "{err}"
        );
    }

    #[test]
    fn hidden_files_and_folders_are_not_data() {
        let dir = TempDir::new("folder-hidden");
        let root = dir.path();
        write_tree(root);
        fs::write(root.join("train/cat/._0000.png"), b"resource fork").unwrap();
        fs::create_dir_all(root.join("train/.ipynb_checkpoints")).unwrap();
        let set = read(root).unwrap();
        assert_eq!(set.train.classes(), &["ant", "cat", "dog"]);
        assert_eq!(set.train.len(), 6);
        assert!(!is_image_name("a/b/._x.jpg"));
        assert!(is_image_name("a/b/x.JPEG"));
    }

    #[test]
    fn archive_layout_errors_are_reported() {
        let dir = TempDir::new("folder-archive-bad");
        let path = dir.path().join("x.tar");

        let mut tar = TarBuilder::new();
        tar.file("a/train/cat/0.png", &png(1));
        tar.file("b/test/cat/0.png", &png(2));
        tar.write(&path, false);
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("two roots"), "{err}");

        let mut tar = TarBuilder::new();
        tar.file("r/train/cat/0.png", &png(1));
        tar.dir("r/train/dog/");
        tar.file("r/test/cat/0.png", &png(2));
        tar.write(&path, false);
        let err = read(&path).unwrap_err();
        assert!(matches!(err, DataError::EmptyClass { .. }), "{err}");
        assert!(err.to_string().contains("r/train/dog"), "{err}");

        let mut tar = TarBuilder::new();
        tar.file("r/train/cat/0.png", &png(1));
        tar.file("r/test/cat/0.png", b"not a png");
        tar.write(&path, false);
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("x.tar[r/test/cat/0.png]"), "{err}");

        let mut tar = TarBuilder::new();
        tar.file("readme.txt", b"no images");
        tar.write(&path, false);
        assert!(matches!(
            read(&path).unwrap_err(),
            DataError::Missing { .. }
        ));
    }
}
