//! Test fixtures: temporary folders, hand-written tar, MAT, CIFAR and image files, and a tiny
//! HTTP server on 127.0.0.1.
//!
//! Every fixture writes the exact layout of the official files, byte for byte where the format
//! fixes it, so the readers are tested on what they will meet.

use std::fs;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};

/// A folder under the system temporary folder with a unique name, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "sd-data-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).expect("temporary folder can be created");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Builds tar archives member by member, with raw header names (so `..` and absolute paths
/// can be written, which `tar::Builder` refuses).
#[derive(Default)]
pub struct TarBuilder {
    blocks: Vec<u8>,
}

impl TarBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> tar::Header {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        assert!(name.len() < 100 && link.len() < 100, "test names are short");
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_size(size);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_mtime(1_000_000_000);
        header.set_entry_type(kind);
        header.set_cksum();
        header
    }

    fn push(&mut self, header: &tar::Header, data: &[u8]) {
        self.blocks.extend_from_slice(header.as_bytes());
        self.blocks.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.blocks.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn file(&mut self, name: &str, data: &[u8]) {
        let header = Self::header(name, tar::EntryType::Regular, data.len() as u64, "");
        self.push(&header, data);
    }

    pub fn dir(&mut self, name: &str) {
        let header = Self::header(name, tar::EntryType::Directory, 0, "");
        self.push(&header, &[]);
    }

    pub fn link(&mut self, name: &str, target: &str, hard: bool) {
        let kind = if hard {
            tar::EntryType::Link
        } else {
            tar::EntryType::Symlink
        };
        let header = Self::header(name, kind, 0, target);
        self.push(&header, &[]);
    }

    /// The archive: members, then the two zero blocks that end a tar.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.blocks.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }

    pub fn write(&self, path: &Path, gzip: bool) {
        let bytes = self.bytes();
        if gzip {
            fs::write(path, gzip_bytes(&bytes)).expect("write test archive");
        } else {
            fs::write(path, bytes).expect("write test archive");
        }
    }
}

pub fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip in memory");
    gz.finish().expect("gzip in memory")
}

/// A 32x32 test image, CHW, whose pixels depend on `seed`.
pub fn test_image(seed: u8) -> Vec<u8> {
    (0..3072)
        .map(|i| (i as u32 * 7 + u32::from(seed) * 31) as u8)
        .collect()
}

/// Encodes a CHW RGB image of `side x side` as PNG or JPEG bytes.
pub fn encode_image(chw: &[u8], side: u32, format: image::ImageFormat) -> Vec<u8> {
    let plane = (side * side) as usize;
    let mut hwc = vec![0u8; plane * 3];
    for p in 0..plane {
        for c in 0..3 {
            hwc[p * 3 + c] = chw[c * plane + p];
        }
    }
    let img = image::RgbImage::from_raw(side, side, hwc).expect("buffer matches size");
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode in memory");
    out.into_inner()
}

/// One CIFAR binary row: the label bytes, then 3072 CHW pixels.
pub fn cifar_row(labels: &[u8], image: &[u8]) -> Vec<u8> {
    let mut row = labels.to_vec();
    row.extend_from_slice(image);
    row
}

/// A MAT v5 numeric variable for [`write_mat`].
pub struct MatVar<'a> {
    pub name: &'a str,
    /// MATLAB class: 9 = uint8, 6 = double.
    pub class: u8,
    pub dims: Vec<i32>,
    /// The data type tag of the stored real part (2 = miUINT8, 9 = miDOUBLE) and its bytes.
    pub storage: u32,
    pub data: Vec<u8>,
}

