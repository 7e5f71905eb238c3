//! End-to-end: the real `xtask` binary on the committed CIFAR-10 sample.
//!
//! Each test works in its own temporary folder (the data cache lands there too)
//! and runs tiny networks for a few steps, so the file runs in seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/cifar10-sample")
        .canonicalize()
        .unwrap()
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sd-e2e-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn xtask(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // wgpu on a software Vulkan driver: tune kernels briefly (the default
    // level spends minutes of a cold run on it), unless the caller chose.
    if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_none() {
        command.env("CUBECL_AUTOTUNE_LEVEL", "minimal");
    }
    command
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the xtask binary runs")
}

fn ok(out: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "command failed:\n{text}");
    text
}

fn fails(out: Output) -> String {
    assert!(!out.status.success(), "command should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Data and output flags only.
fn base_args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--dataset",
        "folder",
        "--data",
        data,
        "--val-size",
        "100",
        "--max-train",
        "300",
        "--out",
        out,
        "--plain",
    ]
}

/// A quick run: ResNet-8, batches of 50, 300 training and 100 validation images,
/// the learning rate divided by 10 after epoch 2.
fn train_args<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut args = base_args(data, out);
    args.extend_from_slice(&["--depth", "8", "--batch-size", "50", "--epochs", epochs]);
    if epochs != "1" {
        args.extend_from_slice(&["--milestones", "2"]);
    }
    args
}

