//! `cargo xtask train`: flags and an optional config file become a
//! `TrainingConfig`; flags win over the file, the file over the paper's defaults.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use sd_data::{DatasetConfig, DatasetKind};
use sd_model::{Granularity, Scaling, SurvivalRule};
use sd_train::train::{RunOptions, train, validate};
use sd_train::{Backend, TrainingConfig};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Backend: flex (CPU, fastest here), ndarray (CPU, deprecated) or wgpu (GPU).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Device index within the backend (see `cargo xtask devices`).
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Data set: cifar10, cifar100 (fine labels), cifar100-coarse, svhn or folder.
    /// svhn selects the paper's SVHN recipe (ResNet-152, 50 epochs, drops at 30 and 35).
    #[arg(long)]
    dataset: Option<String>,
    /// Where the data is: an archive, a folder, or where to download it.
    #[arg(long)]
    data: Option<String>,
    /// Network depth, 6n+2 (paper: 110).
    #[arg(long)]
    depth: Option<usize>,
    /// Survival rule: linear (paper), uniform or constant (no stochastic depth).
    #[arg(long)]
    schedule: Option<String>,
    /// Survival probability of the last block, p_L (paper: 0.5).
    #[arg(long, allow_hyphen_values = true)]
    p_last: Option<f64>,
    /// Gate granularity: batch (paper), sample, or sample-masked.
    #[arg(long)]
    granularity: Option<String>,
    /// Where branches are rescaled: test (paper) or train (inverted).
    #[arg(long)]
    scaling: Option<String>,
    /// Epochs (paper: 500).
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size (paper: 128).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Initial learning rate (paper: 0.1).
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Epochs after which the learning rate is divided by 10, e.g. 250,375.
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    /// Validation images held out of the training set (paper: 5000 for CIFAR).
    #[arg(long)]
    val_size: Option<usize>,
    /// Use at most this many training images (quick runs).
    #[arg(long)]
    max_train: Option<usize>,
    /// Use at most this many validation and test images (quick runs).
    #[arg(long)]
    max_eval: Option<usize>,
    /// Seed of weights, data order, augmentation and gates.
    #[arg(long)]
    seed: Option<u64>,
    /// A JSON training config; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The run folder.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Continue the run in --out from its last saved epoch.
    #[arg(long)]
    resume: bool,
    /// Print a plain log even on a terminal.
    #[arg(long)]
    plain: bool,
}

/// Overlays `patch` on `base`; keys `base` does not have are refused.
fn merge(base: &mut Value, patch: Value, path: &str) -> anyhow::Result<()> {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            // A one-key object whose key is capitalised is an enum variant: replace it whole.
            let is_variant = base.len() == 1
                && base
                    .keys()
                    .next()
                    .is_some_and(|k| k.starts_with(char::is_uppercase));
            if is_variant {
                *base = patch;
                return Ok(());
            }
            for (key, value) in patch {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value, &here)?,
                    None => bail!(
                        "unknown config key `{here}` (known here: {})",
                        base.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                }
            }
        }
        (slot, value) => *slot = value,
    }
    Ok(())
}

/// The first key of `given` that `canonical` does not have, as a dotted path.
fn unknown_key(given: &Value, canonical: &Value, path: &str) -> Option<String> {
    let (Value::Object(given), Value::Object(canonical)) = (given, canonical) else {
        return None;
    };
    given.iter().find_map(|(key, value)| {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match canonical.get(key) {
            None => Some(here),
            Some(c) => unknown_key(value, c, &here),
        }
    })
}

fn survival_rule(
    schedule: Option<&str>,
    p_last: Option<f64>,
    current: &SurvivalRule,
) -> anyhow::Result<SurvivalRule> {
    let p = p_last.unwrap_or(match current {
        SurvivalRule::LinearDecay { p_last } => *p_last,
        SurvivalRule::Uniform { p } => *p,
        _ => 0.5,
    });
    Ok(match schedule {
        None => match current {
            SurvivalRule::LinearDecay { .. } => SurvivalRule::LinearDecay { p_last: p },
            SurvivalRule::Uniform { .. } => SurvivalRule::Uniform { p },
            other if p_last.is_some() => {
                bail!("--p-last {p} needs --schedule linear or uniform, not {other:?}")
            }
            other => other.clone(),
        },
        Some("linear") => SurvivalRule::LinearDecay { p_last: p },
        Some("uniform") => SurvivalRule::Uniform { p },
        Some("constant") if p_last.is_some() => {
            bail!("--p-last {p} makes no sense with --schedule constant")
        }
        Some("constant") => SurvivalRule::Constant,
        Some(other) => bail!("--schedule {other}: expected linear, uniform or constant"),
    })
}

