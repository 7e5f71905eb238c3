//! The paper's figures, drawn with `plotters` into a PNG and an SVG each.
//!
//! - [`ErrorCurves`]: test error against epoch, one line per run, the best
//!   validation epoch marked (Figure 3).
//! - [`GradientCurves`]: the mean absolute gradient of the first convolution
//!   per epoch, on a log scale (Figure 7).
//! - [`ErrorVsSurvival`]: a sweep's error against `p_L`, one line per rule
//!   and depth (Figure 8, left).
//! - [`HeatMap`]: a sweep's error over `p_L` and depth for one rule, the
//!   number written in each cell (Figure 8, right).
//!
//! Text is set in DejaVu Sans, which is compiled into the crate, so drawing
//! needs no font installed on the machine.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::series::DashedLineSeries;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::ReportError;
use crate::run::{ErrorKind, Run};
use crate::sweep::{Cell, Sweep, SweepRule};

/// DejaVu Sans (license in `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The line colours, one per run or depth, in order.
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// What drawing returns: plotters' errors differ by backend.
type Drawn = Result<(), Box<dyn Error>>;

/// A figure that can be drawn on any plotters backend.
pub trait Figure {
    /// Width and height in pixels (the SVG uses the same units).
    fn size(&self) -> (u32, u32);

    /// Draws the figure on `root`, which is already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static;
}

/// The two files of a saved figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// The PNG file.
    pub png: PathBuf,
    /// The SVG file.
    pub svg: PathBuf,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the bundled DejaVu Sans font does not parse");
        }
    });
}

/// Draws `figure` into `dir/stem.png` and `dir/stem.svg`.
pub fn save(figure: &impl Figure, dir: &Path, stem: &str) -> Result<Saved, ReportError> {
    register_font();
    let size = figure.size();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let drawn: Drawn = (|| {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE)?;
        figure.draw(&root)?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| ReportError::draw(&png, e))?;
    let drawn: Drawn = (|| {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        figure.draw(&root)?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| ReportError::draw(&svg, e))?;
    Ok(Saved { png, svg })
}

/// `lo..hi` widened by 5% (at least `min_pad`) on each side.
fn padded(lo: f64, hi: f64, min_pad: f64) -> std::ops::Range<f64> {
    let pad = ((hi - lo) * 0.05).max(min_pad);
    (lo - pad)..(hi + pad)
}

/// The epoch axis: from 0 to a little past the last epoch.
fn epoch_axis(runs: &[&Run]) -> std::ops::Range<f64> {
    let last = runs
        .iter()
        .filter_map(|r| r.epochs.last())
        .map(|r| r.epoch)
        .max()
        .unwrap_or(1);
    0.0..last as f64 + (last as f64 * 0.03).max(0.5)
}

/// Epoch tick labels: whole epochs only.
fn epoch_label(x: &f64) -> String {
    match x.fract() == 0.0 {
        true => format!("{x:.0}"),
        false => String::new(),
    }
}

/// Whole decades around `lo..hi`, so that a log axis has labelled ticks,
/// widened by 0.1% so that rounding cannot drop the end ticks.
fn decades(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let bottom = 10f64.powf(lo.log10().floor());
    let top = 10f64.powf(hi.log10().ceil());
    let top = if top > bottom { top } else { bottom * 10.0 };
    bottom * 0.999..top * 1.001
}

/// The caption style of every figure.
fn caption_font() -> TextStyle<'static> {
    ("sans-serif", 20).into_font().into()
}

/// Test error against epoch for several runs, the best-validation epoch of
/// each marked with a filled circle, as in the paper's Figure 3. A run
/// without a test error every epoch is drawn with its validation error, and
/// its legend says so.
pub struct ErrorCurves<'a> {
    runs: Vec<&'a Run>,
}

impl<'a> ErrorCurves<'a> {
    /// The figure of `runs` (those without a finished epoch are left out).
    pub fn new(runs: &[&'a Run]) -> Result<Self, ReportError> {
        let runs: Vec<&Run> = runs
            .iter()
            .copied()
            .filter(|r| !r.error_curve().is_empty())
            .collect();
        if runs.is_empty() {
            return Err(ReportError::Empty {
                what: "the error curves".into(),
                why: "no run has a finished epoch with a test or validation error".into(),
            });
        }
        Ok(Self { runs })
    }

    /// The legend line of `run`.
    pub fn legend(run: &Run) -> String {
        let note = match run.curve_kind() {
            ErrorKind::Test => "",
            ErrorKind::Validation => " (validation error: no test error logged)",
        };
        format!("{}: {}{note}", run.name, run.describe())
    }

    /// The y-axis title: "test error (%)" unless some run falls back to
    /// validation error.
    fn y_title(&self) -> &'static str {
        match self.runs.iter().all(|r| r.curve_kind() == ErrorKind::Test) {
            true => "test error (%)",
            false => "error (%)",
        }
    }
}