fn read_json(path: impl AsRef<Path>) -> serde_json::Value {
    let path = path.as_ref();
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn train_then_eval_writes_the_run_folder() {
    let dir = workdir("train-eval");
    let data = sample();
    let data = data.to_str().unwrap();
    let text = ok(xtask(&dir, &train_args(data, "run", "2")));
    assert!(text.contains("completed"), "{text}");

    let run = dir.join("run");
    let rows = csv_rows(&run.join("metrics.csv"));
    assert_eq!(rows.len(), 2, "one row per epoch");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
        let valid_error: f64 = row[5].parse().unwrap();
        assert!((0.0..=100.0).contains(&valid_error));
        let blocks: f64 = row[8].parse().unwrap();
        assert!(
            blocks > 0.0 && blocks <= 3.0,
            "ResNet-8 has 3 blocks, ran {blocks}"
        );
    }
    let summary: serde_json::Value = read_json(run.join("summary.json"));
    assert_eq!(summary["epochs_done"], 2);
    assert_eq!(summary["status"], "completed");
    let best = summary["best_epoch"].as_u64().unwrap();
    for part in ["model", "optim", "scheduler"] {
        assert!(run.join(format!("checkpoint/{part}-{best}.bpk")).is_file());
        assert!(run.join(format!("checkpoint/{part}-2.bpk")).is_file());
    }
    let config: serde_json::Value = read_json(run.join("config.json"));
    assert_eq!(config["model"]["depth"], 8);
    assert_eq!(config["optimizer"]["dampening"], 0.0);

    let text = ok(xtask(&dir, &["eval", "--run", "run"]));
    assert!(text.contains("test error"), "{text}");
    let report: serde_json::Value = read_json(run.join("eval.json"));
    assert_eq!(report["epoch"].as_u64().unwrap(), best);
    assert_eq!(report["test_images"], 200);
    assert_eq!(report["per_class"].as_array().unwrap().len(), 10);
    let test_error = report["test_error"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&test_error));
    // The test error of the best epoch was also logged during training.
    let logged: f64 = summary["test_error_at_best"].as_f64().unwrap();
    assert!(
        (logged - test_error).abs() < 1e-6,
        "eval {test_error} vs logged {logged}"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_replays_exactly_what_an_uninterrupted_run_does() {
    let dir = workdir("resume");
    let data = sample();
    let data = data.to_str().unwrap();
    ok(xtask(&dir, &train_args(data, "straight", "3")));
    ok(xtask(&dir, &train_args(data, "split", "2")));
    let text = ok(xtask(
        &dir,
        &[
            "train", "--out", "split", "--resume", "--epochs", "3", "--plain",
        ],
    ));
    assert!(text.contains("3 of 3 epochs"), "{text}");

    let straight = csv_rows(&dir.join("straight/metrics.csv"));
    let split = csv_rows(&dir.join("split/metrics.csv"));
    assert_eq!(straight.len(), 3);
    assert_eq!(split.len(), 3);
    for (a, b) in straight.iter().zip(&split) {
        // Every column but the epoch's wall time: same data order, augmentation,
        // gates, optimizer state and learning rate.
        let drop_time = |r: &Vec<String>| {
            let mut r = r.clone();
            r.remove(7);
            r
        };
        assert_eq!(drop_time(a), drop_time(b));
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let dir = workdir("bad");
    let data = sample();
    let data = data.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 7] = [
        (&["--depth", "21"], &["21", "6n+2"]),
        (&["--p-last", "1.5"], &["1.5", "(0, 1]"]),
        (&["--backend", "tpu"], &["tpu", "flex"]),
        (&["--schedule", "cosine"], &["cosine", "linear"]),
        (&["--epochs", "0"], &["epochs", "0"]),
        (&["--milestones", "5,2"], &["milestones", "[5, 2]"]),
        (&["--granularity", "pixel"], &["pixel", "batch"]),
    ];
    for (flags, needles) in cases {
        let mut args = base_args(data, "bad");
        args.extend_from_slice(flags);
        let err = fails(xtask(&dir, &args));
        for needle in needles {
            assert!(err.contains(needle), "{flags:?}: {err}");
        }
        assert!(!dir.join("bad").exists(), "{flags:?}: nothing is written");
    }

    let err = fails(xtask(&dir, &train_args("/no/such/data", "bad", "2")));
    assert!(err.contains("/no/such/data"), "{err}");
    assert!(!dir.join("bad/config.json").exists());

    let err = fails(xtask(&dir, &["eval", "--run", "nowhere"]));
    assert!(
        err.contains("nowhere") && err.contains("no such folder"),
        "{err}"
    );
    fs::create_dir_all(dir.join("empty")).unwrap();
    let err = fails(xtask(&dir, &["eval", "--run", "empty"]));
    assert!(err.contains("config.json"), "{err}");
    let err = fails(xtask(&dir, &["train", "--out", "nowhere", "--resume"]));
    assert!(err.contains("nowhere"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_folder_is_never_overwritten() {
    let dir = workdir("twice");
    let data = sample();
    let data = data.to_str().unwrap();
    ok(xtask(&dir, &train_args(data, "run", "1")));
    let before = fs::read_to_string(dir.join("run/metrics.csv")).unwrap();
    let err = fails(xtask(&dir, &train_args(data, "run", "1")));
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.join("run/metrics.csv")).unwrap(),
        before
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_config_file_composes_with_flags() {
    let dir = workdir("config");
    let data = sample();
    let data = data.to_str().unwrap();
    fs::write(
        dir.join("c.json"),
        r#"{"model": {"depth": 14, "survival": {"Uniform": {"p": 0.8}}}, "batch_size": 25}"#,
    )
    .unwrap();
    let mut args = train_args(data, "run", "1");
    args.extend_from_slice(&["--config", "c.json"]);
    ok(xtask(&dir, &args));
    let config: serde_json::Value = read_json(dir.join("run/config.json"));
    assert_eq!(config["model"]["depth"], 8, "the flag wins over the file");
    assert_eq!(
        config["model"]["survival"]["Uniform"]["p"], 0.8,
        "the file wins over defaults"
    );
    assert_eq!(config["batch_size"], 50, "the flag wins");

    fs::write(dir.join("bad.json"), r#"{"model": {"dpeth": 14}}"#).unwrap();
    let mut args = train_args(data, "run2", "1");
    args.extend_from_slice(&["--config", "bad.json"]);
    let err = fails(xtask(&dir, &args));
    assert!(err.contains("model.dpeth"), "{err}");

    // Inside an enum variant too.
    let typo = r#"{"model": {"survival": {"LinearDecay": {"p_last": 0.3, "p_lats": 1}}}}"#;
    fs::write(dir.join("typo.json"), typo).unwrap();
    let mut args = train_args(data, "run3", "1");
    args.extend_from_slice(&["--config", "typo.json"]);
    let err = fails(xtask(&dir, &args));
    assert!(err.contains("model.survival.LinearDecay.p_lats"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_non_finite_loss_stops_the_run_with_a_clear_message() {
    let dir = workdir("nan");
    let data = sample();
    let data = data.to_str().unwrap();
    let mut args = train_args(data, "run", "3");
    args.extend_from_slice(&["--lr", "1e9"]);
    let err = fails(xtask(&dir, &args));
    assert!(err.contains("the training loss became"), "{err}");
    assert!(
        err.contains("nothing was saved") && err.contains("--lr"),
        "{err}"
    );
    let saved = fs::read_dir(dir.join("run/checkpoint"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(saved, 0, "no checkpoint of a diverged epoch");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctrl_c_stops_cleanly_and_the_run_resumes() {
    let dir = workdir("ctrlc");
    let data = sample();
    let data = data.to_str().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(train_args(data, "run", "200"))
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a finished epoch (bounded: at most 120 s).
    let metrics = dir.join("run/metrics.csv");
    let start = std::time::Instant::now();
    while csv_rows_or_empty(&metrics) < 1 {
        assert!(
            start.elapsed().as_secs() < 120,
            "no epoch finished in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = read_json(dir.join("run/summary.json"));
    assert!(
        summary["status"].as_str().unwrap().contains("Ctrl-C"),
        "{summary}"
    );
    let done = csv_rows(&metrics).len();
    assert!(done >= 1 && done < 200);
    for part in ["model", "optim", "scheduler"] {
        assert!(
            dir.join(format!("run/checkpoint/{part}-{done}.bpk"))
                .is_file()
        );
    }
    // Nothing half written is left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.join("run/checkpoint"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let next = (done + 1).to_string();
    ok(xtask(
        &dir,
        &[
            "train", "--out", "run", "--resume", "--epochs", &next, "--plain",
        ],
    ));
    assert_eq!(csv_rows(&metrics).len(), done + 1);
    fs::remove_dir_all(dir).unwrap();
}

fn csv_rows_or_empty(path: &Path) -> usize {
    fs::read_to_string(path)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

#[test]
fn a_resumed_run_keeps_its_settings_and_names_a_bad_checkpoint() {
    let dir = workdir("resume-guard");
    let data = sample();
    let data = data.to_str().unwrap();
    ok(xtask(&dir, &train_args(data, "run", "1")));
    let before = fs::read_to_string(dir.join("run/metrics.csv")).unwrap();

    let err = fails(xtask(
        &dir,
        &["train", "--out", "run", "--resume", "--depth", "20"],
    ));
    assert!(
        err.contains("--depth") && err.contains("config.json"),
        "{err}"
    );
    // The original command plus --resume repeats the run's settings: accepted,
    // and with nothing left to train, said so.
    let mut again = train_args(data, "run", "1");
    again.push("--resume");
    let err = fails(xtask(&dir, &again));
    assert!(
        !err.contains("differs") && err.contains("already finished"),
        "{err}"
    );

    // A truncated checkpoint is named, not a panic.
    let model = dir.join("run/checkpoint/model-1.bpk");
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let out = xtask(
        &dir,
        &[
            "train", "--out", "run", "--resume", "--epochs", "2", "--plain",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "an error, not a panic");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model-1.bpk"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.join("run/metrics.csv")).unwrap(),
        before
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_a_validation_split_the_last_epoch_is_evaluated() {
    let dir = workdir("noval");
    let data = sample();
    let data = data.to_str().unwrap();
    let mut args = train_args(data, "run", "2");
    let at = args.iter().position(|a| *a == "--val-size").unwrap();
    args[at + 1] = "0";
    ok(xtask(&dir, &args));
    let summary: serde_json::Value = read_json(dir.join("run/summary.json"));
    assert_eq!(summary["best_epoch"], 2);
    assert!(summary["best_valid_error"].is_null());
    let text = ok(xtask(&dir, &["eval", "--run", "run"]));
    assert!(text.contains("best validation epoch: 2"), "{text}");
    fs::remove_dir_all(dir).unwrap();
}

/// Whether a wgpu end-to-end test should run: when `SD_REQUIRE_WGPU` (CI,
/// after `.ci/install-lavapipe`) or `opt_in` is set in the environment, and
/// then a missing wgpu device is a failure.
fn wgpu_wanted(dir: &Path, opt_in: &str) -> bool {
    let asked = ["SD_REQUIRE_WGPU", opt_in]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !asked {
        eprintln!("skipped: set {opt_in}=1 (or SD_REQUIRE_WGPU=1) to run it on a wgpu device");
        return false;
    }
    let text = ok(xtask(dir, &["devices"]));
    assert!(
        !text.contains("wgpu: 0 device"),
        "asked to run on wgpu, but no device:\n{text}"
    );
    true
}

/// A run trained on flex, evaluated on both backends: the same checkpoint
/// gives the same test error, up to a tie flipped by rounding (1 image of
/// 200). About a minute on a cold software Vulkan driver; CI runs it.
#[test]
fn wgpu_evaluates_a_run_trained_on_flex() {
    let dir = workdir("wgpu-eval");
    if !wgpu_wanted(&dir, "SD_E2E_WGPU") {
        return;
    }
    let data = sample();
    let data = data.to_str().unwrap();
    ok(xtask(&dir, &train_args(data, "on-flex", "1")));
    ok(xtask(&dir, &["eval", "--run", "on-flex"]));
    let flex = read_json(dir.join("on-flex/eval.json"))["test_error"]
        .as_f64()
        .unwrap();
    ok(xtask(
        &dir,
        &["eval", "--run", "on-flex", "--backend", "wgpu"],
    ));
    let wgpu = read_json(dir.join("on-flex/eval.json"))["test_error"]
        .as_f64()
        .unwrap();
    assert!(
        (flex - wgpu).abs() <= 0.5 + 1e-9,
        "test error {flex}% on flex, {wgpu}% on wgpu"
    );
    fs::remove_dir_all(dir).unwrap();
}

/// `train --backend wgpu` on the committed sample. Only with
/// `SD_E2E_WGPU_TRAIN=1`: on a software Vulkan driver a cold first run of the
/// training loop spends over ten minutes compiling shaders and tuning kernels
/// (a second run, with Mesa's shader cache warm, about a minute), too long
/// for every CI run; CI checks a wgpu training step's numbers in
/// `crates/sd-train/tests/wgpu_agreement.rs` instead.
#[test]
fn wgpu_trains_on_the_sample() {
    let dir = workdir("wgpu-train");
    if std::env::var_os("SD_E2E_WGPU_TRAIN").is_none() {
        eprintln!("skipped: set SD_E2E_WGPU_TRAIN=1 to run the wgpu training command");
        return;
    }
    assert!(wgpu_wanted(&dir, "SD_E2E_WGPU_TRAIN"));
    let data = sample();
    let data = data.to_str().unwrap();
    let mut args = train_args(data, "on-wgpu", "1");
    args.extend_from_slice(&["--backend", "wgpu"]);
    let text = ok(xtask(&dir, &args));
    assert!(text.contains("completed"), "{text}");
    let rows = csv_rows(&dir.join("on-wgpu/metrics.csv"));
    assert_eq!(rows.len(), 1);
    let loss: f64 = rows[0][2].parse().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "training loss {loss}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resuming_with_fewer_epochs_than_the_fixed_milestones_says_why() {
    let dir = workdir("fewer-epochs");
    let data = sample();
    let data = data.to_str().unwrap();
    // Three epochs, the learning rate dropped after epoch 2.
    ok(xtask(&dir, &train_args(data, "run", "3")));
    let err = fails(xtask(
        &dir,
        &[
            "train", "--out", "run", "--resume", "--epochs", "1", "--plain",
        ],
    ));
    assert!(
        err.contains("milestones [2]") && err.contains("fixed when the run was created"),
        "{err}"
    );
    assert!(err.contains("--epochs 2 or more"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

/// The bench's report, on a tiny network: every figure present and sane. (Its
/// timings are figures to read, not to assert.)
#[test]
fn bench_reports_every_configuration() {
    let dir = workdir("bench");
    let text = ok(xtask(
        &dir,
        &[
            "bench",
            "--depth",
            "8",
            "--batch-size",
            "16",
            "--steps",
            "1",
            "--warmup",
            "0",
        ],
    ));
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}:\n{text}"))
            .to_string()
    };
    assert!(line("ResNet-8 (3 blocks), batch 16, flex backend").contains("kernels on"));
    assert!(
        line("all gates open:").contains(" 3.0 blocks run"),
        "{text}"
    );
    assert!(
        line("all gates closed:").contains(" 0.0 blocks run"),
        "{text}"
    );
    for stage in 1..=3 {
        assert!(line(&format!("stage {stage}:")).contains("of 1 blocks expected to run"));
    }
    assert!(line("paper's schedule:  measured mean").contains("predicted from the block costs"));
    assert!(line("stochastic/constant:").contains("expected depth 2.00 of 3 blocks"));
    let inference = line("inference:");
    let per_second: f64 = inference
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(per_second > 0.0 && per_second.is_finite(), "{inference}");
    assert!(inference.contains("peak heap"));
    fs::remove_dir_all(dir).unwrap();
}