/// The config these flags describe.
pub fn resolve(args: &TrainArgs) -> anyhow::Result<TrainingConfig> {
    let dataset = args.dataset.as_deref().unwrap_or("cifar10");
    let mut config = TrainingConfig::paper(DatasetConfig::new(data_kind(dataset)?));
    let mut data_seed_in_file = false;
    if dataset == "cifar100-coarse" {
        config.data.cifar100_labels = sd_data::Cifar100Labels::Coarse;
    }
    if let Some(file) = &args.config {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the config file {}", file.display()))?;
        let patch: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        data_seed_in_file = patch.get("data").and_then(|d| d.get("seed")).is_some();
        let mut base = serde_json::to_value(&config).expect("a config serialises");
        merge(&mut base, patch, "").with_context(|| format!("in {}", file.display()))?;
        config = serde_json::from_value(base.clone())
            .with_context(|| format!("{} is not a training config", file.display()))?;
        // Keys serde skipped (inside an enum variant, say) are typos too.
        let canonical = serde_json::to_value(&config).expect("a config serialises");
        if let Some(key) = unknown_key(&base, &canonical, "") {
            bail!("unknown config key `{key}` in {}", file.display());
        }
    }
    if args.dataset.is_some() {
        config.data.kind = data_kind(dataset)?;
    }
    if let Some(path) = &args.data {
        config.data.path = Some(path.clone());
    }
    if let Some(depth) = args.depth {
        config.model.depth = depth;
    }
    if args.schedule.is_some() || args.p_last.is_some() {
        config.model.survival = survival_rule(
            args.schedule.as_deref(),
            args.p_last,
            &config.model.survival,
        )?;
    }
    if let Some(g) = &args.granularity {
        config.model.granularity = granularity(g)?;
    }
    if let Some(s) = &args.scaling {
        config.model.scaling = scaling(s)?;
    }
    macro_rules! set {
        ($flag:ident => $($field:ident).+) => {
            if let Some(v) = args.$flag.clone() {
                config.$($field).+ = v;
            }
        };
    }
    set!(epochs => epochs);
    set!(batch_size => batch_size);
    set!(lr => optimizer.lr);
    set!(seed => seed);
    if let Some(m) = &args.milestones {
        config.schedule.milestones = Some(m.clone());
    }
    if args.val_size.is_some() {
        config.data.validation_size = args.val_size;
    }
    if args.max_train.is_some() {
        config.data.max_train = args.max_train;
    }
    if args.max_eval.is_some() {
        config.data.max_eval = args.max_eval;
    }
    // One seed drives the split too, unless the config file set the data's own.
    if args.seed.is_some() || !data_seed_in_file {
        config.data.seed = config.seed;
    }
    // Milestones are fixed now, so that a later change of --epochs does not move them.
    config.schedule.milestones = Some(config.schedule.milestones_for(config.epochs));
    validate(&config)?;
    Ok(config)
}

