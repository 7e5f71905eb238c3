//! Writes the committed CIFAR-10 sample, `datasets/cifar10-sample`, from the shared archive.
//!
//! ```text
//! cargo run --release -p sd-data --example make_sample -- [ARCHIVE] [OUT_DIR]
//! ```
//!
//! For each class it copies the first 50 training images (`0000.jpg` to `0049.jpg`) and the
//! first 20 test images (`0000.jpg` to `0019.jpg`) byte for byte, as
//! `OUT_DIR/{train,test}/<class>/NNNN.jpg`. The choice depends only on file names, so running
//! it again gives the same files. `ARCHIVE` defaults to
//! `../shared/datasets/cifar10-jpeg.tar.gz` and `OUT_DIR` to `datasets/cifar10-sample`, both
//! seen from the workspace root.

use std::path::PathBuf;
use std::process::ExitCode;

use sd_data::archive::read_members;

const PER_CLASS: [(&str, usize); 2] = [("train", 50), ("test", 20)];

fn keep(path: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.split('/').collect();
    let [.., split, class, file] = parts.as_slice() else {
        return None;
    };
    let (_, count) = PER_CLASS.iter().find(|(s, _)| s == split)?;
    let number: usize = file.strip_suffix(".jpg")?.parse().ok()?;
    (number < *count).then(|| (split.to_string(), class.to_string(), file.to_string()))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let archive = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets/cifar10-jpeg.tar.gz"));
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("datasets/cifar10-sample"));
    let listing = match read_members(&archive, |p| keep(p).is_some()) {
        Ok(listing) => listing,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    for member in &listing.files {
        let (split, class, file) = keep(&member.path).expect("filtered above");
        let dir = out.join(split).join(class);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(&file), &member.data));
        if let Err(err) = written {
            eprintln!("error: {}: {err}", dir.join(file).display());
            return ExitCode::FAILURE;
        }
    }
    println!("wrote {} images to {}", listing.files.len(), out.display());
    ExitCode::SUCCESS
}
