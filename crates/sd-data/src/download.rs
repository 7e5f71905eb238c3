//! Downloading the official releases, with a progress bar and checksum verification.
//!
//! [`download`] writes to `<dest>.part`, resumes an interrupted `.part` with an HTTP
//! `Range: bytes=N-` request (up to three tries per call), checks the published checksum and
//! only then renames the file to `<dest>`. A file that fails its checksum is deleted; a
//! `.part` left by a transfer that broke off is kept for the next call to resume, and is never
//! read as data. A `<dest>` already present is checked first and reused when it matches.
//!
//! Proxies named in the usual environment variables are honoured, except for loopback hosts.
//! The progress bar goes to standard error and is hidden when that is not a terminal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::DataError;

/// Where the CIFAR-10 binary release is published.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The published MD5 of `cifar-10-binary.tar.gz`.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Where the CIFAR-100 binary release is published.
pub const CIFAR100_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
/// The published MD5 of `cifar-100-binary.tar.gz`.
pub const CIFAR100_MD5: &str = "03b5dce01913d631647c71ecec9e9cb8";
/// Where the SVHN cropped-digit `.mat` files are published (append the file name).
pub const SVHN_BASE_URL: &str = "http://ufldl.stanford.edu/housenumbers/";
/// The SVHN files and their MD5s, as published with the data set (and used by torchvision).
pub const SVHN_FILES: [(&str, &str); 3] = [
    ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    ("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),
];

/// How many times one call tries (and resumes) a transfer that breaks off.
const ATTEMPTS: u32 = 3;

/// A published checksum, as lowercase or uppercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// An MD5 digest (32 hex digits).
    Md5(String),
    /// A SHA-256 digest (64 hex digits).
    Sha256(String),
}

impl Checksum {
    fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    fn expected(&self) -> String {
        match self {
            Checksum::Md5(hex) | Checksum::Sha256(hex) => hex.to_ascii_lowercase(),
        }
    }
}

/// The hex digest of the file at `path` with the algorithm of `like`.
pub fn file_digest(path: &Path, like: &Checksum) -> Result<String, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; 1 << 20];
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    loop {
        let n = reader.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        match like {
            Checksum::Md5(_) => md5.update(&buf[..n]),
            Checksum::Sha256(_) => sha.update(&buf[..n]),
        }
    }
    let bytes: Vec<u8> = match like {
        Checksum::Md5(_) => md5.finalize().to_vec(),
        Checksum::Sha256(_) => sha.finalize().to_vec(),
    };
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks the file at `path` against `checksum`.
pub fn verify(path: &Path, checksum: &Checksum) -> Result<(), DataError> {
    let actual = file_digest(path, checksum)?;
    let expected = checksum.expected();
    if actual == expected {
        Ok(())
    } else {
        Err(DataError::Checksum {
            path: path.to_path_buf(),
            algorithm: checksum.algorithm(),
            expected,
            actual,
        })
    }
}

/// The temporary name a download is written to: `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

/// Downloads `url` to `dest` unless a verified copy is there; see the module docs.
pub fn download(url: &str, dest: &Path, checksum: &Checksum) -> Result<(), DataError> {
    if dest.exists() {
        match verify(dest, checksum) {
            Ok(()) => {
                log::info!("{}: present and verified", dest.display());
                return Ok(());
            }
            Err(err @ DataError::Checksum { .. }) => {
                log::warn!("{err}; downloading it again");
                fs::remove_file(dest).map_err(|e| DataError::io(dest, e))?;
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let part = part_path(dest);
    let agent = agent_for(url);
    log::info!("downloading {url} to {}", dest.display());

    let mut failure = None;
    for attempt in 1..=ATTEMPTS {
        match fetch_into(&agent, url, &part) {
            Ok(()) => {
                failure = None;
                break;
            }
            Err(Failure::Fatal(err)) => return Err(err),
            Err(Failure::Retry(err)) => {
                log::warn!("{err} (try {attempt} of {ATTEMPTS})");
                failure = Some(err);
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
            }
        }
    }
    if let Some(err) = failure {
        // keep the .part: the next call resumes it
        return Err(err);
    }

    if let Err(err) = verify(&part, checksum) {
        let _ = fs::remove_file(&part);
        return Err(err);
    }
    fs::rename(&part, dest).map_err(|e| DataError::io(dest, e))?;
    log::info!("{}: downloaded and verified", dest.display());
    Ok(())
}

enum Failure {
    /// Worth another try, resuming the `.part`.
    Retry(DataError),
    /// Not worth another try (an HTTP error status, a local write error).
    Fatal(DataError),
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}

fn agent_for(url: &str) -> ureq::Agent {
    let proxy = if is_loopback(url) {
        None
    } else {
        ureq::Proxy::try_from_env()
    };
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .proxy(proxy)
        .build()
        .into()
}

/// One HTTP request, appending to (or restarting) the `.part` file.
fn fetch_into(agent: &ureq::Agent, url: &str, part: &Path) -> Result<(), Failure> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let failed = |problem: String| DataError::Download {
        url: url.to_string(),
        problem,
    };
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request
        .call()
        .map_err(|e| Failure::Retry(failed(format!("request failed: {e}"))))?;
    let status = response.status().as_u16();
    let start = match status {
        200 => 0,
        206 => {
            let range = response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let from = range
                .strip_prefix("bytes ")
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if from != Some(have) {
                let _ = fs::remove_file(part);
                return Err(Failure::Retry(failed(format!(
                    "asked for bytes {have}- but the server sent range {range:?}"
                ))));
            }
            have
        }
        416 if have > 0 => {
            // the .part already holds the whole file (or more); the checksum decides
            return Ok(());
        }
        _ => return Err(Failure::Fatal(failed(format!("HTTP status {status}")))),
    };

    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .map_err(|e| Failure::Fatal(DataError::io(part, e)))?;
    let body = response.body_mut();
    let remaining = body.content_length();
    let bar = progress_bar(url, remaining.map(|n| n + start), start);
    let mut reader = body.as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    let outcome = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = file.write_all(&buf[..n]) {
                    break Err(Failure::Fatal(DataError::io(part, e)));
                }
                received += n as u64;
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(Failure::Retry(failed(format!(
                    "transfer broke off after {} bytes: {e}",
                    start + received
                ))));
            }
        }
    };
    bar.finish_and_clear();
    file.sync_all()
        .map_err(|e| Failure::Fatal(DataError::io(part, e)))?;
    outcome?;
    if let Some(expected) = remaining
        && received < expected
    {
        return Err(Failure::Retry(failed(format!(
            "transfer is truncated: {received} of {expected} bytes"
        ))));
    }
    Ok(())
}

