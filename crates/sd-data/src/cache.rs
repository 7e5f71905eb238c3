//! The on-disk cache of decoded data sets, so that a second run starts in seconds.
//!
//! One cache file holds one [`DecodedSet`]. Its name is `<format>-<hash>.sdcache`, where the
//! hash is of the [`CacheKey`]: the cache version, the format, the canonical source path and a
//! fingerprint of the source (size and modification time of a file; of every file below a
//! folder), plus any option that changes what is decoded (CIFAR-100 labels). Changing the
//! source therefore changes the key, and the stale file is simply not used.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic "SDCACHE\0" | version u32 | key length u32 | key (UTF-8)
//! part count u32, then for each part (train, test, extra):
//!   name length u32 | name | images u64 | class count u32 | (name length u32 | name)*
//!   pixels (images * 3072 bytes) | labels (images * u16)
//! CRC-32 (u32) of every byte before it
//! ```
//!
//! A file is written to a temporary name in the cache folder and renamed into place, so a
//! crash never leaves a half-written cache under the real name. On reading, everything is
//! checked (magic, version, key, every length against the file size, labels against the class
//! count, the CRC); a file that fails is reported with a warning, deleted and rebuilt, never
//! trusted. A cache that cannot be written is a warning, not an error.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use burn::config::Config;
use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::store::{DecodedSet, IMAGE_BYTES, ImageStore};

/// Bumped whenever the layout or the decoding changes, which invalidates older caches.
pub const CACHE_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"SDCACHE\0";

/// Whether the cache is used.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Read a valid cache file, or decode and write one.
    ReadWrite,
    /// Decode the source and overwrite the cache file.
    Rebuild,
    /// Decode the source; neither read nor write a cache.
    Off,
}

/// What a cache file is valid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    format: String,
    text: String,
}

impl CacheKey {
    /// The key for decoding `source` (a file or folder) with `format` (a short tag such as
    /// `cifar10`) and the decoding `options` (free text, e.g. `labels=fine`).
    pub fn new(format: &str, source: &Path, options: &str) -> Result<Self, DataError> {
        let canonical = source.canonicalize().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DataError::Missing {
                path: source.to_path_buf(),
                what: format!("{format} source"),
            },
            _ => DataError::io(source, e),
        })?;
        let fingerprint = fingerprint(&canonical)?;
        let text = serde_json::json!({
            "version": CACHE_VERSION,
            "format": format,
            "source": canonical.display().to_string(),
            "fingerprint": fingerprint,
            "options": options,
        })
        .to_string();
        Ok(Self {
            format: format.to_string(),
            text,
        })
    }

    /// The cache file name for this key.
    pub fn file_name(&self) -> String {
        let digest = Sha256::digest(self.text.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}.sdcache", self.format)
    }
}

/// Size and modification time of a file, or of every file below a folder (hashed).
fn fingerprint(path: &Path) -> Result<String, DataError> {
    let stamp = |p: &Path| -> Result<(u64, u128), DataError> {
        let meta = fs::metadata(p).map_err(|e| DataError::io(p, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok((meta.len(), mtime))
    };
    if path.is_file() {
        let (size, mtime) = stamp(path)?;
        return Ok(format!("size={size} mtime={mtime}"));
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
            let entry = entry.map_err(|e| DataError::io(&dir, e))?.path();
            if entry.is_dir() {
                pending.push(entry);
            } else {
                files.push(entry);
            }
        }
    }
    files.sort();
    let mut hash = Sha256::new();
    for file in &files {
        let (size, mtime) = stamp(file)?;
        hash.update(format!("{}\t{size}\t{mtime}\n", file.display()).as_bytes());
    }
    let hex: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("files={} listing={hex}", files.len()))
}

/// Returns the decoded set for `key` from the cache in `dir`, or decodes it with `decode`
/// and caches it, following `policy`.
pub fn load_or_decode(
    dir: &Path,
    policy: CachePolicy,
    key: &CacheKey,
    decode: impl FnOnce() -> Result<DecodedSet, DataError>,
) -> Result<DecodedSet, DataError> {
    if policy == CachePolicy::Off {
        return decode();
    }
    let path = dir.join(key.file_name());
    if policy == CachePolicy::ReadWrite && path.exists() {
        match read(&path, key) {
            Ok(set) => {
                log::info!("{}: loaded from the cache", path.display());
                return Ok(set);
            }
            Err(err) => {
                log::warn!("{err}; the cache file is rebuilt");
                let _ = fs::remove_file(&path);
            }
        }
    }
    let set = decode()?;
    match write(&path, key, &set) {
        Ok(()) => log::info!("{}: cache written", path.display()),
        Err(err) => log::warn!("could not write the cache: {err}"),
    }
    Ok(set)
}

