//! `cargo xtask sweep --out DIR`: a grid of training runs over `p_L`, the
//! survival rule and the depth, with one shared short schedule, for the
//! paper's Figure 8 (`cargo xtask plot DIR` draws it).
//!
//! The grid and the shared flags are written to `DIR/sweep.json` first. Each
//! cell is then trained by a child process of this same binary
//! (`train --out DIR/<cell> --plain`), its output appended to
//! `DIR/logs/<cell>.log`, so a cell that crashes does not end the sweep.
//! `p_L = 1` is the constant-depth network, one cell shared by both rules.
//!
//! Running the same command again continues the sweep: a finished cell
//! (its `summary.json` says `completed` for the sweep's epochs) is skipped,
//! a cell with a run folder is resumed with `train --resume`, and a cell
//! without one is started. Flags that change what a cell trains must match
//! the manifest; `--update` accepts a new grid or more epochs (finished
//! cells are then extended, never retrained).
//!
//! Ctrl-C is passed on to the running cell, which stops after its current
//! step and keeps its last finished epoch; the sweep then stops with exit
//! status 130. A second Ctrl-C stops the cell at once.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser};
use sd_model::SurvivalRule;
use sd_report::run::RunSummary;
use sd_report::sweep::{Cell, CellRule, MANIFEST_FILE, MANIFEST_FORMAT, SweepManifest, SweepRule};

use crate::train::TrainArgs;

/// The grid of a new sweep when no flag sets it: a few of the paper's depths,
/// `p_L` from 0.2 to 1 and both rules, 20 epochs per cell.
const DEFAULT_DEPTHS: [usize; 3] = [20, 56, 110];
const DEFAULT_P_LAST: [f64; 6] = [0.2, 0.4, 0.5, 0.6, 0.8, 1.0];
const DEFAULT_EPOCHS: usize = 20;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep folder: sweep.json, one run folder per cell, logs/.
    #[arg(long)]
    out: PathBuf,
    /// Network depths, 6n+2 [new sweep: 20,56,110].
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<usize>>,
    /// p_L values in (0, 1]; 1 is the constant-depth network [new sweep:
    /// 0.2,0.4,0.5,0.6,0.8,1].
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    p_last: Option<Vec<f64>>,
    /// Survival rules swept over p_L: linear, uniform [new sweep: both].
    #[arg(long, visible_alias = "rules", value_delimiter = ',')]
    schedules: Option<Vec<String>>,
    /// Epochs of every cell [new sweep: 20].
    #[arg(long)]
    epochs: Option<usize>,
    /// Accept a grid or --epochs that differ from sweep.json: new cells are
    /// trained, finished cells extended to more epochs; cells left out of the
    /// grid stay on disk but are no longer trained or drawn.
    #[arg(long)]
    update: bool,

    // The training flags every cell shares (see `cargo xtask train --help`).
    /// Backend: flex, ndarray or wgpu.
    #[arg(long)]
    backend: Option<String>,
    /// Device index within the backend.
    #[arg(long)]
    device: Option<usize>,
    /// Data set: cifar10, cifar100, cifar100-coarse, svhn or folder.
    #[arg(long)]
    dataset: Option<String>,
    /// Where the data is: an archive, a folder, or where to download it.
    #[arg(long)]
    data: Option<String>,
    /// Mini-batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Initial learning rate.
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Epochs after which the learning rate is divided by 10 [50% and 75% of --epochs].
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    /// Validation images held out of the training set.
    #[arg(long)]
    val_size: Option<usize>,
    /// Use at most this many training images.
    #[arg(long)]
    max_train: Option<usize>,
    /// Use at most this many validation and test images.
    #[arg(long)]
    max_eval: Option<usize>,
    /// Seed of every cell.
    #[arg(long)]
    seed: Option<u64>,
    /// Gate granularity: batch, sample or sample-masked.
    #[arg(long)]
    granularity: Option<String>,
    /// Where branches are rescaled: test or train.
    #[arg(long)]
    scaling: Option<String>,
}

/// Flags that only say where the data is and what computes: they may
/// change between invocations, as `train --resume` allows.
const LOCAL_FLAGS: [&str; 3] = ["data", "backend", "device"];

