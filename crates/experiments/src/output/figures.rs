//! Figures: normalized geodesic length and bead count against the level, with error bars and
//! the paper's values overlaid, as SVG and PNG.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// A series of (x, y, standard error) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, Option<f64>)>,
    pub color: RGBColor,
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis (levels spanning decades).
    pub log_x: bool,
    pub series: Vec<Series>,
}

pub const LEVELSET_COLOR: RGBColor = RGBColor(31, 119, 180);
pub const PAPER_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Colors for lines or groups told apart by index (a graph's components, a sweep's levels).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Where the PNG renderer finds its font: `$LEVELSET_FONT`, else Debian's DejaVu Sans
/// (package `fonts-dejavu-core`).
fn font_path() -> PathBuf {
    std::env::var_os("LEVELSET_FONT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
}

/// Both backends lay text out with glyph metrics from a font file.
pub(crate) fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = font_path();
            let bytes = std::fs::read(&path).map_err(|e| {
                format!(
                    "figures need a TrueType font: {}: {e} (install fonts-dejavu-core or set LEVELSET_FONT)",
                    path.display()
                )
            })?;
            // plotters keeps fonts for the whole process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Writes `<stem>.svg` and `<stem>.png`.
pub fn draw(figure: &Figure, stem: &Path) -> Result<()> {
    write_svg_and_png(figure, stem, (800, 520))
}

/// A figure that draws itself on any plotters backend.
pub(crate) trait Render {
    fn render<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()>;
}

impl Render for Figure {
    fn render<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        render(root, self)
    }
}

/// Writes `figure` as `<stem>.svg` and `<stem>.png`, `size` pixels each.
pub(crate) fn write_svg_and_png(figure: &impl Render, stem: &Path, size: (u32, u32)) -> Result<()> {
    register_font()?;
    let svg = stem.with_extension("svg");
    figure
        .render(SVGBackend::new(&svg, size).into_drawing_area())
        .with_context(|| format!("drawing {}", svg.display()))?;
    let png = stem.with_extension("png");
    figure
        .render(BitMapBackend::new(&png, size).into_drawing_area())
        .with_context(|| format!("drawing {}", png.display()))
}

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, figure: &Figure) -> Result<()> {
    let points = || figure.series.iter().flat_map(|s| s.points.iter());
    let (mut x_lo, mut x_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y, e) in points() {
        let e = e.unwrap_or(0.0);
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y - e);
        y_hi = y_hi.max(y + e);
    }
    if !x_lo.is_finite() {
        return Err(anyhow!("figure '{}' has no points", figure.title));
    }
    let pad = ((y_hi - y_lo) * 0.08).max(0.01);
    let y = y_lo - pad..y_hi + pad;
    if figure.log_x {
        plot(root, figure, (x_lo * 0.8..x_hi * 1.25).log_scale(), y)
    } else {
        let margin = ((x_hi - x_lo) * 0.02).max(1e-9);
        plot(root, figure, x_lo - margin..x_hi + margin, y)
    }
}

fn plot<DB, X>(
    root: DrawingArea<DB, Shift>,
    figure: &Figure,
    x: X,
    y: std::ops::Range<f64>,
) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&figure.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    draw_axes(&mut chart, &figure.x_label, &figure.y_label, true)?;
    for series in &figure.series {
        let color = series.color;
        let line = series.points.iter().map(|&(x, y, _)| (x, y));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(err)?
            .label(&series.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                series
                    .points
                    .iter()
                    .map(|&(x, y, _)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(series.points.iter().filter_map(|&(x, y, e)| {
                e.map(|e| ErrorBar::new_vertical(x, y - e, y, y + e, color.stroke_width(1), 10))
            }))
            .map_err(err)?;
    }
    finish(chart, &root, true)
}

/// Draws `chart`'s axes: ticks labelled by [`short_number`], the axes' descriptions, and the
/// grid lines where asked.
pub(crate) fn draw_axes<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
    grid_lines: bool,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut mesh = chart.configure_mesh();
    if !grid_lines {
        mesh.disable_mesh();
    }
    mesh.x_label_formatter(&|v| short_number(*v))
        .y_label_formatter(&|v| short_number(*v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))
}

/// Draws `chart`'s legend (where asked) and writes the figure out.
pub(crate) fn finish<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    mut chart: ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, Shift>,
    legend: bool,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    if legend {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// A tick label with at most four significant digits and no trailing zeros (log-scale ticks
/// such as 0.30000000000000004 otherwise print in full).
pub(crate) fn short_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    // A tick that is zero up to rounding (2.2e-16 on an axis from -1 to 1) is zero.
    if v.abs() < 1e-12 {
        return "0".into();
    }
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::short_number;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(short_number(0.30000000000000004), "0.3");
        assert_eq!(short_number(0.0025), "0.0025");
        assert_eq!(short_number(1.5), "1.5");
        assert_eq!(short_number(700.0), "700");
        assert_eq!(short_number(12345.0), "12345");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(2.220446049250313e-16), "0");
    }
}