/// Writes `set` for `key` to `path`, atomically (temporary file, then rename).
pub fn write(path: &Path, key: &CacheKey, set: &DecodedSet) -> Result<(), DataError> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_to(&tmp, key, set)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| DataError::io(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_to(tmp: &Path, key: &CacheKey, set: &DecodedSet) -> Result<(), DataError> {
    let io_err = |e| DataError::io(tmp, e);
    let file = File::create(tmp).map_err(io_err)?;
    let mut out = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let mut parts: Vec<(&str, &ImageStore)> = vec![("train", &set.train), ("test", &set.test)];
    if let Some(extra) = &set.extra {
        parts.push(("extra", extra));
    }
    let put_str = |out: &mut CrcWriter<_>, s: &str| -> io::Result<()> {
        out.write_all(&(s.len() as u32).to_le_bytes())?;
        out.write_all(s.as_bytes())
    };
    (|| -> io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&CACHE_VERSION.to_le_bytes())?;
        put_str(&mut out, &key.text)?;
        out.write_all(&(parts.len() as u32).to_le_bytes())?;
        for (name, store) in &parts {
            put_str(&mut out, name)?;
            out.write_all(&(store.len() as u64).to_le_bytes())?;
            out.write_all(&(store.classes().len() as u32).to_le_bytes())?;
            for class in store.classes() {
                put_str(&mut out, class)?;
            }
            out.write_all(store.pixels())?;
            let labels: Vec<u8> = store
                .labels()
                .iter()
                .flat_map(|l| l.to_le_bytes())
                .collect();
            out.write_all(&labels)?;
        }
        let crc = out.crc.clone().finalize();
        out.inner.write_all(&crc.to_le_bytes())?;
        let file = out.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })()
    .map_err(io_err)
}

/// Reads the cache file at `path`, checking it was written for `key`.
pub fn read(path: &Path, key: &CacheKey) -> Result<DecodedSet, DataError> {
    let bad = |problem: String| DataError::format(path, format!("invalid cache file: {problem}"));
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len < 8 + 4 + 4 {
        return Err(bad(format!("{len} bytes is too short")));
    }
    let mut input = CrcReader {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        // the CRC trailer is not part of the checked bytes
        left: len - 4,
    };
    let truncated = |e: io::Error| bad(format!("truncated or unreadable ({e})"));

    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).map_err(truncated)?;
    if &magic != MAGIC {
        return Err(bad("wrong magic bytes".into()));
    }
    let version = input.u32().map_err(truncated)?;
    if version != CACHE_VERSION {
        return Err(bad(format!("version {version}, expected {CACHE_VERSION}")));
    }
    let text = input.string(1 << 20).map_err(truncated)?;
    if text != key.text {
        return Err(bad("written for another source or options".into()));
    }
    let count = input.u32().map_err(truncated)?;
    if !(2..=3).contains(&count) {
        return Err(bad(format!("{count} parts, expected 2 or 3")));
    }
    let mut parts = Vec::new();
    for _ in 0..count {
        let name = input.string(64).map_err(truncated)?;
        let n = input.u64().map_err(truncated)?;
        let classes = input.u32().map_err(truncated)?;
        if classes > u32::from(u16::MAX) + 1 || u64::from(classes) > input.left {
            return Err(bad(format!("part {name:?}: {classes} classes")));
        }
        let mut names = Vec::with_capacity(classes as usize);
        for _ in 0..classes {
            names.push(input.string(4096).map_err(truncated)?);
        }
        let fits = n
            .checked_mul(IMAGE_BYTES as u64 + 2)
            .is_some_and(|bytes| bytes <= input.left);
        if !fits {
            return Err(bad(format!("part {name:?}: {n} images cannot fit")));
        }
        let mut pixels = vec![0u8; n as usize * IMAGE_BYTES];
        input.read_exact(&mut pixels).map_err(truncated)?;
        let mut raw = vec![0u8; n as usize * 2];
        input.read_exact(&mut raw).map_err(truncated)?;
        let labels: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if let Some(bad_label) = labels.iter().find(|&&l| u32::from(l) >= classes) {
            return Err(bad(format!(
                "part {name:?}: label {bad_label} of {classes} classes"
            )));
        }
        parts.push((name, ImageStore::new(pixels, labels, names)));
    }
    if input.left != 0 {
        return Err(bad(format!(
            "{} unexpected bytes before the checksum",
            input.left
        )));
    }
    let computed = input.crc.clone().finalize();
    let mut trailer = [0u8; 4];
    input.inner.read_exact(&mut trailer).map_err(truncated)?;
    if u32::from_le_bytes(trailer) != computed {
        return Err(bad("checksum mismatch (file corrupt)".into()));
    }

    let mut take = |name: &str| {
        parts
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| parts.swap_remove(i).1)
    };
    let train = take("train").ok_or_else(|| bad("no train part".into()))?;
    let test = take("test").ok_or_else(|| bad("no test part".into()))?;
    let extra = take("extra");
    Ok(DecodedSet { train, test, extra })
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct CrcReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
    left: u64,
}

