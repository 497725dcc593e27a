//! Filled contour figures of a grid of energies (`levelset plane`, `levelset surface
//! --dims 2`): each grid point's cell colored by its value, the level L0 drawn as a contour
//! line (marching squares), marked models and a projected path on top; as SVG and PNG.

use std::path::Path;

use anyhow::{Result, anyhow};
use levelset_models::Energy;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::output::figures::{PALETTE, Render, draw_axes, finish, short_number, write_svg_and_png};

#[derive(Debug, Clone)]
pub struct Contour<'a> {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: &'a [f64],
    pub y: &'a [f64],
    /// One row per `y`, one value per `x`.
    pub values: &'a [Vec<f64>],
    /// Drawn as a contour line.
    pub level: Option<f64>,
    /// Named points, drawn as labelled dots.
    pub marks: Vec<(String, f64, f64)>,
    /// Named polylines (paths projected onto the plane), one colour each.
    pub paths: Vec<(String, Vec<(f64, f64)>)>,
}

/// Writes `<stem>.svg` and `<stem>.png`.
pub fn draw(figure: &Contour, stem: &Path) -> Result<()> {
    write_svg_and_png(figure, stem, (760, 640))
}

/// Draws `figure`, a grid's energy, at `stem` and, unless that `energy` is the training loss,
/// the same figure of `train_loss` (titled `train_title`, no level line) at
/// `<stem>-train-loss`.
pub fn draw_with_train_loss<'a>(
    mut figure: Contour<'a>,
    energy: Energy,
    train_loss: &'a [Vec<f64>],
    train_title: String,
    stem: &Path,
) -> Result<()> {
    draw(&figure, stem)?;
    if energy != Energy::TrainLoss {
        figure.title = train_title;
        figure.values = train_loss;
        figure.level = None;
        let name = stem
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("figure");
        draw(&figure, &stem.with_file_name(format!("{name}-train-loss")))?;
    }
    Ok(())
}

impl Render for Contour<'_> {
    fn render<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        render(root, self)
    }
}

/// Maps values to [0, 1] for the color scale: logarithmically when every finite value is
/// positive (a loss spans decades between a minimum and the grid's corners), else linearly.
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Scale {
    fn of(values: &[Vec<f64>]) -> Option<Scale> {
        let finite: Vec<f64> = values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let log = finite.iter().all(|&v| v > 0.0);
        let f = |v: f64| if log { v.ln() } else { v };
        let lo = finite.iter().map(|&v| f(v)).fold(f64::INFINITY, f64::min);
        let hi = finite
            .iter()
            .map(|&v| f(v))
            .fold(f64::NEG_INFINITY, f64::max);
        lo.is_finite().then_some(Scale { log, lo, hi })
    }

    fn color(&self, v: f64) -> RGBColor {
        if !v.is_finite() {
            return RGBColor(160, 160, 160);
        }
        let f = if self.log { v.ln() } else { v };
        let t = if self.hi > self.lo {
            (f - self.lo) / (self.hi - self.lo)
        } else {
            0.0
        };
        viridis(t)
    }
}

