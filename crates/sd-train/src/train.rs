//! One training run on burn-train's learner, from a config to a run folder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::config::Config;
use burn::module::Module;
use burn::train::logger::FileMetricLogger;
use burn::train::metric::{CpuMemory, CpuUse, LearningRateMetric};
use burn::train::{Interrupter, Learner, SupervisedTraining};

use crate::backend::Backend;
use crate::config::TrainingConfig;
use crate::data::{Loaders, load_data};
use crate::error::TrainError;
use crate::metrics::{NonFiniteLoss, StepMetric};
use crate::renderer::PlainLog;
use crate::run::{
    AtomicCheckpointer, CsvLogger, KeepLastAndBest, RunTable, Summary, complete_checkpoints,
    write_atomic,
};
use crate::schedule::MilestoneLr;
use crate::step::Classifier;

/// How a run is carried out, as opposed to what it computes ([`TrainingConfig`]).
#[derive(Clone)]
pub struct RunOptions {
    /// The run folder.
    pub out: PathBuf,
    /// Continue the run in `out` from its last saved epoch.
    pub resume: bool,
    /// Where to compute.
    pub backend: Backend,
    /// Which of the backend's devices.
    pub device_index: usize,
    /// Burn's dashboard (true) or the plain log (false).
    pub dashboard: bool,
    /// Stops the run after the current step when triggered (Ctrl-C).
    pub interrupter: Interrupter,
}

/// Checks what a user can get wrong in a training config, before any work.
pub fn validate(config: &TrainingConfig) -> Result<(), TrainError> {
    config.model.validate()?;
    if config.epochs == 0 {
        return Err(TrainError::setting("epochs", 0, "at least 1"));
    }
    if config.batch_size == 0 {
        return Err(TrainError::setting("batch-size", 0, "at least 1"));
    }
    let lr = config.optimizer.lr;
    if !(lr.is_finite() && lr > 0.0) {
        return Err(TrainError::setting("lr", lr, "a positive number"));
    }
    let milestones = config.schedule.milestones_for(config.epochs);
    if milestones.windows(2).any(|w| w[0] >= w[1]) {
        let value = format!("{milestones:?}");
        return Err(TrainError::setting(
            "milestones",
            value,
            "strictly increasing epochs",
        ));
    }
    if let Some(&m) = milestones.iter().find(|&&m| m == 0 || m > config.epochs) {
        let expected = format!("epochs between 1 and {}", config.epochs);
        return Err(TrainError::setting("milestones", m, &expected));
    }
    let wd = config.optimizer.weight_decay;
    if !(wd.is_finite() && wd >= 0.0) {
        return Err(TrainError::setting("weight-decay", wd, "a number >= 0"));
    }
    let momentum = config.optimizer.momentum;
    if !(0.0..1.0).contains(&momentum) {
        return Err(TrainError::setting(
            "optimizer.momentum",
            momentum,
            "in [0, 1)",
        ));
    }
    let dampening = config.optimizer.dampening;
    if !(0.0..=1.0).contains(&dampening) {
        return Err(TrainError::setting(
            "optimizer.dampening",
            dampening,
            "in [0, 1]",
        ));
    }
    let gamma = config.schedule.gamma;
    if !(gamma > 0.0 && gamma <= 1.0) {
        return Err(TrainError::setting("schedule.gamma", gamma, "in (0, 1]"));
    }
    if config.data.max_train == Some(0) {
        return Err(TrainError::setting(
            "max-train",
            0,
            "at least 1 (or no cap)",
        ));
    }
    if config.data.max_eval == Some(0) {
        return Err(TrainError::setting("max-eval", 0, "at least 1 (or no cap)"));
    }
    Ok(())
}

/// The config of an existing run folder.
pub fn load_run_config(out: &Path) -> Result<TrainingConfig, TrainError> {
    if !out.is_dir() {
        return Err(TrainError::Run {
            path: out.to_path_buf(),
            problem: "no such folder".into(),
        });
    }
    let path = out.join("config.json");
    if !path.is_file() {
        return Err(TrainError::Run {
            path: out.to_path_buf(),
            problem: "no config.json: not a run folder (train one with `cargo xtask train`)".into(),
        });
    }
    let config = TrainingConfig::load(&path).map_err(|e| TrainError::Corrupt {
        path: path.clone(),
        problem: format!("not a training config: {e}"),
    })?;
    validate(&config).map_err(|e| TrainError::Corrupt {
        path,
        problem: format!("invalid setting: {e}"),
    })?;
    Ok(config)
}

