//! `report.md`: every figure, as a PNG shown and an SVG linked, with the
//! numbers behind it in a table underneath, and the training-time table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::ReportError;
use crate::figures::{self, ErrorCurves, ErrorVsSurvival, GradientCurves, HeatMap, Saved};
use crate::run::{ErrorKind, Run};
use crate::sweep::{Cell, Sweep};
use crate::table::TimeTable;

/// The report's file name inside the output folder.
pub const REPORT_FILE: &str = "report.md";

/// At most this many epochs are listed under the gradient figure.
const MAX_GRADIENT_ROWS: usize = 25;

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// `report.md`.
    pub markdown: PathBuf,
    /// Every figure drawn, in the report's order.
    pub figures: Vec<Saved>,
}

/// Draws the figures of `runs` (error curves, first-layer gradient,
/// training time) and of each sweep (error against `p_L`, one heat map per
/// rule, training time) into `out`, and writes `out/report.md` linking them.
pub fn write_report(runs: &[Run], sweeps: &[Sweep], out: &Path) -> Result<Report, ReportError> {
    std::fs::create_dir_all(out).map_err(|e| ReportError::io(out, "create", e))?;
    let mut md = String::from("# Figures and tables from this project's runs\n\n");
    md += "Written by `cargo xtask plot`. Errors are in percent; each figure is shown as \
           a PNG and linked as an SVG, with the numbers behind it underneath.\n\n";
    let mut saved = Vec::new();

    if !runs.is_empty() {
        md += "Runs:\n\n";
        for run in runs {
            let (done, planned) = run.progress();
            let status = run
                .summary
                .as_ref()
                .map_or("no summary yet", |s| s.status.as_str());
            let _ = writeln!(
                md,
                "- `{}`: {}; {done} of {planned} epochs ({status})",
                run.path.display(),
                run.describe()
            );
        }
        md += "\n";
        let refs: Vec<&Run> = runs.iter().collect();
        run_sections(&refs, out, &mut md, &mut saved)?;
    }
    for (i, sweep) in sweeps.iter().enumerate() {
        let prefix = match sweeps.len() {
            1 => "sweep".to_string(),
            _ => format!("sweep{}", i + 1),
        };
        sweep_sections(sweep, &prefix, out, &mut md, &mut saved)?;
    }

    let markdown = out.join(REPORT_FILE);
    std::fs::write(&markdown, md).map_err(|e| ReportError::io(&markdown, "write", e))?;
    Ok(Report {
        markdown,
        figures: saved,
    })
}

/// `![alt](stem.png)` and a link to the SVG.
fn embed(md: &mut String, saved: &Saved, alt: &str) {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let _ = writeln!(md, "![{alt}]({})\n", name(&saved.png));
    let _ = writeln!(md, "[SVG]({})\n", name(&saved.svg));
}

fn percent(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:.2}"))
}

fn run_sections(
    runs: &[&Run],
    out: &Path,
    md: &mut String,
    saved: &mut Vec<Saved>,
) -> Result<(), ReportError> {
    md.push_str("## Error during training (the paper's Figure 3)\n\n");
    let figure = ErrorCurves::new(runs)?;
    let files = figures::save(&figure, out, "error-curves")?;
    embed(md, &files, "Error against epoch");
    md.push_str(
        "The filled circle marks each run's best epoch on validation, the one the \
         paper reports.\n\n| run | network, survival rule | curve shows | best validation \
         epoch | validation error there | test error there | last epoch | error at last \
         epoch |\n|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let best = run.best_epoch().and_then(|e| run.row(e));
        let last = run.epochs.last();
        let curve_at = |row: Option<&crate::run::EpochRow>| match run.curve_kind() {
            ErrorKind::Test => row.and_then(|r| r.test_error),
            ErrorKind::Validation => row.and_then(|r| r.valid_error),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            run.name,
            run.describe(),
            run.curve_kind().name(),
            best.map_or("n/a".into(), |r| r.epoch.to_string()),
            percent(best.and_then(|r| r.valid_error)),
            percent(best.and_then(|r| r.test_error)),
            last.map_or("n/a".into(), |r| r.epoch.to_string()),
            percent(curve_at(last)),
        );
    }
    saved.push(files);

    md.push_str("\n## Gradient reaching the first layer (the paper's Figure 7)\n\n");
    match GradientCurves::new(runs) {
        Ok(figure) => {
            let files = figures::save(&figure, out, "first-layer-gradient")?;
            embed(
                md,
                &files,
                "Mean absolute gradient of the first convolution per epoch",
            );
            gradient_table(runs, md);
            saved.push(files);
        }
        Err(ReportError::Empty { why, .. }) => {
            let _ = writeln!(md, "Not drawn: {why}.");
        }
        Err(e) => return Err(e),
    }

    md.push_str("\n## Training time (the paper's Table 2)\n\n");
    time_table(runs, md);
    md.push('\n');
    Ok(())
}