/// A few stops of matplotlib's viridis, interpolated linearly.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let k = (t.floor() as usize).min(STOPS.len() - 2);
    let s = t - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * s).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The segments of the contour line at `level` of values on the grid `x` x `y` (marching
/// squares, each crossing placed by linear interpolation along its cell edge; a saddle cell
/// is resolved by its center's value, the mean of its corners). Cells with a non-finite
/// corner are skipped.
pub fn contour_segments(
    x: &[f64],
    y: &[f64],
    values: &[Vec<f64>],
    level: f64,
) -> Vec<[(f64, f64); 2]> {
    let mut segments = Vec::new();
    for j in 0..values.len().saturating_sub(1) {
        for i in 0..x.len().saturating_sub(1) {
            // Corners counterclockwise from the lower left.
            let corners = [
                (x[i], y[j], values[j][i]),
                (x[i + 1], y[j], values[j][i + 1]),
                (x[i + 1], y[j + 1], values[j + 1][i + 1]),
                (x[i], y[j + 1], values[j + 1][i]),
            ];
            if corners.iter().any(|c| !c.2.is_finite()) {
                continue;
            }
            // Edge k joins corner k and corner k + 1: bottom, right, top, left.
            let crossing = |k: usize| {
                let (p, q) = (corners[k], corners[(k + 1) % 4]);
                ((p.2 > level) != (q.2 > level)).then(|| {
                    let s = (level - p.2) / (q.2 - p.2);
                    (p.0 + s * (q.0 - p.0), p.1 + s * (q.1 - p.1))
                })
            };
            let edges: Vec<(usize, (f64, f64))> =
                (0..4).filter_map(|k| crossing(k).map(|p| (k, p))).collect();
            match edges.as_slice() {
                [(_, p), (_, q)] => segments.push([*p, *q]),
                [(_, bottom), (_, right), (_, top), (_, left)] => {
                    let center = corners.iter().map(|c| c.2).sum::<f64>() / 4.0;
                    if (center > level) == (corners[0].2 > level) {
                        // The lower-left corner joins the upper-right one through the center:
                        // the lines cut off the other two corners.
                        segments.push([*bottom, *right]);
                        segments.push([*top, *left]);
                    } else {
                        segments.push([*left, *bottom]);
                        segments.push([*right, *top]);
                    }
                }
                _ => {}
            }
        }
    }
    segments
}

/// Half the spacing to a neighbour on each side of every value of `axis`: the cell of a grid
/// point.
fn cells(axis: &[f64]) -> Vec<(f64, f64)> {
    let n = axis.len();
    (0..n)
        .map(|i| {
            let left = if i > 0 {
                (axis[i] - axis[i - 1]) / 2.0
            } else {
                0.0
            };
            let right = if i + 1 < n {
                (axis[i + 1] - axis[i]) / 2.0
            } else {
                0.0
            };
            let left = if i == 0 { right } else { left };
            let right = if i + 1 == n { left } else { right };
            (axis[i] - left, axis[i] + right)
        })
        .collect()
}

/// The palette's red, orange and pink: they show on every colour of viridis.
const PATH_COLOURS: [RGBColor; 3] = [PALETTE[1], PALETTE[4], PALETTE[6]];

fn render<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, figure: &Contour) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    let scale = Scale::of(figure.values)
        .ok_or_else(|| anyhow!("figure '{}' has no finite value", figure.title))?;
    let (xc, yc) = (cells(figure.x), cells(figure.y));
    let x_range = xc.first().map_or(0.0, |c| c.0)..xc.last().map_or(1.0, |c| c.1);
    let y_range = yc.first().map_or(0.0, |c| c.0)..yc.last().map_or(1.0, |c| c.1);
    root.fill(&WHITE).map_err(err)?;
    let caption = format!(
        "{} (color: {}, {} to {})",
        figure.title,
        if scale.log { "log scale" } else { "linear" },
        short_number(if scale.log { scale.lo.exp() } else { scale.lo }),
        short_number(if scale.log { scale.hi.exp() } else { scale.hi }),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)
        .map_err(err)?;
    draw_axes(&mut chart, &figure.x_label, &figure.y_label, false)?;
    let cell_rects = figure.values.iter().enumerate().flat_map(|(j, row)| {
        let (xc, yc, scale) = (&xc, &yc, &scale);
        row.iter().enumerate().map(move |(i, &v)| {
            Rectangle::new(
                [(xc[i].0, yc[j].0), (xc[i].1, yc[j].1)],
                scale.color(v).filled(),
            )
        })
    });
    chart.draw_series(cell_rects).map_err(err)?;
    if let Some(level) = figure.level {
        // White with a black edge, so that the line shows on every colour of the scale and
        // its legend entry on the legend's white.
        let segments = contour_segments(figure.x, figure.y, figure.values, level);
        chart
            .draw_series(
                segments
                    .iter()
                    .map(|s| PathElement::new(s.to_vec(), BLACK.stroke_width(4))),
            )
            .map_err(err)?;
        chart
            .draw_series(
                segments
                    .iter()
                    .map(|s| PathElement::new(s.to_vec(), WHITE.stroke_width(2))),
            )
            .map_err(err)?
            .label(format!("L0 = {}", short_number(level)))
            .legend(|(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], BLACK.stroke_width(4))
                    + PathElement::new(vec![(0, 0), (20, 0)], WHITE.stroke_width(2))
            });
    }
    for ((name, path), colour) in figure
        .paths
        .iter()
        .zip(PATH_COLOURS.iter().copied().cycle())
    {
        chart
            .draw_series(LineSeries::new(
                path.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{name} (projected)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(path.iter().map(|&p| Circle::new(p, 2, colour.filled())))
            .map_err(err)?;
    }
    chart
        .draw_series(figure.marks.iter().map(|(name, x, y)| {
            EmptyElement::at((*x, *y))
                + Circle::new((0, 0), 5, WHITE.filled())
                + Circle::new((0, 0), 5, BLACK.stroke_width(1))
                + Text::new(
                    name.clone(),
                    (7, -14),
                    ("sans-serif", 16).into_font().color(&WHITE),
                )
        }))
        .map_err(err)?;
    finish(
        chart,
        &root,
        figure.level.is_some() || !figure.paths.is_empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contour_of_a_paraboloid_is_its_circle() {
        let axis: Vec<f64> = (0..41).map(|i| -2.0 + 0.1 * i as f64).collect();
        let values: Vec<Vec<f64>> = axis
            .iter()
            .map(|&y| axis.iter().map(|&x| x * x + y * y).collect())
            .collect();
        let segments = contour_segments(&axis, &axis, &values, 1.0);
        assert!(segments.len() > 40, "{} segments", segments.len());
        for s in &segments {
            for (x, y) in s {
                let r = (x * x + y * y).sqrt();
                // Linear interpolation of r^2 across a cell of 0.1 errs by at most ~0.01.
                assert!((r - 1.0).abs() < 0.01, "({x}, {y}) at radius {r}");
            }
        }
        // Nothing crosses a level no value reaches.
        assert!(contour_segments(&axis, &axis, &values, 100.0).is_empty());
    }

    #[test]
    fn cells_tile_the_axis() {
        assert_eq!(
            cells(&[0.0, 1.0, 3.0]),
            vec![(-0.5, 0.5), (0.5, 2.0), (2.0, 4.0)]
        );
    }
}