/// On `--resume`, the run's saved config; only the length of the run and the
/// data's location may change.
fn resume_config(args: &TrainArgs) -> anyhow::Result<TrainingConfig> {
    let mut config = sd_train::train::load_run_config(&args.out)?;
    anyhow::ensure!(
        args.config.is_none(),
        "--config cannot be given with --resume: the run's settings are in {}",
        args.out.join("config.json").display()
    );
    // Flags may repeat the run's settings; a different value is refused.
    let saved = &config;
    let same_survival = match (&args.schedule, args.p_last) {
        (None, None) => true,
        (s, p) => survival_rule(s.as_deref(), p, &saved.model.survival)? == saved.model.survival,
    };
    let differs = [
        (
            "--dataset",
            args.dataset
                .as_deref()
                .map(data_kind)
                .transpose()?
                .is_some_and(|k| k != saved.data.kind),
        ),
        (
            "--depth",
            args.depth.is_some_and(|d| d != saved.model.depth),
        ),
        ("--schedule/--p-last", !same_survival),
        (
            "--granularity",
            args.granularity
                .as_deref()
                .map(granularity)
                .transpose()?
                .is_some_and(|g| g != saved.model.granularity),
        ),
        (
            "--scaling",
            args.scaling
                .as_deref()
                .map(scaling)
                .transpose()?
                .is_some_and(|s| s != saved.model.scaling),
        ),
        (
            "--batch-size",
            args.batch_size.is_some_and(|b| b != saved.batch_size),
        ),
        ("--lr", args.lr.is_some_and(|lr| lr != saved.optimizer.lr)),
        (
            "--milestones",
            args.milestones
                .as_ref()
                .is_some_and(|m| Some(m) != saved.schedule.milestones.as_ref()),
        ),
        (
            "--val-size",
            args.val_size
                .is_some_and(|v| Some(v) != saved.data.validation_size),
        ),
        (
            "--max-train",
            args.max_train
                .is_some_and(|v| Some(v) != saved.data.max_train),
        ),
        (
            "--max-eval",
            args.max_eval
                .is_some_and(|v| Some(v) != saved.data.max_eval),
        ),
        ("--seed", args.seed.is_some_and(|v| v != saved.seed)),
    ];
    if let Some((flag, _)) = differs.iter().find(|(_, differs)| *differs) {
        bail!(
            "{flag} differs from the run's setting in {}; on --resume only --epochs and \
             --data can change",
            args.out.join("config.json").display()
        );
    }
    if let Some(epochs) = args.epochs {
        let milestones = config.schedule.milestones_for(config.epochs);
        if let Some(last) = milestones.iter().copied().filter(|&m| m > epochs).max() {
            bail!(
                "--epochs {epochs} ends before the learning-rate milestones {milestones:?}, which \
                 were fixed when the run was created in {} (for {} epochs); resume with \
                 --epochs {last} or more",
                args.out.display(),
                config.epochs
            );
        }
        config.epochs = epochs;
    }
    if let Some(data) = &args.data {
        config.data.path = Some(data.clone());
    }
    validate(&config)?;
    Ok(config)
}

fn granularity(name: &str) -> anyhow::Result<Granularity> {
    Ok(match name {
        "batch" => Granularity::Batch,
        "sample" => Granularity::Sample,
        "sample-masked" => Granularity::SampleMasked,
        other => bail!("--granularity {other}: expected batch, sample or sample-masked"),
    })
}

fn scaling(name: &str) -> anyhow::Result<Scaling> {
    Ok(match name {
        "test" => Scaling::AtTest,
        "train" => Scaling::AtTrain,
        other => bail!("--scaling {other}: expected test or train"),
    })
}

fn data_kind(name: &str) -> anyhow::Result<DatasetKind> {
    Ok(match name {
        "cifar10" => DatasetKind::Cifar10,
        "cifar100" | "cifar100-coarse" => DatasetKind::Cifar100,
        "svhn" => DatasetKind::Svhn,
        "folder" => DatasetKind::Folder,
        other => {
            bail!("--dataset {other}: expected cifar10, cifar100, cifar100-coarse, svhn or folder")
        }
    })
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let backend: Backend = args.backend.parse()?;
    let config = match args.resume {
        true => resume_config(&args)?,
        false => resolve(&args)?,
    };
    let interrupter = burn::train::Interrupter::new();
    let handle = interrupter.clone();
    let mut pressed = false;
    ctrlc::set_handler(move || {
        if pressed {
            eprintln!("second Ctrl-C: exiting now; the last saved epoch is kept");
            std::process::exit(130);
        }
        pressed = true;
        eprintln!("Ctrl-C: stopping after this step; the last finished epoch stays saved");
        handle.stop(Some("interrupted by Ctrl-C"));
    })
    .context("cannot install the Ctrl-C handler")?;
    let opts = RunOptions {
        out: args.out.clone(),
        resume: args.resume,
        backend,
        device_index: args.device,
        dashboard: !args.plain && std::io::stdout().is_terminal(),
        interrupter,
    };
    let summary = train(config, &opts)?;
    println!(
        "{}: best validation error {} at epoch {}{}; {} of {} epochs, {:.0} s of training; run folder {}",
        summary.status,
        summary
            .best_valid_error
            .map_or("n/a (no validation split)".into(), |e| format!("{e:.2}%")),
        summary.best_epoch,
        summary
            .test_error_at_best
            .map(|t| format!(", test error there {t:.2}%"))
            .unwrap_or_default(),
        summary.epochs_done,
        summary.epochs_planned,
        summary.train_seconds,
        opts.out.display()
    );
    if summary.status != "completed" {
        // Interrupted: the saved epochs are intact; say so with the shell's Ctrl-C status.
        std::process::exit(130);
    }
    Ok(())
}