fn progress_bar(url: &str, total: Option<u64>, position: u64) -> indicatif::ProgressBar {
    let bar = match total {
        Some(total) => indicatif::ProgressBar::new(total),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    bar.set_message(name);
    bar.set_position(position);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Reply, TempDir, TestServer};

    fn payload() -> Vec<u8> {
        (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect()
    }

    fn md5_of(bytes: &[u8]) -> Checksum {
        let digest = Md5::digest(bytes);
        Checksum::Md5(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    #[test]
    fn digests_match_known_values() {
        // Reference: RFC 1321 appendix A.5 (md5 of "abc") and FIPS 180-2 appendix B.1
        // (sha256 of "abc").
        let dir = TempDir::new("digest");
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        let md5 = file_digest(&path, &Checksum::Md5(String::new())).unwrap();
        assert_eq!(md5, "900150983cd24fb0d6963f7d28e17f72");
        let sha = file_digest(&path, &Checksum::Sha256(String::new())).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        verify(
            &path,
            &Checksum::Md5("900150983CD24FB0D6963F7D28E17F72".into()),
        )
        .unwrap();
    }

    #[test]
    fn a_complete_download_is_verified_and_renamed() {
        let dir = TempDir::new("dl-ok");
        let body = payload();
        let server = TestServer::start(body.clone(), vec![Reply::Body]);
        let dest = dir.path().join("sub/file.tar.gz");
        download(&server.url, &dest, &md5_of(&body)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), body);
        assert!(!part_path(&dest).exists());
        assert_eq!(server.finish().len(), 1);

        // present and verified: no request at all (no server is listening any more)
        download("http://127.0.0.1:9/none", &dest, &md5_of(&body)).unwrap();
    }

    #[test]
    fn a_truncated_transfer_is_resumed_with_a_range_request() {
        let dir = TempDir::new("dl-resume");
        let body = payload();
        let server = TestServer::start(body.clone(), vec![Reply::Truncate(30_000), Reply::Body]);
        let dest = dir.path().join("file.bin");
        download(&server.url, &dest, &md5_of(&body)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), body);
        let requests = server.finish();
        assert_eq!(requests.len(), 2);
        assert!(!requests[0].to_ascii_lowercase().contains("range:"));
        assert!(
            requests[1]
                .to_ascii_lowercase()
                .contains("range: bytes=30000-"),
            "{}",
            requests[1]
        );
    }

    #[test]
    fn a_transfer_that_keeps_breaking_is_never_used_and_resumes_later() {
        let dir = TempDir::new("dl-broken");
        let body = payload();
        let replies = vec![Reply::Truncate(1000); ATTEMPTS as usize];
        let server = TestServer::start(body.clone(), replies);
        let dest = dir.path().join("file.bin");
        let err = download(&server.url, &dest, &md5_of(&body)).unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err}");
        assert!(err.to_string().contains(&server.url), "{err}");
        assert!(!dest.exists());
        assert_eq!(fs::metadata(part_path(&dest)).unwrap().len(), 3000);
        server.finish();

        let server = TestServer::start(body.clone(), vec![Reply::Body]);
        download(&server.url, &dest, &md5_of(&body)).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), body);
        assert!(
            server.finish()[0]
                .to_ascii_lowercase()
                .contains("range: bytes=3000-")
        );
    }

    #[test]
    fn a_wrong_checksum_deletes_the_download() {
        let dir = TempDir::new("dl-checksum");
        let body = payload();
        let server = TestServer::start(body, vec![Reply::Body]);
        let dest = dir.path().join("file.bin");
        let wrong = md5_of(b"something else");
        let err = download(&server.url, &dest, &wrong).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("file.bin.part"), "{err}");
        assert!(!dest.exists());
        assert!(!part_path(&dest).exists());
        server.finish();
    }

    #[test]
    fn an_http_error_status_is_reported_with_the_url() {
        let dir = TempDir::new("dl-404");
        let server = TestServer::start(Vec::new(), vec![Reply::Status(404)]);
        let dest = dir.path().join("file.bin");
        let err = download(&server.url, &dest, &md5_of(b"")).unwrap_err();
        assert!(err.to_string().contains("HTTP status 404"), "{err}");
        assert!(!dest.exists());
        server.finish();
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://localhost/x"));
        assert!(!is_loopback(CIFAR10_URL));
    }
}