fn mat_tag(out: &mut Vec<u8>, kind: u32, data: &[u8]) {
    if data.len() <= 4 && kind != 14 {
        // small data element: size and type in one word, data in the next
        out.extend_from_slice(&(((data.len() as u32) << 16) | kind).to_le_bytes());
        let mut word = [0u8; 4];
        word[..data.len()].copy_from_slice(data);
        out.extend_from_slice(&word);
        return;
    }
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let pad = (8 - data.len() % 8) % 8;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// The miMATRIX element of one variable, tag included.
pub fn mat_matrix(var: &MatVar) -> Vec<u8> {
    let mut body = Vec::new();
    let mut flags = Vec::new();
    flags.extend_from_slice(&u32::from(var.class).to_le_bytes());
    flags.extend_from_slice(&0u32.to_le_bytes());
    mat_tag(&mut body, 6, &flags);
    let dims: Vec<u8> = var.dims.iter().flat_map(|d| d.to_le_bytes()).collect();
    mat_tag(&mut body, 5, &dims);
    mat_tag(&mut body, 1, var.name.as_bytes());
    mat_tag(&mut body, var.storage, &var.data);
    let mut element = Vec::new();
    mat_tag(&mut element, 14, &body);
    element
}

/// Writes a MATLAB v5 MAT file as MATLAB does: a 128-byte header, then one element per
/// variable, each wrapped in a zlib miCOMPRESSED element when `compressed`.
pub fn write_mat(path: &Path, vars: &[MatVar], compressed: bool) {
    let mut out = Vec::new();
    let mut text =
        b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024".to_vec();
    text.resize(116, b' ');
    out.extend_from_slice(&text);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for var in vars {
        let element = mat_matrix(var);
        if compressed {
            let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
            z.write_all(&element).expect("zlib in memory");
            let packed = z.finish().expect("zlib in memory");
            out.extend_from_slice(&15u32.to_le_bytes());
            out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
            out.extend_from_slice(&packed);
        } else {
            out.extend_from_slice(&element);
        }
    }
    fs::write(path, out).expect("write test MAT file");
}

/// What the test server does with one connection.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Serve the body (honouring a `Range: bytes=N-` request with a 206).
    Body,
    /// Announce the full length but send only this many bytes, then close.
    Truncate(usize),
    /// Answer with this status and no body.
    Status(u16),
}

/// An HTTP/1.1 server on 127.0.0.1 that answers one connection per [`Reply`], then stops.
/// It gives up after 20 s without a client, so a failing test cannot hang.
pub struct TestServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(body: Vec<u8>, replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            for reply in replies {
                let stream = loop {
                    match listener.accept() {
                        Ok((stream, _)) => break Some(stream),
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break None,
                    }
                };
                let Some(stream) = stream else { return };
                let _ = serve(stream, &body, &reply, &log);
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz"),
            requests,
            handle: Some(handle),
        }
    }

    /// Waits for the server thread (it ends after its last reply or its timeout).
    pub fn finish(mut self) -> Vec<String> {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        self.requests.lock().expect("request log").clone()
    }
}

fn serve(
    stream: TcpStream,
    body: &[u8],
    reply: &Reply,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        request.push_str(&line);
    }
    log.lock().expect("request log").push(request.clone());
    let range_start = request.lines().find_map(|l| {
        let lower = l.to_ascii_lowercase();
        let rest = lower.strip_prefix("range: bytes=")?;
        rest.trim().trim_end_matches('-').parse::<usize>().ok()
    });
    let mut out = stream;
    match reply {
        Reply::Status(code) => {
            write!(
                out,
                "HTTP/1.1 {code} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
        Reply::Body | Reply::Truncate(_) => {
            let (status, start) = match range_start {
                Some(start) if start < body.len() => ("206 Partial Content", start),
                Some(_) => {
                    write!(
                        out,
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n",
                        body.len()
                    )?;
                    return out.flush();
                }
                None => ("200 OK", 0),
            };
            let part = &body[start..];
            write!(
                out,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n",
                part.len()
            )?;
            if start > 0 {
                write!(
                    out,
                    "Content-Range: bytes {start}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                )?;
            }
            write!(out, "Connection: close\r\n\r\n")?;
            let send = match reply {
                Reply::Truncate(n) => &part[..(*n).min(part.len())],
                _ => part,
            };
            out.write_all(send)?;
        }
    }
    out.flush()?;
    // the whole request was read, so closing sends a clean FIN, not a reset
    out.shutdown(std::net::Shutdown::Both)
}