impl Figure for ErrorCurves<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let values = self
            .runs
            .iter()
            .flat_map(|r| r.error_curve())
            .map(|(_, v)| v);
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Error during training (cf. the paper's Figure 3)",
                caption_font(),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(epoch_axis(&self.runs), padded(lo, hi, 0.5))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&epoch_label)
            .y_desc(self.y_title())
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        for (i, run) in self.runs.iter().enumerate() {
            let c = color(i);
            let curve: Vec<(f64, f64)> = run
                .error_curve()
                .into_iter()
                .map(|(e, v)| (e as f64, v))
                .collect();
            chart
                .draw_series(LineSeries::new(curve.clone(), c.stroke_width(2)))?
                .label(Self::legend(run))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                });
            if curve.len() <= 60 {
                chart.draw_series(curve.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
            }
        }
        // The best-validation epochs, drawn last so that no line covers them.
        let best: Vec<(f64, f64, RGBColor)> = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| {
                let epoch = run.best_epoch()?;
                let (_, v) = run.error_curve().into_iter().find(|(e, _)| *e == epoch)?;
                Some((epoch as f64, v, color(i)))
            })
            .collect();
        chart
            .draw_series(best.iter().map(|&(x, y, c)| {
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 7, c.filled())
                    + Circle::new((0, 0), 7, BLACK.stroke_width(1))
            }))?
            .label("best validation epoch")
            .legend(|(x, y)| Circle::new((x + 12, y), 6, BLACK.filled()));
        draw_legend(&mut chart)
    }
}

/// The mean absolute gradient of the first convolution's weights per
/// epoch, on a log scale, as in the paper's Figure 7. Epochs whose value is
/// not a positive number are skipped.
pub struct GradientCurves<'a> {
    runs: Vec<&'a Run>,
}

impl<'a> GradientCurves<'a> {
    /// The figure of `runs` (those without a positive gradient are left out).
    pub fn new(runs: &[&'a Run]) -> Result<Self, ReportError> {
        let runs: Vec<&Run> = runs
            .iter()
            .copied()
            .filter(|r| !Self::curve(r).is_empty())
            .collect();
        if runs.is_empty() {
            return Err(ReportError::Empty {
                what: "the first-layer gradient".into(),
                why: "no run logged a positive first_layer_grad".into(),
            });
        }
        Ok(Self { runs })
    }

    /// `(epoch, gradient)` of the epochs with a positive, finite value.
    pub fn curve(run: &Run) -> Vec<(usize, f64)> {
        run.epochs
            .iter()
            .map(|r| (r.epoch, r.first_layer_grad))
            .filter(|(_, g)| g.is_finite() && *g > 0.0)
            .collect()
    }
}

impl Figure for GradientCurves<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let values = self
            .runs
            .iter()
            .flat_map(|r| Self::curve(r))
            .map(|(_, g)| g);
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Mean |gradient| of the first convolution (cf. the paper's Figure 7)",
                caption_font(),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(epoch_axis(&self.runs), decades(lo, hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&epoch_label)
            .y_desc("mean |gradient|")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        for (i, run) in self.runs.iter().enumerate() {
            let c = color(i);
            let curve: Vec<(f64, f64)> = Self::curve(run)
                .into_iter()
                .map(|(e, g)| (e as f64, g))
                .collect();
            chart
                .draw_series(LineSeries::new(curve.clone(), c.stroke_width(2)))?
                .label(format!("{}: {}", run.name, run.describe()))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                });
            if curve.len() <= 60 {
                chart.draw_series(curve.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
            }
        }
        draw_legend(&mut chart)
    }
}

/// A sweep's error at each cell's best validation epoch against `p_L`: one
/// line per rule and depth, linear decay solid with circles, uniform dashed
/// with triangles, one colour per depth (the paper's Figure 8, left).
pub struct ErrorVsSurvival<'a> {
    sweep: &'a Sweep,
}

impl<'a> ErrorVsSurvival<'a> {
    /// The figure of `sweep`, which needs at least one finished cell.
    pub fn new(sweep: &'a Sweep) -> Result<Self, ReportError> {
        if sweep.runs.is_empty() {
            return Err(ReportError::Empty {
                what: format!("the sweep {}", sweep.path.display()),
                why: "no cell has finished an epoch yet".into(),
            });
        }
        Ok(Self { sweep })
    }
}