/// Epochs as rows, runs as columns; at most [`MAX_GRADIENT_ROWS`] epochs,
/// evenly spaced, the last one always included.
fn gradient_table(runs: &[&Run], md: &mut String) {
    let last = runs
        .iter()
        .filter_map(|r| r.epochs.last())
        .map(|r| r.epoch)
        .max()
        .unwrap_or(0);
    let step = last.div_ceil(MAX_GRADIENT_ROWS).max(1);
    let mut epochs: Vec<usize> = (1..=last).filter(|e| (e - 1) % step == 0).collect();
    if epochs.last() != Some(&last) {
        epochs.push(last);
    }
    if step > 1 {
        let _ = writeln!(
            md,
            "Every {step}th epoch; every epoch is in each run's `metrics.csv` \
             (`first_layer_grad`).\n"
        );
    }
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(md, "| epoch | {} |", names.join(" | "));
    let _ = writeln!(md, "|---:|{}", "---:|".repeat(runs.len()));
    for epoch in epochs {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                r.row(epoch)
                    .map(|row| row.first_layer_grad)
                    .filter(|g| g.is_finite())
                    .map_or("".into(), |g| format!("{g:.3e}"))
            })
            .collect();
        let _ = writeln!(md, "| {epoch} | {} |", cells.join(" | "));
    }
}

fn time_table(runs: &[&Run], md: &mut String) {
    md.push_str(
        "Training time is the sum of the epochs' training-split times (no evaluation); \
         the speed-up is the constant-depth run's time per epoch over the run's, at the \
         same depth, data and batch size.\n\n",
    );
    md.push_str(&TimeTable::new(runs).to_markdown());
}

