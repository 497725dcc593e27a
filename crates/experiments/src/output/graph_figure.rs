//! Pictures of a graph of minima (`levelset graph`): per level, the minima coloured by
//! component with the spanning tree's edges labelled by their barriers (black where the
//! graph joins the pair directly, grey otherwise), beside the
//! disconnectivity graph (each minimum a vertical line from its energy up to the barrier at
//! which the known paths merge it with others); across levels, the components per level.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::output::figures::{
    Figure, LEVELSET_COLOR, PALETTE, Series, draw, register_font, short_number,
};
use crate::studies::graph::{GraphResults, LevelGraph};

/// The file stem of a level's picture: `graph-<level>`.
pub fn level_stem(level: f64) -> String {
    format!("graph-{level}")
}

/// Draws every level's picture with at least two minima (`graph-<level>.{svg,png}`) and, for
/// more than one level, `components.{svg,png}`.
pub fn draw_all(results: &GraphResults, out: &Path) -> Result<()> {
    register_font()?;
    // A path method's connection certifies its path within its slack times the level.
    let slack = results
        .settings
        .method
        .method(&results.config)
        .map_or(1.0, |m| m.slack());
    for level in results.levels.iter().filter(|l| l.minima.len() >= 2) {
        // A level such as 0.1 holds a dot: the extension is appended, not set.
        let stem = level_stem(level.level);
        for svg in [true, false] {
            let path = out.join(format!("{stem}.{}", if svg { "svg" } else { "png" }));
            let drawn = if svg {
                draw_level(
                    SVGBackend::new(&path, (1100, 500)).into_drawing_area(),
                    level,
                    slack,
                )
            } else {
                draw_level(
                    BitMapBackend::new(&path, (1100, 500)).into_drawing_area(),
                    level,
                    slack,
                )
            };
            drawn.with_context(|| format!("drawing {}", path.display()))?;
        }
    }
    if results.summary.len() > 1 {
        let figure = Figure {
            title: format!("{}: components of the level set", results.config.name),
            x_label: format!("level L0 ({})", results.config.energy),
            y_label: "components".into(),
            log_x: false,
            series: vec![Series {
                label: format!("{} minima", results.settings.count()),
                points: results
                    .summary
                    .iter()
                    .map(|s| (s.level, s.components as f64, None))
                    .collect(),
                color: LEVELSET_COLOR,
            }],
        };
        draw(&figure, &out.join("components"))?;
    }
    Ok(())
}

fn draw_level<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    level: &LevelGraph,
    slack: f64,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(500);
    tree_panel(&left, level)?;
    disconnectivity_panel(&right, level, slack)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Whether the level's graph joins `a` and `b` directly: their line within the level, or a
/// path a method connected.
fn joined(level: &LevelGraph, a: usize, b: usize) -> bool {
    let (a, b) = (a.min(b), a.max(b));
    level
        .lines
        .iter()
        .any(|l| l.a == a && l.b == b && l.barrier <= level.level)
        || level
            .edges
            .iter()
            .any(|e| e.a == a && e.b == b && e.outcome == levelset_strings::Outcome::Connected)
}

/// Each minimum's component number.
fn component_of(level: &LevelGraph) -> Vec<usize> {
    let mut of = vec![0; level.minima.len()];
    for (c, members) in level.components.iter().enumerate() {
        for &m in members {
            of[m] = c;
        }
    }
    of
}