impl Figure for ErrorVsSurvival<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let m = &self.sweep.manifest;
        // (rule, colour index, depth, measured points)
        type Line = (SweepRule, usize, usize, Vec<(f64, f64)>);
        let lines: Vec<Line> = m
            .depths
            .iter()
            .enumerate()
            .flat_map(|(i, &depth)| m.rules.iter().map(move |&rule| (rule, i, depth)))
            .map(|(rule, i, depth)| {
                let points = self.sweep.series(rule, depth);
                let points = points
                    .into_iter()
                    .filter_map(|(p, v)| Some((p, v?)))
                    .collect();
                (rule, i, depth, points)
            })
            .collect();
        let values = lines.iter().flat_map(|l| l.3.iter().map(|p| p.1));
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let p_min = m.p_last.first().copied().unwrap_or(0.0);
        let kind = self.sweep.kind();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{} against p_L (cf. the paper's Figure 8, left)",
                    capitalised(kind)
                ),
                caption_font(),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((p_min - 0.05).max(0.0)..1.05, padded(lo, hi, 0.5))?;
        chart
            .configure_mesh()
            .x_desc("p_L (survival probability of the last block)")
            .y_desc(format!("{} (%)", kind.name()))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        for (rule, i, depth, points) in lines.into_iter().filter(|l| !l.3.is_empty()) {
            let c = color(i);
            let style = c.stroke_width(2);
            let label = format!("ResNet-{depth}, {rule}");
            match rule {
                SweepRule::Linear => {
                    chart
                        .draw_series(LineSeries::new(points.clone(), style))?
                        .label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
                    chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
                }
                SweepRule::Uniform => {
                    chart
                        .draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))?
                        .label(label)
                        .legend(move |(x, y)| {
                            DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, style)
                        });
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&p| TriangleMarker::new(p, 6, c.filled())),
                    )?;
                }
            }
        }
        draw_legend(&mut chart)
    }
}

/// The legend box of the line figures, in the top right corner.
fn draw_legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> Drawn
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn capitalised(kind: ErrorKind) -> String {
    let name = kind.name();
    name[..1].to_uppercase() + &name[1..]
}

/// A sweep's error over `p_L` (columns) and depth (rows, deepest on top)
/// for one rule, each cell's number written in it; darker is lower (the
/// paper's Figure 8, right). A cell without a finished epoch is grey.
pub struct HeatMap<'a> {
    sweep: &'a Sweep,
    rule: SweepRule,
}

impl<'a> HeatMap<'a> {
    /// The heat map of `rule` in `sweep`, which needs a finished cell.
    pub fn new(sweep: &'a Sweep, rule: SweepRule) -> Result<Self, ReportError> {
        ErrorVsSurvival::new(sweep)?;
        Ok(Self { sweep, rule })
    }

    /// The grid of values: `rows[d][p]` for depth `d` and `p_L` index `p`, as in the manifest.
    pub fn values(&self) -> Vec<Vec<Option<f64>>> {
        let m = &self.sweep.manifest;
        m.depths
            .iter()
            .map(|&d| {
                m.p_last
                    .iter()
                    .map(|&p| self.sweep.value(&Cell::new(d, self.rule, p)))
                    .collect()
            })
            .collect()
    }
}

/// White to dark blue as `t` goes from 1 to 0 (low error is dark).
fn shade(t: f64) -> RGBColor {
    let (dark, light) = ((8.0, 48.0, 107.0), (239.0, 243.0, 255.0));
    let mix = |a: f64, b: f64| (a + (b - a) * t.clamp(0.0, 1.0)).round() as u8;
    RGBColor(
        mix(dark.0, light.0),
        mix(dark.1, light.1),
        mix(dark.2, light.2),
    )
}