impl SweepArgs {
    /// The shared training flags given, by name without dashes.
    fn train_flags(&self) -> Vec<(&'static str, Option<String>)> {
        fn text<T: ToString>(value: Option<T>) -> Option<String> {
            value.map(|v| v.to_string())
        }
        vec![
            ("backend", self.backend.clone()),
            ("device", text(self.device)),
            ("dataset", self.dataset.clone()),
            ("data", self.data.clone()),
            ("batch-size", text(self.batch_size)),
            ("lr", text(self.lr)),
            ("milestones", self.milestones.as_deref().map(join)),
            ("val-size", text(self.val_size)),
            ("max-train", text(self.max_train)),
            ("max-eval", text(self.max_eval)),
            ("seed", text(self.seed)),
            ("granularity", self.granularity.clone()),
            ("scaling", self.scaling.clone()),
        ]
    }

    /// The rules given, parsed, sorted and without repeats.
    fn rules(&self) -> anyhow::Result<Option<Vec<SweepRule>>> {
        let Some(names) = &self.schedules else {
            return Ok(None);
        };
        let mut rules = names
            .iter()
            .map(|n| {
                SweepRule::parse(n).with_context(|| {
                    format!(
                        "--schedules {n}: expected linear or uniform (p_L = 1 is constant depth)"
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        rules.sort();
        rules.dedup();
        Ok(Some(rules))
    }
}

fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn sorted_depths(depths: &[usize]) -> Vec<usize> {
    let mut depths = depths.to_vec();
    depths.sort_unstable();
    depths.dedup();
    depths
}

fn sorted_p_last(p_last: &[f64]) -> Vec<f64> {
    let mut p_last = p_last.to_vec();
    p_last.sort_by(f64::total_cmp);
    p_last.dedup();
    p_last
}

/// The manifest of a new sweep from the flags and the defaults.
fn new_manifest(args: &SweepArgs) -> anyhow::Result<SweepManifest> {
    let epochs = args.epochs.unwrap_or(DEFAULT_EPOCHS);
    let mut train_flags: BTreeMap<String, String> = args
        .train_flags()
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect();
    // The schedule is fixed now, as `train` fixes it, so that every cell shares it.
    if !train_flags.contains_key("milestones") {
        let milestones = sd_train::config::LrScheduleConfig::new().milestones_for(epochs);
        train_flags.insert("milestones".into(), join(&milestones));
    }
    Ok(SweepManifest {
        format: MANIFEST_FORMAT,
        depths: sorted_depths(args.depths.as_deref().unwrap_or(&DEFAULT_DEPTHS)),
        p_last: sorted_p_last(args.p_last.as_deref().unwrap_or(&DEFAULT_P_LAST)),
        rules: args
            .rules()?
            .unwrap_or_else(|| vec![SweepRule::Linear, SweepRule::Uniform]),
        epochs,
        train_flags,
    })
}

/// The saved manifest with the flags of this invocation applied: a flag
/// that changes what a cell trains must repeat the saved value (the grid and
/// the epochs may change with `--update`).
fn updated_manifest(
    saved: &SweepManifest,
    args: &SweepArgs,
    path: &Path,
) -> anyhow::Result<SweepManifest> {
    let mut manifest = saved.clone();
    let refuse = |flag: &str, given: String, recorded: String, how: &str| {
        anyhow::anyhow!(
            "--{flag} {given} differs from the sweep's {recorded} in {}; {how}",
            path.display()
        )
    };
    let grid_hint =
        "pass --update to change the grid (finished cells are kept) or choose another --out";
    if let Some(depths) = &args.depths {
        let depths = sorted_depths(depths);
        if depths != saved.depths && !args.update {
            return Err(refuse(
                "depths",
                join(&depths),
                join(&saved.depths),
                grid_hint,
            ));
        }
        manifest.depths = depths;
    }
    if let Some(p_last) = &args.p_last {
        let p_last = sorted_p_last(p_last);
        if p_last != saved.p_last && !args.update {
            let list = |p: &[f64]| p.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
            return Err(refuse(
                "p-last",
                list(&p_last),
                list(&saved.p_last),
                grid_hint,
            ));
        }
        manifest.p_last = p_last;
    }
    if let Some(rules) = args.rules()? {
        if rules != saved.rules && !args.update {
            let list = |r: &[SweepRule]| r.iter().map(|r| r.name()).collect::<Vec<_>>().join(",");
            return Err(refuse(
                "schedules",
                list(&rules),
                list(&saved.rules),
                grid_hint,
            ));
        }
        manifest.rules = rules;
    }
    if let Some(epochs) = args.epochs.filter(|&e| e != saved.epochs) {
        if !args.update {
            let how = "pass --update to train every cell to the new number of epochs";
            return Err(refuse(
                "epochs",
                epochs.to_string(),
                saved.epochs.to_string(),
                how,
            ));
        }
        if epochs < saved.epochs {
            bail!(
                "--epochs {epochs} is fewer than the sweep's {} in {}: cells are never shortened",
                saved.epochs,
                path.display()
            );
        }
        let milestones = saved.train_flags.get("milestones").map(String::as_str);
        let computed = sd_train::config::LrScheduleConfig::new().milestones_for(epochs);
        if milestones == Some("") && !computed.is_empty() {
            bail!(
                "the sweep in {} has no learning-rate drops; {epochs} epochs would give new \
                 cells drops at {computed:?} but not the finished ones: choose another --out",
                path.display()
            );
        }
        manifest.epochs = epochs;
    }
    for (flag, given) in args.train_flags() {
        let Some(given) = given else { continue };
        let recorded = saved.train_flags.get(flag);
        if LOCAL_FLAGS.contains(&flag) {
            manifest.train_flags.insert(flag.into(), given);
        } else if recorded != Some(&given) {
            let recorded = recorded.map_or("default".to_string(), |r| format!("setting {r}"));
            let how = "every cell of a sweep shares one schedule: choose another --out";
            return Err(refuse(flag, given, recorded, how));
        }
    }
    Ok(manifest)
}

/// The `train` flags shared by every cell, in the manifest's order.
fn shared_flags(manifest: &SweepManifest) -> Vec<String> {
    manifest
        .train_flags
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
        .collect()
}

/// The flags that start `cell` from scratch.
fn start_flags(manifest: &SweepManifest, cell: &Cell, out: &Path) -> Vec<String> {
    let mut args = vec!["train".to_string()];
    args.extend(shared_flags(manifest));
    args.extend(cell.train_flags());
    args.extend([
        "--epochs".into(),
        manifest.epochs.to_string(),
        "--out".into(),
        out.display().to_string(),
        "--plain".into(),
    ]);
    args
}

/// The flags that resume `cell`: only what `train --resume` lets change.
fn resume_flags(manifest: &SweepManifest, out: &Path) -> Vec<String> {
    let mut args = vec![
        "train".to_string(),
        "--out".into(),
        out.display().to_string(),
        "--resume".into(),
        "--epochs".into(),
        manifest.epochs.to_string(),
        "--plain".into(),
    ];
    for flag in LOCAL_FLAGS {
        if let Some(value) = manifest.train_flags.get(flag) {
            args.extend([format!("--{flag}"), value.clone()]);
        }
    }
    args
}

/// Checks the shared flags once, as `train` would, before any cell runs.
fn check_settings(manifest: &SweepManifest, dir: &Path) -> anyhow::Result<()> {
    #[derive(Parser)]
    struct Check {
        #[command(flatten)]
        train: TrainArgs,
    }
    for &depth in &manifest.depths {
        if depth < 8 || (depth - 2) % 6 != 0 {
            bail!("--depths: {depth} is not a CIFAR ResNet depth 6n+2 (8, 14, 20, ...)");
        }
    }
    if let Some(data) = manifest.train_flags.get("data")
        && !Path::new(data).exists()
    {
        bail!("--data {data}: no such file or folder");
    }
    // The cells differ only in depth and rule, checked above: one cell stands for all.
    if let Some(cell) = manifest.cells().first() {
        let args = start_flags(manifest, cell, &dir.join(&cell.name));
        let check = Check::try_parse_from(&args).map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::train::resolve(&check.train)?;
    }
    Ok(())
}

/// Where a cell stands.
#[derive(Debug, PartialEq)]
enum CellState {
    /// No run folder (or one without `config.json`): train from scratch.
    New,
    /// A run folder that has not reached the sweep's epochs: resume it.
    Partial { done: usize },
    /// A run folder holding a run that has not saved an epoch: resume it
    /// (`train --resume` starts such a run from its first epoch).
    NothingSaved,
    /// Completed for the sweep's epochs: skip it.
    Finished(RunSummary),
}

fn cell_state(cell: &Cell, dir: &Path, epochs: usize) -> anyhow::Result<CellState> {
    if !dir.join("config.json").is_file() {
        return Ok(CellState::New);
    }
    // The folder must hold this cell's network, not another run moved there.
    let config = sd_train::train::load_run_config(dir)?;
    let expected = match cell.rule {
        CellRule::Constant => SurvivalRule::Constant,
        CellRule::Linear(p_last) => SurvivalRule::LinearDecay { p_last },
        CellRule::Uniform(p) => SurvivalRule::Uniform { p },
    };
    if config.model.depth != cell.depth || config.model.survival != expected {
        bail!(
            "{} holds a ResNet-{} with {:?}, not the cell's ResNet-{} with {expected:?}; \
             move it away",
            dir.display(),
            config.model.depth,
            config.model.survival,
            cell.depth
        );
    }
    let summary = RunSummary::load(dir)?;
    Ok(match summary {
        Some(s) if s.status == "completed" && s.epochs_done >= epochs => CellState::Finished(s),
        Some(s) if s.epochs_done > 0 => CellState::Partial {
            done: s.epochs_done,
        },
        _ => match fs::read_to_string(dir.join("metrics.csv")) {
            Ok(text) if text.lines().skip(1).any(|l| !l.trim().is_empty()) => {
                let done = text
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .count();
                CellState::Partial { done }
            }
            _ => CellState::NothingSaved,
        },
    })
}

/// Sends SIGINT to the process `pid`.
#[cfg(unix)]
fn interrupt(pid: u32) {
    unsafe extern "C" {
        fn kill(pid: i32, signal: i32) -> i32;
    }
    const SIGINT: i32 = 2;
    // SAFETY: kill(2) takes two integers and touches no memory of ours; at
    // worst the process has already exited and the call fails.
    unsafe {
        kill(pid as i32, SIGINT);
    }
}

/// Runs `args` as a child of this binary, its output appended to `log`.
/// Ctrl-C reaches it through `child_pid` (see [`run`]).
fn run_cell(args: &[String], log: &Path, child_pid: &AtomicU32) -> anyhow::Result<ExitStatus> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    use std::io::Write;
    writeln!(file, "=== xtask {}", args.join(" "))
        .with_context(|| format!("cannot write {}", log.display()))?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    // Its own process group: a terminal's Ctrl-C reaches the sweep alone,
    // which passes it on once, so the cell sees one Ctrl-C, not two.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("cannot start a training process")?;
    child_pid.store(child.id(), Ordering::SeqCst);
    let status = child.wait();
    child_pid.store(0, Ordering::SeqCst);
    Ok(status?)
}

/// The last `n` lines of `path`.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n    ")
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let dir = args.out.clone();
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = if manifest_path.exists() {
        let saved = SweepManifest::load(&dir)?;
        let manifest = updated_manifest(&saved, &args, &manifest_path)?;
        manifest.validate(&manifest_path)?;
        manifest
    } else {
        if dir.join("config.json").exists() {
            bail!(
                "{} is a training run folder, not a sweep; choose another --out",
                dir.display()
            );
        }
        let manifest = new_manifest(&args)?;
        manifest.validate(Path::new("the sweep's flags"))?;
        manifest
    };
    check_settings(&manifest, &dir)?;
    fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.join("logs").display()))?;
    manifest.save(&dir)?;

    let stop = Arc::new(AtomicBool::new(false));
    let child_pid = Arc::new(AtomicU32::new(0));
    {
        let (stop, child_pid) = (stop.clone(), child_pid.clone());
        ctrlc::set_handler(move || {
            stop.store(true, Ordering::SeqCst);
            let pid = child_pid.load(Ordering::SeqCst);
            eprintln!("Ctrl-C: stopping the running cell after its current step");
            #[cfg(unix)]
            if pid != 0 {
                interrupt(pid);
            }
        })
        .context("cannot install the Ctrl-C handler")?;
    }

    let cells = manifest.cells();
    let total = cells.len();
    let (mut trained, mut skipped, mut failed) = (0, 0, Vec::new());
    for (i, cell) in cells.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let out = dir.join(&cell.name);
        let log = dir.join("logs").join(format!("{}.log", cell.name));
        let head = format!("[{}/{total}] {}", i + 1, cell.name);
        let state = match cell_state(cell, &out, manifest.epochs) {
            Ok(state) => state,
            Err(e) => {
                println!("{head}: failed: {e:#}");
                failed.push(cell.name.clone());
                continue;
            }
        };
        let args = match &state {
            CellState::Finished(s) => {
                let error = s
                    .test_error_at_best
                    .or(s.best_valid_error)
                    .map_or("n/a".into(), |e| format!("{e:.2}%"));
                println!("{head}: finished, skipped (error at best epoch {error})");
                skipped += 1;
                continue;
            }
            CellState::New => {
                println!("{head}: training {} epoch(s)", manifest.epochs);
                start_flags(&manifest, cell, &out)
            }
            CellState::Partial { done } => {
                println!("{head}: resuming after epoch {done} of {}", manifest.epochs);
                resume_flags(&manifest, &out)
            }
            CellState::NothingSaved => {
                println!("{head}: its run folder has no saved epoch; training it from epoch 1");
                resume_flags(&manifest, &out)
            }
        };
        let started = Instant::now();
        let status = run_cell(&args, &log, &child_pid)?;
        let seconds = started.elapsed().as_secs_f64();
        if status.success() {
            let error = RunSummary::load(&out)
                .ok()
                .flatten()
                .and_then(|s| s.test_error_at_best.or(s.best_valid_error))
                .map_or("n/a".into(), |e| format!("{e:.2}%"));
            println!("{head}: done in {seconds:.0} s (error at best epoch {error})");
            trained += 1;
        } else if stop.load(Ordering::SeqCst) || status.code() == Some(130) {
            println!(
                "{head}: stopped; its last finished epoch is kept. Run the same command \
                 again to continue the sweep."
            );
            std::process::exit(130);
        } else {
            let code = status
                .code()
                .map_or("a signal".into(), |c| format!("status {c}"));
            println!(
                "{head}: failed with {code}; the end of {}:\n    {}",
                log.display(),
                tail(&log, 4)
            );
            failed.push(cell.name.clone());
        }
    }
    if stop.load(Ordering::SeqCst) {
        println!("stopped before the next cell. Run the same command again to continue.");
        std::process::exit(130);
    }
    println!(
        "{total} cells: {trained} trained, {skipped} already finished, {} failed. \
         Figures: cargo xtask plot {}",
        failed.len(),
        dir.display()
    );
    if !failed.is_empty() {
        bail!(
            "{} cell(s) failed ({}); their logs (or the messages above) say why; once that \
             is mended, the same command retries them and skips the finished cells. Logs: {}",
            failed.len(),
            failed.join(", "),
            dir.join("logs").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SweepArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sweep: SweepArgs,
        }
        let mut all = vec!["sweep", "--out", "s"];
        all.extend_from_slice(extra);
        Cli::try_parse_from(all).unwrap().sweep
    }

