//! Reading `.tar` and `.tar.gz` archives: streamed member by member, or extracted safely.
//!
//! Compression is recognised by the gzip magic bytes, not by the file name. Every member path
//! is checked before it is used: an absolute path or a `..` component is refused with
//! [`DataError::UnsafeEntry`], whether the archive is streamed or extracted. Links and device
//! files are refused by [`extract`]; when streaming they are skipped with a warning, since
//! nothing is written then.
//!
//! A truncated archive is an error, never a shorter data set: a member cut short, a gzip stream
//! without its trailer, or a plain tar that ends without the end-of-archive block all fail.
//! (A plain `.tar` cut exactly after its last block header *and* followed by zeros cannot be
//! told apart from a smaller archive; no archive tool writes such files.)

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, entry_path};

/// Whether the file name looks like an archive this module reads (`.tar`, `.tar.gz`, `.tgz`).
pub fn is_archive_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// One regular file read from an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its normalised path inside the archive (`/`-separated, no `.` components).
    pub path: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// What [`read_members`] found.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The regular files accepted by the filter, in archive order.
    pub files: Vec<Member>,
    /// The normalised paths of all directory members.
    pub dirs: Vec<String>,
    /// The normalised paths of all regular files, read or not.
    pub all_files: Vec<String>,
}

/// Reads `archive` in one pass, keeping the bytes of each regular file whose normalised path
/// passes `keep`.
pub fn read_members(archive: &Path, keep: impl Fn(&str) -> bool) -> Result<Listing, DataError> {
    if archive.is_file() && !is_archive_name(archive) {
        return Err(DataError::format(
            archive,
            "not a folder, nor an archive named .tar, .tar.gz or .tgz",
        ));
    }
    let mut listing = Listing::default();
    walk(archive, |path, kind, entry| {
        match kind {
            Kind::Dir => listing.dirs.push(path.to_string()),
            Kind::File => {
                listing.all_files.push(path.to_string());
                if keep(path) {
                    let data = read_entry(archive, path, entry)?;
                    listing.files.push(Member {
                        path: path.to_string(),
                        data,
                    });
                }
            }
        }
        Ok(())
    })?;
    Ok(listing)
}