/// Trains `config` into `opts.out`, or resumes the run there.
pub fn train(config: TrainingConfig, opts: &RunOptions) -> Result<Summary, TrainError> {
    let started = Instant::now();
    validate(&config)?;
    let device = opts.backend.device(opts.device_index)?;

    if !opts.resume && opts.out.join("config.json").exists() {
        return Err(TrainError::Run {
            path: opts.out.clone(),
            problem: "already holds a run; pass --resume to continue it or choose another --out"
                .into(),
        });
    }

    // Resume point: the last epoch with a metrics row and all three checkpoint files.
    let checkpoint_dir = opts.out.join("checkpoint");
    let metrics_path = opts.out.join("metrics.csv");
    let (table, start_epoch) = resume_point(opts, &checkpoint_dir, &metrics_path)?;
    if start_epoch > config.epochs {
        let expected = format!("at least {start_epoch}, the epochs this run has finished");
        return Err(TrainError::setting("epochs", config.epochs, &expected));
    }
    if start_epoch > 0 && start_epoch == config.epochs {
        return Err(TrainError::Run {
            path: opts.out.clone(),
            problem: format!(
                "already finished all {start_epoch} epochs; pass a larger --epochs to go on"
            ),
        });
    }

    // Data first: a bad path fails before a run folder is created.
    let mut config = config;
    let data = load_data(&config)?;
    if opts.interrupter.should_stop() {
        return Err(TrainError::Run {
            path: opts.out.clone(),
            problem: "interrupted while loading the data; nothing was written".into(),
        });
    }
    config.model.num_classes = data.classes().len();
    if config.model.num_classes < 2 {
        return Err(TrainError::setting(
            "classes in the data",
            format!("{:?}", data.classes()),
            "at least 2 classes to tell apart",
        ));
    }
    let config = prepare_run_folder(config, opts)?;
    let Loaders {
        train,
        eval,
        iterations_per_epoch,
    } = data.loaders(&config, start_epoch);

    device.seed(config.seed);
    // Weights drawn now, from the seed, on the autodiff device they train on.
    let net = sd_model::resnet::initialize(config.model.init(&device.clone().autodiff()));
    let model = Classifier::new(net, config.seed, config.optimizer.dropped_blocks);
    log::info!("{}", model.describe());
    let milestones = config.schedule.milestones_for(config.epochs);
    let scheduler = MilestoneLr::new(
        config.optimizer.lr,
        config.schedule.gamma,
        &milestones,
        iterations_per_epoch,
    );
    if start_epoch > 0 {
        check_checkpoint(&checkpoint_dir, start_epoch, &model)?;
    }
    let learner = Learner::new(model, config.optimizer.sgd().init(), scheduler);

    let mut table = table;
    table.path = Some(metrics_path.clone());
    let table = Arc::new(Mutex::new(table));
    let non_finite: NonFiniteLoss = Arc::new(Mutex::new(None));
    let kept = complete_checkpoints(&checkpoint_dir);
    let guard = Some((opts.interrupter.clone(), non_finite.clone()));
    let mut training = SupervisedTraining::new(&opts.out, train, eval)
        .metric_train_numeric(StepMetric::loss(guard))
        .metric_train_numeric(StepMetric::error())
        .metric_train_numeric(StepMetric::blocks_run())
        .metric_train_numeric(StepMetric::expected_depth())
        .metric_train_numeric(StepMetric::first_layer_grad())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(CpuUse::new())
        .metric_train_numeric(CpuMemory::new())
        .metric_valid_numeric(StepMetric::loss(None))
        .metric_valid_numeric(StepMetric::error())
        .with_custom_checkpointers(
            AtomicCheckpointer::new(&checkpoint_dir, "model"),
            AtomicCheckpointer::new(&checkpoint_dir, "optim"),
            AtomicCheckpointer::new(&checkpoint_dir, "scheduler"),
        )
        .with_checkpointing_strategy(KeepLastAndBest::new(table.clone(), kept))
        .with_metric_logger(FileMetricLogger::new(opts.out.clone()))
        .with_metric_logger(CsvLogger::new(table.clone(), config.test_every_epoch))
        .with_interrupter(opts.interrupter.clone())
        .num_epochs(config.epochs);
    if config.test_every_epoch {
        training = training.metric_valid_numeric(StepMetric::test_error());
    }
    if start_epoch > 0 {
        training = training.checkpoint(start_epoch);
    }
    if !opts.dashboard {
        training = training.renderer(Box::new(PlainLog::new(Duration::from_secs(10))));
    }

    let result = training.launch(learner);
    drop(result.renderer);

    let table = table
        .lock()
        .expect("the run table is never poisoned")
        .clone();
    let finished = table.rows.last().is_some_and(|r| r.epoch >= config.epochs);
    let status = match (&result.error, finished) {
        (Some(e), _) => format!("failed: {e}"),
        (None, true) => "completed".to_string(),
        (None, false) => {
            let reason = result
                .interrupted
                .as_ref()
                .and_then(|i| i.reason.clone())
                .or_else(|| opts.interrupter.get_message())
                .unwrap_or_else(|| "interrupted".to_string());
            format!("stopped: {reason}")
        }
    };
    // Wall time over every invocation of this run (a resume adds to it).
    let earlier = match opts.resume {
        true => std::fs::read_to_string(opts.out.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
            .map_or(0.0, |s| s.wall_seconds),
        false => 0.0,
    };
    let wall = earlier + started.elapsed().as_secs_f64();
    let summary = Summary::from_table(&table, config.epochs, wall, status);
    if let Some(summary) = &summary {
        let json = serde_json::to_string_pretty(summary).expect("a summary serialises");
        let path = opts.out.join("summary.json");
        write_atomic(&path, json.as_bytes()).map_err(|e| TrainError::io(&path, "write", e))?;
    }
    if let Some(reason) = non_finite.lock().expect("the non-finite-loss flag").clone() {
        let kept = match table.rows.last() {
            Some(row) => format!(
                "the checkpoint of epoch {} is kept; try a lower --lr, then --resume",
                row.epoch
            ),
            None => "no epoch had finished, so nothing was saved; try a lower --lr".to_string(),
        };
        return Err(TrainError::NonFinite(format!("{reason}; {kept}")));
    }
    if let Some(error) = result.error {
        return Err(TrainError::Device(format!("training failed: {error}")));
    }
    summary.ok_or_else(|| TrainError::Run {
        path: opts.out.clone(),
        problem: "stopped before the first epoch finished; nothing was saved".into(),
    })
}

/// Checks that the checkpoint of `epoch` loads, and fits `model`, before the
/// learner (which panics on a bad file) reads it.
fn check_checkpoint(dir: &Path, epoch: usize, model: &Classifier) -> Result<(), TrainError> {
    let corrupt = |part: &str, e: &dyn std::fmt::Display| TrainError::Corrupt {
        path: AtomicCheckpointer::path(dir, part, epoch),
        problem: format!("unreadable checkpoint ({e}); delete it to resume from the epoch before"),
    };
    let path = |part: &str| AtomicCheckpointer::path(dir, part, epoch);
    let record =
        burn::store::ModuleRecord::load(path("model")).map_err(|e| corrupt("model", &e))?;
    model
        .clone()
        .try_load_record(record)
        .map_err(|e| corrupt("model", &e))?;
    burn::optim::OptimizerRecord::load(path("optim")).map_err(|e| corrupt("optim", &e))?;
    burn::optim::lr_scheduler::LrSchedulerRecord::load(path("scheduler"))
        .map_err(|e| corrupt("scheduler", &e))?;
    Ok(())
}

/// Creates the run folder and saves the config (again, on resume).
fn prepare_run_folder(
    config: TrainingConfig,
    opts: &RunOptions,
) -> Result<TrainingConfig, TrainError> {
    let path = opts.out.join("config.json");
    if opts.resume {
        let json = config.to_string();
        write_atomic(&path, json.as_bytes()).map_err(|e| TrainError::io(&path, "write", e))?;
        return Ok(config);
    }
    if path.exists() {
        return Err(TrainError::Run {
            path: opts.out.clone(),
            problem: "already holds a run; pass --resume to continue it or choose another --out"
                .into(),
        });
    }
    validate(&config)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, "create", e))?;
    let json = config.to_string();
    write_atomic(&path, json.as_bytes()).map_err(|e| TrainError::io(&path, "write", e))?;
    Ok(config)
}

fn resume_point(
    opts: &RunOptions,
    checkpoint_dir: &Path,
    metrics_path: &Path,
) -> Result<(RunTable, usize), TrainError> {
    if !opts.resume {
        return Ok((RunTable::default(), 0));
    }
    let epochs = complete_checkpoints(checkpoint_dir);
    let Some(&last) = epochs.last() else {
        let done = match metrics_path.is_file() {
            true => RunTable::read(metrics_path)?.rows.len(),
            false => 0,
        };
        if done > 0 {
            return Err(TrainError::Run {
                path: opts.out.clone(),
                problem: format!(
                    "metrics.csv records {done} epoch(s) but checkpoint/ holds no complete \
                     checkpoint; refusing to start over (remove metrics.csv to do so)"
                ),
            });
        }
        return Ok((RunTable::default(), 0));
    };
    let mut table = RunTable::read(metrics_path)?;
    table.rows.retain(|r| r.epoch <= last);
    if table.rows.last().map(|r| r.epoch) != Some(last) {
        return Err(TrainError::Run {
            path: opts.out.clone(),
            problem: format!("checkpoint of epoch {last} has no row in metrics.csv"),
        });
    }
    Ok((table, last))
}