fn tree_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, level: &LevelGraph) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    let n = level.minima.len();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "level {}: {} component{}",
                short_number(level.level),
                level.components.len(),
                if level.components.len() == 1 { "" } else { "s" }
            ),
            ("sans-serif", 20),
        )
        .margin(20)
        .build_cartesian_2d(-1.35f64..1.35, -1.35f64..1.35)
        .map_err(err)?;
    let at = |i: usize| {
        let angle = std::f64::consts::TAU * i as f64 / n as f64 + std::f64::consts::FRAC_PI_2;
        (angle.cos(), angle.sin())
    };
    for edge in &level.spanning_tree {
        let within = joined(level, edge.a, edge.b);
        let color = if within {
            BLACK.stroke_width(2)
        } else {
            RGBColor(200, 200, 200).stroke_width(1)
        };
        let (p, q) = (at(edge.a), at(edge.b));
        chart
            .draw_series(std::iter::once(PathElement::new(vec![p, q], color)))
            .map_err(err)?;
        let middle = ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0);
        chart
            .draw_series(std::iter::once(Text::new(
                short_number(edge.barrier),
                middle,
                ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
            )))
            .map_err(err)?;
    }
    let component = component_of(level);
    for i in 0..n {
        let color = PALETTE[component[i] % PALETTE.len()];
        chart
            .draw_series(std::iter::once(Circle::new(at(i), 9, color.filled())))
            .map_err(err)?;
        let (x, y) = at(i);
        chart
            .draw_series(std::iter::once(Text::new(
                level.minima[i].id.to_string(),
                (x * 1.18 - 0.04, y * 1.18 + 0.04),
                ("sans-serif", 15).into_font(),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Leaves in the order the merges lay them out (each merge puts its left group before its
/// right), so that no two branches cross.
fn leaf_order(level: &LevelGraph) -> Vec<usize> {
    let n = level.minima.len();
    let mut groups: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut owner: Vec<usize> = (0..n).collect();
    for merge in &level.merges {
        let (l, r) = (owner[merge.left[0]], owner[merge.right[0]]);
        let moved = std::mem::take(&mut groups[r]);
        for &m in &moved {
            owner[m] = l;
        }
        groups[l].extend(moved);
    }
    groups.into_iter().flatten().collect()
}

fn disconnectivity_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    level: &LevelGraph,
    slack: f64,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    let n = level.minima.len();
    let energies: Vec<f64> = level.minima.iter().map(|m| m.energy).collect();
    let finite = level
        .merges
        .iter()
        .map(|m| m.barrier)
        .filter(|b| b.is_finite());
    let low = energies.iter().copied().fold(f64::INFINITY, f64::min);
    let high = finite
        .chain(energies.iter().copied())
        .chain([level.level * slack])
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((high - low) * 0.08).max(1e-6);
    let top = high + pad;
    let mut chart = ChartBuilder::on(area)
        .caption("disconnectivity graph", ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, low - pad..top)
        .map_err(err)?;
    let order = leaf_order(level);
    let mut x = vec![0.0; n];
    for (position, &leaf) in order.iter().enumerate() {
        x[leaf] = position as f64;
    }
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.min(30))
        .x_label_formatter(&|v| {
            let position = v.round();
            order
                .get(position as usize)
                .filter(|_| (v - position).abs() < 1e-9 && position >= 0.0)
                .map_or(String::new(), |&leaf| level.minima[leaf].id.to_string())
        })
        .y_label_formatter(&|v| short_number(*v))
        .y_desc("energy")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    // The level, and the most a connected path may reach (its slack times the level).
    for (height, color) in [
        (level.level, RED),
        (level.level * slack, RGBColor(240, 160, 160)),
    ] {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, height), (n as f64 - 0.5, height)],
                color.stroke_width(1),
            )))
            .map_err(err)?;
    }
    // Each group: where its branch stands and from which height it rises.
    let mut branch: Vec<(f64, f64)> = (0..n).map(|i| (x[i], energies[i])).collect();
    let mut owner: Vec<usize> = (0..n).collect();
    let line = |points: Vec<(f64, f64)>| PathElement::new(points, BLACK.stroke_width(2));
    for merge in &level.merges {
        let barrier = if merge.barrier.is_finite() {
            merge.barrier
        } else {
            top
        };
        let (l, r) = (owner[merge.left[0]], owner[merge.right[0]]);
        let ((xl, yl), (xr, yr)) = (branch[l], branch[r]);
        chart
            .draw_series([
                line(vec![(xl, yl), (xl, barrier)]),
                line(vec![(xr, yr), (xr, barrier)]),
                line(vec![(xl, barrier), (xr, barrier)]),
            ])
            .map_err(err)?;
        for &m in &merge.right {
            owner[m] = l;
        }
        branch[l] = ((xl + xr) / 2.0, barrier);
    }
    // The branches still standing rise to the top: no known path joins them lower.
    let roots: Vec<usize> = (0..n).filter(|&i| owner[i] == i).collect();
    for root in roots {
        let (xb, yb) = branch[root];
        chart
            .draw_series(std::iter::once(line(vec![(xb, yb), (xb, top)])))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studies::graph::MinimumRecord;
    use levelset_strings::Merge;

    #[test]
    fn leaves_are_laid_out_without_crossings() {
        let minimum = |id| MinimumRecord {
            id,
            seed: None,
            checkpoint: None,
            energy: 0.1,
            steps: None,
        };
        let merge = |barrier, left: &[usize], right: &[usize]| Merge {
            barrier,
            left: left.to_vec(),
            right: right.to_vec(),
        };
        let level = LevelGraph {
            level: 1.0,
            minima: (0..4).map(minimum).collect(),
            excluded: vec![],
            lines: vec![],
            edges: vec![],
            components: vec![vec![0, 2], vec![1, 3]],
            spanning_tree: vec![],
            merges: vec![
                merge(0.3, &[0], &[2]),
                merge(0.4, &[1], &[3]),
                merge(2.0, &[0, 2], &[1, 3]),
            ],
            done: true,
        };
        assert_eq!(leaf_order(&level), vec![0, 2, 1, 3]);
    }
}