fn sweep_sections(
    sweep: &Sweep,
    prefix: &str,
    out: &Path,
    md: &mut String,
    saved: &mut Vec<Saved>,
) -> Result<(), ReportError> {
    let m = &sweep.manifest;
    let _ = writeln!(
        md,
        "## Sweep `{}` (the paper's Figure 8)\n",
        sweep.path.display()
    );
    let cells = m.cells();
    let flags: Vec<String> = m
        .train_flags
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("--{k} {v}"))
        .collect();
    let _ = writeln!(
        md,
        "Depths {:?}, p_L {:?}, rules {}; {} epoch(s) per cell, shared flags `{}`. \
         {} of {} cells have finished epochs. Each cell's number is its {} at its best \
         validation epoch.\n",
        m.depths,
        m.p_last,
        m.rules
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", "),
        m.epochs,
        flags.join(" "),
        sweep.runs.len(),
        cells.len(),
        sweep.kind().name(),
    );

    md.push_str("### Error against p_L\n\n");
    let files = figures::save(
        &ErrorVsSurvival::new(sweep)?,
        out,
        &format!("{prefix}-error-vs-p-last"),
    )?;
    embed(md, &files, "Error against p_L");
    saved.push(files);
    let columns: Vec<(usize, crate::sweep::SweepRule)> = m
        .depths
        .iter()
        .flat_map(|&d| m.rules.iter().map(move |&r| (d, r)))
        .collect();
    let heads: Vec<String> = columns
        .iter()
        .map(|(d, r)| format!("ResNet-{d} {r}"))
        .collect();
    let _ = writeln!(md, "| p_L | {} |", heads.join(" | "));
    let _ = writeln!(md, "|---:|{}", "---:|".repeat(columns.len()));
    for &p in &m.p_last {
        let cells: Vec<String> = columns
            .iter()
            .map(|&(d, r)| percent(sweep.value(&Cell::new(d, r, p))))
            .collect();
        let _ = writeln!(md, "| {p} | {} |", cells.join(" | "));
    }

    for &rule in &m.rules {
        let _ = writeln!(md, "\n### Error over p_L and depth, {rule} rule\n");
        let map = HeatMap::new(sweep, rule)?;
        let files = figures::save(&map, out, &format!("{prefix}-heatmap-{rule}"))?;
        embed(md, &files, &format!("Heat map of the error, {rule} rule"));
        saved.push(files);
        let heads: Vec<String> = m.p_last.iter().map(|p| format!("p_L = {p}")).collect();
        let _ = writeln!(md, "| depth | {} |", heads.join(" | "));
        let _ = writeln!(md, "|---:|{}", "---:|".repeat(m.p_last.len()));
        for (depth, row) in m.depths.iter().zip(map.values()).rev() {
            let cells: Vec<String> = row.into_iter().map(percent).collect();
            let _ = writeln!(md, "| {depth} | {} |", cells.join(" | "));
        }
    }

    md.push_str("\n### Training time of the cells\n\n");
    time_table(&sweep.cell_runs(), md);
    md.push('\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{MANIFEST_FORMAT, SweepManifest, SweepRule};
    use crate::testing::{RunSpec, scratch, write_sweep};

    #[test]
    fn the_report_links_every_figure_with_its_numbers() {
        let dir = scratch("report");
        let runs = vec![
            Run::load(
                &RunSpec::new(14, "constant", 1.0)
                    .errors(&[50.0, 40.0, 42.0])
                    .timing(30.0, 6.0)
                    .write(&dir, "const14"),
            )
            .unwrap(),
            Run::load(
                &RunSpec::new(14, "linear", 0.5)
                    .errors(&[52.0, 41.0, 39.0])
                    .timing(24.0, 4.5)
                    .write(&dir, "sd14"),
            )
            .unwrap(),
        ];
        let manifest = SweepManifest {
            format: MANIFEST_FORMAT,
            depths: vec![8, 14],
            p_last: vec![0.5, 1.0],
            rules: vec![SweepRule::Linear, SweepRule::Uniform],
            epochs: 1,
            train_flags: [("max-train".to_string(), "2000".to_string())].into(),
        };
        let sweep_dir = dir.join("sweep");
        std::fs::create_dir_all(&sweep_dir).unwrap();
        write_sweep(&sweep_dir, &manifest, |_| true);
        let sweep = Sweep::load(&sweep_dir).unwrap();

        let out = dir.join("figures");
        let report = write_report(&runs, &[sweep], &out).unwrap();
        let names: Vec<String> = report
            .figures
            .iter()
            .map(|f| f.png.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "error-curves.png",
                "first-layer-gradient.png",
                "sweep-error-vs-p-last.png",
                "sweep-heatmap-linear.png",
                "sweep-heatmap-uniform.png"
            ]
        );
        let md = std::fs::read_to_string(&report.markdown).unwrap();
        for file in names.iter().map(|n| n.replace(".png", "")) {
            assert!(
                md.contains(&format!("]({file}.png)")),
                "{file}.png not shown"
            );
            assert!(
                md.contains(&format!("[SVG]({file}.svg)")),
                "{file}.svg not linked"
            );
            assert!(out.join(format!("{file}.svg")).is_file());
        }
        // Figure 3's numbers: sd14's best epoch is 3, validation 39, test 40.
        assert!(md.contains("| sd14 | ResNet-14, linear decay, p_L = 0.5 | test error | 3 | 39.00 | 40.00 | 3 | 40.00 |"), "{md}");
        // Table 2: 30 s against 24 s per epoch.
        assert!(md.contains("| 1.25x |"), "{md}");
        // Figure 7's numbers: 1e-3 / epoch.
        assert!(md.contains("| 2 | 5.000e-4 | 5.000e-4 |"), "{md}");
        // Figure 8: p_L = 0.5 at depth 8 is 0.8 + 5 + 1 = 6.8; the constant cell 11.8.
        assert!(md.contains("| 0.5 | 6.80 | 6.80 | 7.40 | 7.40 |"), "{md}");
        assert!(md.contains("| 1 | 11.80 | 11.80 | 12.40 | 12.40 |"), "{md}");
        assert!(
            md.contains("| 14 | 7.40 | 12.40 |"),
            "heat-map rows, deepest first: {md}"
        );
        assert!(md.contains("`--max-train 2000`"), "{md}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