/// Extracts `archive` into `target` (created if needed) and returns the number of files
/// written.
///
/// Refuses, with [`DataError::UnsafeEntry`], members with an absolute path or a `..`
/// component, symbolic and hard links, and device files; refuses to write through a symbolic
/// link already present under `target`. On any error the files written so far are removed.
pub fn extract(archive: &Path, target: &Path) -> Result<usize, DataError> {
    fs::create_dir_all(target).map_err(|e| DataError::io(target, e))?;
    let root = target
        .canonicalize()
        .map_err(|e| DataError::io(target, e))?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = walk_with_links(archive, true, |path, kind, entry| {
        let dest = root.join(path);
        match kind {
            Kind::Dir => {
                create_inside(&root, &dest, archive, path)?;
            }
            Kind::File => {
                let parent = dest.parent().unwrap_or(&root).to_path_buf();
                create_inside(&root, &parent, archive, path)?;
                if let Ok(meta) = fs::symlink_metadata(&dest)
                    && (meta.file_type().is_symlink() || meta.is_dir())
                {
                    return Err(DataError::UnsafeEntry {
                        archive: archive.to_path_buf(),
                        member: path.to_string(),
                        problem: format!("{} already exists as a link or folder", dest.display()),
                    });
                }
                let data = read_entry(archive, path, entry)?;
                written.push(dest.clone());
                fs::write(&dest, data).map_err(|e| DataError::io(&dest, e))?;
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(written.len()),
        Err(err) => {
            for file in &written {
                let _ = fs::remove_file(file);
            }
            Err(err)
        }
    }
}

/// Creates `dir` and checks that, links resolved, it lies inside `root`.
fn create_inside(root: &Path, dir: &Path, archive: &Path, member: &str) -> Result<(), DataError> {
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let real = dir.canonicalize().map_err(|e| DataError::io(dir, e))?;
    if !real.starts_with(root) {
        return Err(DataError::UnsafeEntry {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            problem: format!(
                "its folder resolves to {}, outside the target",
                real.display()
            ),
        });
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

/// Reads the rest of an entry and checks it has the size its header announced.
fn read_entry(archive: &Path, path: &str, entry: &mut dyn Read) -> Result<Vec<u8>, DataError> {
    let mut data = Vec::new();
    entry
        .read_to_end(&mut data)
        .map_err(|e| archive_error(archive, path, e))?;
    Ok(data)
}

fn archive_error(archive: &Path, member: &str, err: io::Error) -> DataError {
    let problem = match err.kind() {
        io::ErrorKind::UnexpectedEof => "archive is truncated".to_string(),
        _ => format!("archive is corrupt: {err}"),
    };
    DataError::format(entry_path(archive, member), problem)
}

/// Streams the members, skipping links with a warning.
fn walk(
    archive: &Path,
    visit: impl FnMut(&str, Kind, &mut dyn Read) -> Result<(), DataError>,
) -> Result<(), DataError> {
    walk_with_links(archive, false, visit)
}

/// Streams the members of `archive`; with `refuse_links`, links are errors instead of skipped.
fn walk_with_links(
    archive: &Path,
    refuse_links: bool,
    mut visit: impl FnMut(&str, Kind, &mut dyn Read) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let file = File::open(archive).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DataError::Missing {
            path: archive.to_path_buf(),
            what: "archive".into(),
        },
        _ => DataError::io(archive, e),
    })?;
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    let head = buffered.fill_buf().map_err(|e| DataError::io(archive, e))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let eof = Rc::new(Cell::new(false));
    let mut tar = tar::Archive::new(EofFlag {
        inner,
        eof: eof.clone(),
    });
    let whole = |e: io::Error| -> DataError {
        let problem = match e.kind() {
            io::ErrorKind::UnexpectedEof => "archive is truncated".to_string(),
            _ if gzip && e.kind() == io::ErrorKind::InvalidInput => {
                format!("gzip stream is corrupt: {e}")
            }
            _ => format!("archive is corrupt: {e}"),
        };
        DataError::format(archive, problem)
    };
    let entries = tar.entries().map_err(whole)?;
    let mut last = String::from("(start of archive)");
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            let err = whole(e);
            match err {
                DataError::Format { problem, .. } => {
                    DataError::format(archive, format!("{problem} (after member {last})"))
                }
                other => other,
            }
        })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        let path = safe_member_path(archive, &raw)?;
        last = raw.clone();
        if kind.is_symlink() || kind.is_hard_link() {
            if refuse_links {
                return Err(DataError::UnsafeEntry {
                    archive: archive.to_path_buf(),
                    member: raw,
                    problem: "links are not extracted".into(),
                });
            }
            log::warn!("{}: skipping link member {raw:?}", archive.display());
            continue;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            return Err(DataError::UnsafeEntry {
                archive: archive.to_path_buf(),
                member: raw,
                problem: "device and fifo members are not allowed".into(),
            });
        }
        if kind.is_pax_global_extensions() {
            continue;
        }
        if kind.is_gnu_sparse() {
            return Err(DataError::format(
                entry_path(archive, &raw),
                "sparse members are not supported",
            ));
        }
        if kind.is_dir() {
            if !path.is_empty() {
                visit(&path, Kind::Dir, &mut entry)?;
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            log::warn!(
                "{}: skipping member {raw:?} of type {kind:?}",
                archive.display()
            );
            continue;
        }
        if path.is_empty() {
            return Err(DataError::format(
                archive,
                format!("member {raw:?} has no name"),
            ));
        }
        let size = entry.size();
        let mut counted = CountingReader {
            inner: &mut entry,
            count: 0,
        };
        visit(&path, Kind::File, &mut counted)?;
        // drain what the visitor left, then check the announced size was there
        io::copy(&mut counted, &mut io::sink()).map_err(|e| archive_error(archive, &raw, e))?;
        if counted.count != size {
            return Err(DataError::format(
                entry_path(archive, &raw),
                format!(
                    "archive is truncated: member has {} of its {size} bytes",
                    counted.count
                ),
            ));
        }
    }
    if eof.get() {
        return Err(DataError::format(
            archive,
            format!(
                "archive is truncated: it ends without the end-of-archive block (after member {last})"
            ),
        ));
    }
    // read the tail so that gzip checks its trailer (CRC and length)
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(whole)?;
    Ok(())
}

/// Normalises a member path, refusing absolute paths and `..` components.
pub fn safe_member_path(archive: &Path, raw: &str) -> Result<String, DataError> {
    let refuse = |problem: &str| DataError::UnsafeEntry {
        archive: archive.to_path_buf(),
        member: raw.to_string(),
        problem: problem.to_string(),
    };
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(refuse("absolute path"));
    }
    if raw.contains('\0') {
        return Err(refuse("NUL byte in path"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refuse("path climbs out with `..`")),
            p if p.len() >= 2 && p.as_bytes()[1] == b':' && parts.is_empty() => {
                return Err(refuse("drive-letter path"));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Records whether the stream below the tar reader ever reached its end.
struct EofFlag {
    inner: Box<dyn Read>,
    eof: Rc<Cell<bool>>,
}

impl Read for EofFlag {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        Ok(n)
    }
}

struct CountingReader<'a, R: Read> {
    inner: &'a mut R,
    count: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TarBuilder, TempDir};

    #[test]
    fn members_are_read_from_plain_and_gzipped_tars() {
        let dir = TempDir::new("archive-read");
        let mut tar = TarBuilder::new();
        tar.dir("root/");
        tar.file("./root/a.txt", b"alpha");
        tar.file("root/sub/b.bin", &[1, 2, 3]);
        for gz in [false, true] {
            let path = dir.path().join(if gz { "x.tar.gz" } else { "x.tar" });
            tar.write(&path, gz);
            let listing = read_members(&path, |p| p.ends_with(".txt")).unwrap();
            assert_eq!(listing.files.len(), 1);
            assert_eq!(listing.files[0].path, "root/a.txt");
            assert_eq!(listing.files[0].data, b"alpha");
            assert_eq!(listing.dirs, vec!["root"]);
            assert_eq!(listing.all_files, vec!["root/a.txt", "root/sub/b.bin"]);
        }
    }

    #[test]
    fn truncated_archives_are_errors() {
        let dir = TempDir::new("archive-truncated");
        let mut tar = TarBuilder::new();
        tar.file("big.bin", &vec![7u8; 5000]);
        tar.file("after.bin", &[1]);
        let bytes = tar.bytes();
        for (name, cut) in [("member.tar", 512 + 3000), ("tail.tar", bytes.len() - 1024)] {
            let path = dir.path().join(name);
            fs::write(&path, &bytes[..cut]).unwrap();
            let err = read_members(&path, |_| true).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{name}: {err}");
        }
        // a gzip stream cut in the middle
        let path = dir.path().join("x.tar.gz");
        tar.write(&path, true);
        let gz = fs::read(&path).unwrap();
        fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let err = read_members(&path, |_| true).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_an_archive_is_named_as_such() {
        let dir = std::env::temp_dir().join(format!("sd-data-notar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("notes.md");
        std::fs::write(&file, "# not an archive\n").unwrap();
        let err = read_members(&file, |_| true).unwrap_err().to_string();
        assert!(
            err.contains("notes.md") && err.contains("not a folder"),
            "{err}"
        );
        assert!(
            !err.contains("not an archive\n"),
            "the file's bytes stay out: {err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_gzip_is_an_error() {
        let dir = TempDir::new("archive-badgz");
        let path = dir.path().join("bad.tar.gz");
        let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        bytes.extend_from_slice(b"this is not deflate data at all");
        fs::write(&path, bytes).unwrap();
        let err = read_members(&path, |_| true).unwrap_err();
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
        assert!(matches!(err, DataError::Format { .. }), "{err}");
    }

    #[test]
    fn unsafe_paths_are_refused_when_streaming_and_extracting() {
        let dir = TempDir::new("archive-unsafe");
        for raw in ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt"] {
            let mut tar = TarBuilder::new();
            tar.file("ok.txt", b"fine");
            tar.file(raw, b"evil");
            let path = dir.path().join("u.tar");
            tar.write(&path, false);
            let err = read_members(&path, |_| true).unwrap_err();
            assert!(matches!(err, DataError::UnsafeEntry { .. }), "{raw}: {err}");
            let target = dir.path().join("out");
            let err = extract(&path, &target).unwrap_err();
            assert!(err.to_string().contains(raw), "{err}");
            // the file written before the refusal was removed again, nothing escaped
            assert!(!target.join("ok.txt").exists());
            assert!(!dir.path().join("evil.txt").exists());
        }
        assert!(!Path::new("/etc/evil.txt").exists());
    }

    #[test]
    fn links_are_refused_by_extract_and_skipped_by_streaming() {
        let dir = TempDir::new("archive-links");
        for hard in [false, true] {
            let mut tar = TarBuilder::new();
            tar.file("data/a.txt", b"a");
            tar.link("data/link", "/etc/passwd", hard);
            let path = dir.path().join("l.tar");
            tar.write(&path, false);
            let listing = read_members(&path, |_| true).unwrap();
            assert_eq!(listing.files.len(), 1);
            let target = dir.path().join("out");
            let err = extract(&path, &target).unwrap_err();
            assert!(matches!(err, DataError::UnsafeEntry { .. }), "{err}");
            assert!(fs::symlink_metadata(target.join("data/link")).is_err());
        }
    }

    #[test]
    fn extract_writes_inside_the_target_only() {
        let dir = TempDir::new("archive-extract");
        let mut tar = TarBuilder::new();
        tar.dir("top/");
        tar.file("top/x/y.txt", b"why");
        let path = dir.path().join("e.tar.gz");
        tar.write(&path, true);
        let target = dir.path().join("out");
        assert_eq!(extract(&path, &target).unwrap(), 1);
        assert_eq!(fs::read(target.join("top/x/y.txt")).unwrap(), b"why");

        // a symbolic link planted in the target is not written through
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        let planted = dir.path().join("out2");
        fs::create_dir_all(&planted).unwrap();
        std::os::unix::fs::symlink(&outside, planted.join("top")).unwrap();
        let err = extract(&path, &planted).unwrap_err();
        assert!(matches!(err, DataError::UnsafeEntry { .. }), "{err}");
        assert!(fs::read_dir(&outside).unwrap().next().is_none());
    }

    #[test]
    fn a_missing_archive_names_its_path() {
        let err = read_members(Path::new("/no/such/archive.tar"), |_| true).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        assert!(err.to_string().contains("/no/such/archive.tar"));
    }
}