impl Figure for HeatMap<'_> {
    fn size(&self) -> (u32, u32) {
        let m = &self.sweep.manifest;
        let width = 160 + 90 * m.p_last.len() as u32;
        let height = 150 + 60 * m.depths.len() as u32;
        (width.max(520), height)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let m = &self.sweep.manifest;
        let values = self.values();
        let known = values.iter().flatten().flatten().copied();
        let (lo, hi) = known.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (cols, rows) = (m.p_last.len(), m.depths.len());
        let kind = self.sweep.kind();
        let title = format!(
            "{} (%), {} rule (cf. Figure 8, right)",
            capitalised(kind),
            self.rule
        );
        let area = root.titled(&title, ("sans-serif", 18))?;
        let (width, height) = area.dim_in_pixel();
        let (left, bottom, top, right) = (110i32, 70i32, 10i32, 20i32);
        let cell_w = (width as i32 - left - right) / cols as i32;
        let cell_h = (height as i32 - top - bottom) / rows as i32;
        let label = TextStyle::from(("sans-serif", 15).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        for (d, row) in values.iter().enumerate() {
            // Row 0 (the shallowest network) at the bottom.
            let y0 = top + (rows - 1 - d) as i32 * cell_h;
            for (p, value) in row.iter().enumerate() {
                let x0 = left + p as i32 * cell_w;
                let (fill, text, ink) = match value {
                    Some(v) => {
                        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                        let ink = if t < 0.5 { WHITE } else { BLACK };
                        (shade(t), format!("{v:.1}"), ink)
                    }
                    None => (RGBColor(200, 200, 200), "not run".to_string(), BLACK),
                };
                area.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell_w, y0 + cell_h)],
                    fill.filled(),
                ))?;
                area.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell_w, y0 + cell_h)],
                    WHITE,
                ))?;
                let centre = (x0 + cell_w / 2, y0 + cell_h / 2);
                area.draw(&Text::new(text, centre, label.color(&ink)))?;
            }
            let centre = (left - 12, y0 + cell_h / 2);
            let depth = format!("{}", m.depths[d]);
            let right_aligned = label.pos(Pos::new(HPos::Right, VPos::Center));
            area.draw(&Text::new(depth, centre, right_aligned))?;
        }
        let axis_y = top + rows as i32 * cell_h;
        for (p, value) in m.p_last.iter().enumerate() {
            let centre = (left + p as i32 * cell_w + cell_w / 2, axis_y + 14);
            area.draw(&Text::new(format!("{value}"), centre, label.clone()))?;
        }
        let grid_centre = left + cols as i32 * cell_w / 2;
        let x_title = format!("p_L ({} rule; 1 = constant depth)", self.rule);
        area.draw(&Text::new(
            x_title,
            (grid_centre, axis_y + 42),
            label.clone(),
        ))?;
        let y_title = label.transform(FontTransform::Rotate270);
        area.draw(&Text::new(
            "depth",
            (24, top + rows as i32 * cell_h / 2),
            y_title,
        ))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{MANIFEST_FORMAT, SweepManifest};
    use crate::testing::{RunSpec, scratch, write_sweep};

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn check_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.len() > 2000,
            "{} is {} bytes",
            path.display(),
            bytes.len()
        );
        assert_eq!(bytes[..8], PNG_SIGNATURE, "{}", path.display());
    }

    fn svg(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn error_curves_mark_the_best_validation_epoch() {
        let dir = scratch("fig3");
        let constant = RunSpec::new(20, "constant", 1.0).errors(&[50.0, 30.0, 35.0, 33.0]);
        let sd = RunSpec::new(20, "linear", 0.5)
            .errors(&[45.0, 40.0, 25.0, 28.0])
            .without_test();
        let runs = [
            Run::load(&constant.write(&dir, "const20")).unwrap(),
            Run::load(&sd.write(&dir, "sd20")).unwrap(),
        ];
        let refs: Vec<&Run> = runs.iter().collect();
        let saved = save(&ErrorCurves::new(&refs).unwrap(), &dir, "curves").unwrap();
        check_png(&saved.png);
        let text = svg(&saved.svg);
        assert!(
            text.contains("const20: ResNet-20, constant depth"),
            "legend"
        );
        assert!(text.contains("sd20: ResNet-20, linear decay, p_L = 0.5 (validation error"));
        assert!(text.contains("best validation epoch"));
        assert!(text.contains("epoch") && text.contains("error (%)"));

        // The markers sit at epoch 2 (const20: test error 31) and epoch 3
        // (sd20: validation error 25): radius-7 circles, found by their
        // position on the chart's scale, recomputed here.
        let circles = svg_circles(&text, 7.0);
        assert_eq!(circles.len(), 2, "{circles:?}");
        let (x2, y31) = circles[0];
        let (x3, y25) = circles[1];
        let unit_x = x3 - x2;
        assert!(unit_x > 0.0, "later epoch further right");
        assert!(y25 > y31, "lower error further down");
        // Epoch 0 is the left edge of the plot; epoch 2 is twice as far from it as 1 step.
        let left = x2 - 2.0 * unit_x;
        assert!(
            (30.0..140.0).contains(&left),
            "epoch 0 near the y axis, at {left}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The text of every SVG `<text>` element, trimmed.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|tag| {
                Some(
                    tag.split_once('>')?
                        .1
                        .split_once("</text>")?
                        .0
                        .trim()
                        .into(),
                )
            })
            .collect()
    }

    /// The centres of the SVG circles of radius `r`.
    fn svg_circles(svg: &str, r: f64) -> Vec<(f64, f64)> {
        let attr = |tag: &str, name: &str| -> Option<f64> {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            tag[start..].split('"').next()?.parse().ok()
        };
        let mut centres: Vec<(f64, f64)> = svg
            .split("<circle")
            .skip(1)
            .filter(|tag| attr(tag, "r") == Some(r))
            .filter_map(|tag| Some((attr(tag, "cx")?, attr(tag, "cy")?)))
            .collect();
        centres.sort_by(|a, b| a.partial_cmp(b).unwrap());
        centres.dedup();
        centres
    }

    #[test]
    fn the_gradient_figure_is_drawn_on_a_log_scale() {
        let dir = scratch("fig7");
        let spec = RunSpec::new(8, "linear", 0.5)
            .errors(&[50.0, 40.0, 30.0])
            .gradient(|e| 10f64.powi(-(e as i32) - 2));
        let run = Run::load(&spec.write(&dir, "sd8")).unwrap();
        let figure = GradientCurves::new(&[&run]).unwrap();
        assert_eq!(
            GradientCurves::curve(&run),
            vec![(1, 1e-3), (2, 1e-4), (3, 1e-5)]
        );
        let saved = save(&figure, &dir, "grad").unwrap();
        check_png(&saved.png);
        let text = svg(&saved.svg);
        assert!(text.contains("mean |gradient|") && text.contains("sd8: ResNet-8"));
        // Decades as tick labels: a log axis.
        assert!(text.contains("1e-4"), "log-scale ticks");

        let flat = RunSpec::new(8, "linear", 0.5)
            .errors(&[50.0])
            .gradient(|_| 0.0);
        let run = Run::load(&flat.write(&dir, "zero")).unwrap();
        let err = GradientCurves::new(&[&run]).err().unwrap().to_string();
        assert!(err.contains("first_layer_grad"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn log_axes_span_whole_decades() {
        let close = |a: f64, b: f64| (a / b - 1.0).abs() < 2e-3;
        let r = decades(2.2e-4, 9e-4);
        assert!(close(r.start, 1e-4) && close(r.end, 1e-3), "{r:?}");
        let r = decades(1e-3, 1e-3);
        assert!(close(r.start, 1e-3) && close(r.end, 1e-2), "{r:?}");
        assert_eq!(epoch_label(&2.0), "2");
        assert_eq!(epoch_label(&2.5), "");
    }

    #[test]
    fn sweep_figures_show_every_line_and_cell() {
        let dir = scratch("fig8");
        let manifest = SweepManifest {
            format: MANIFEST_FORMAT,
            depths: vec![8, 14, 20],
            p_last: vec![0.2, 0.5, 1.0],
            rules: vec![SweepRule::Linear, SweepRule::Uniform],
            epochs: 2,
            train_flags: Default::default(),
        };
        write_sweep(&dir, &manifest, |cell| cell.name != "d20-uniform-p0.20");
        let sweep = Sweep::load(&dir).unwrap();

        let saved = save(&ErrorVsSurvival::new(&sweep).unwrap(), &dir, "vs-p").unwrap();
        check_png(&saved.png);
        let text = svg(&saved.svg);
        for label in [
            "ResNet-8, linear",
            "ResNet-20, uniform",
            "test error (%)",
            "p_L",
        ] {
            assert!(text.contains(label), "{label} missing");
        }

        let map = HeatMap::new(&sweep, SweepRule::Uniform).unwrap();
        let values = map.values();
        // depth / 10 + 10 p_L + 1 (test error), from `write_sweep`.
        assert_eq!(values[0][1].map(|v| (v * 10.0).round()), Some(68.0));
        assert_eq!(values[2][0], None);
        let saved = save(&map, &dir, "heat").unwrap();
        check_png(&saved.png);
        let text = svg(&saved.svg);
        let texts = svg_texts(&text);
        for cell in ["6.8", "13.0", "not run", "0.2", "20"] {
            assert!(
                texts.iter().any(|t| t == cell),
                "no text {cell} in {texts:?}"
            );
        }
        assert!(text.contains("uniform rule"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_folder_is_named() {
        let dir = scratch("fig-unwritable");
        let run = Run::load(
            &RunSpec::new(8, "linear", 0.5)
                .errors(&[5.0])
                .write(&dir, "r"),
        )
        .unwrap();
        let missing = dir.join("no/such/folder");
        let err = save(&ErrorCurves::new(&[&run]).unwrap(), &missing, "x").unwrap_err();
        assert!(err.to_string().contains("no/such/folder/x.png"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