impl<R: Read> CrcReader<R> {
    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self, max: u32) -> io::Result<String> {
        let len = self.u32()?;
        if len > max || u64::from(len) > self.left {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "string length"));
        }
        let mut b = vec![0u8; len as usize];
        self.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "UTF-8"))
    }
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.crc.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// The default cache folder, relative to the working directory.
pub fn default_dir() -> PathBuf {
    PathBuf::from("datasets/cache")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{TempDir, test_image};

    fn set(extra: bool) -> DecodedSet {
        let classes: Vec<String> = vec!["a".into(), "b".into()];
        let store = |k: u8| {
            let pixels: Vec<u8> = (0..k).flat_map(test_image).collect();
            let labels = (0..k).map(|i| u16::from(i % 2)).collect();
            ImageStore::new(pixels, labels, classes.clone())
        };
        DecodedSet {
            train: store(5),
            test: store(2),
            extra: extra.then(|| store(3)),
        }
    }

    fn key(dir: &Path) -> CacheKey {
        let source = dir.join("source.bin");
        fs::write(&source, b"source").unwrap();
        CacheKey::new("test", &source, "").unwrap()
    }

    #[test]
    fn a_written_cache_reads_back_identically() {
        let dir = TempDir::new("cache-roundtrip");
        let key = key(dir.path());
        for extra in [false, true] {
            let path = dir.path().join(key.file_name());
            write(&path, &key, &set(extra)).unwrap();
            assert_eq!(read(&path, &key).unwrap(), set(extra));
        }
        // no temporary file is left behind
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn corrupt_truncated_and_foreign_caches_are_detected() {
        let dir = TempDir::new("cache-bad");
        let key = key(dir.path());
        let path = dir.path().join(key.file_name());
        write(&path, &key, &set(true)).unwrap();
        let good = fs::read(&path).unwrap();

        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 1;
        fs::write(&path, &flipped).unwrap();
        let err = read(&path, &key).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");

        for cut in [3, 20, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            let err = read(&path, &key).unwrap_err();
            assert!(
                err.to_string().contains("invalid cache file"),
                "cut {cut}: {err}"
            );
        }

        fs::write(&path, &good).unwrap();
        let other = CacheKey::new("test", dir.path(), "").unwrap();
        let err = read(&path, &other).unwrap_err();
        assert!(err.to_string().contains("another source"), "{err}");
    }

    #[test]
    fn load_or_decode_rebuilds_a_corrupt_cache() {
        let dir = TempDir::new("cache-rebuild");
        let key = key(dir.path());
        let calls = std::cell::Cell::new(0);
        let decode = || {
            calls.set(calls.get() + 1);
            Ok(set(false))
        };
        let cache = dir.path().join("cache");
        assert_eq!(
            load_or_decode(&cache, CachePolicy::ReadWrite, &key, decode).unwrap(),
            set(false)
        );
        assert_eq!(
            load_or_decode(&cache, CachePolicy::ReadWrite, &key, decode).unwrap(),
            set(false)
        );
        assert_eq!(calls.get(), 1);

        let path = cache.join(key.file_name());
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        assert_eq!(
            load_or_decode(&cache, CachePolicy::ReadWrite, &key, decode).unwrap(),
            set(false)
        );
        assert_eq!(calls.get(), 2);
        assert_eq!(fs::read(&path).unwrap(), bytes);

        load_or_decode(&cache, CachePolicy::Rebuild, &key, decode).unwrap();
        load_or_decode(&cache, CachePolicy::Off, &key, decode).unwrap();
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn the_key_follows_the_source_file() {
        let dir = TempDir::new("cache-key");
        let source = dir.path().join("s.bin");
        fs::write(&source, b"one").unwrap();
        let first = CacheKey::new("f", &source, "").unwrap();
        fs::write(&source, b"three").unwrap();
        let second = CacheKey::new("f", &source, "").unwrap();
        assert_ne!(first.file_name(), second.file_name());
        assert_ne!(first, CacheKey::new("f", &source, "labels=coarse").unwrap());
        let err = CacheKey::new("f", &dir.path().join("gone"), "").unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
    }
}