    #[test]
    fn a_new_sweep_fixes_its_schedule() {
        let m = new_manifest(&args(&[
            "--epochs", "4", "--p-last", "1,0.5", "--depths", "14,8",
        ]))
        .unwrap();
        assert_eq!(m.depths, [8, 14]);
        assert_eq!(m.p_last, [0.5, 1.0]);
        assert_eq!(m.rules, [SweepRule::Linear, SweepRule::Uniform]);
        // 50% and 75% of 4 epochs, as `train` computes them.
        assert_eq!(m.train_flags["milestones"], "2,3");
        let cell = &m.cells()[1];
        let flags = start_flags(&m, cell, Path::new("s/d8-linear-p0.50"));
        assert_eq!(
            flags.join(" "),
            "train --milestones 2,3 --depth 8 --schedule linear --p-last 0.5 --epochs 4 \
             --out s/d8-linear-p0.50 --plain"
        );
    }

    #[test]
    fn a_different_setting_is_refused_and_the_grid_needs_update() {
        let saved = new_manifest(&args(&["--epochs", "2", "--batch-size", "32"])).unwrap();
        let path = Path::new("s/sweep.json");
        let err = updated_manifest(&saved, &args(&["--batch-size", "64"]), path).unwrap_err();
        assert!(err.to_string().contains("--batch-size 64 differs"), "{err}");
        let err = updated_manifest(&saved, &args(&["--depths", "8"]), path).unwrap_err();
        assert!(err.to_string().contains("--update"), "{err}");
        let err = updated_manifest(&saved, &args(&["--epochs", "3"]), path).unwrap_err();
        assert!(err.to_string().contains("--update"), "{err}");
        let err = updated_manifest(&saved, &args(&["--update", "--epochs", "1"]), path);
        assert!(err.unwrap_err().to_string().contains("never shortened"));

        let same = args(&["--epochs", "2", "--batch-size", "32", "--data", "elsewhere"]);
        let m = updated_manifest(&saved, &same, path).unwrap();
        assert_eq!(m.train_flags["data"], "elsewhere", "the data may move");
        let grown = updated_manifest(&saved, &args(&["--update", "--depths", "8,20"]), path);
        assert_eq!(grown.unwrap().depths, [8, 20]);

        let one = new_manifest(&args(&["--epochs", "1"])).unwrap();
        let err = updated_manifest(&one, &args(&["--update", "--epochs", "4"]), path);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("no learning-rate drops")
        );
    }
}
