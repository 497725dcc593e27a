//! The nudged elastic band on the Müller-Brown potential, whose minima and saddle points are
//! known, and on a network landscape; and a graph of the potential's three minima, whose
//! components at each level the saddles' energies give.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::module::{Module, Param, ParamId};
use burn::prelude::*;
use indicatif::ProgressBar;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::lerp;
use levelset_models::optim::OptimizerConfig;
use levelset_models::{Architecture, Energy, EvalModel, Landscape};
use levelset_strings::graph::pairs;
use levelset_strings::{
    Evaluator, GraphEdge, LengthOver, Method, MinimaGraph, ModelPath, NebConfig, NebCycle,
    PathReport, Status, connect_neb, connect_with, line_barrier,
};

mod common;
use common::{Breakage, assert_breakages_name_their_keys, quadratic_pair};

/// Müller & Brown (1979): V(x, y) = Σ_i A_i exp(a_i (x−x0_i)² + b_i (x−x0_i)(y−y0_i) +
/// c_i (y−y0_i)²).
const A: [f64; 4] = [-200.0, -100.0, -170.0, 15.0];
const SA: [f64; 4] = [-1.0, -1.0, -6.5, 0.7];
const SB: [f64; 4] = [0.0, 0.0, 11.0, 0.6];
const SC: [f64; 4] = [-10.0, -10.0, -6.5, 0.7];
const X0: [f64; 4] = [1.0, 0.0, -0.5, -1.0];
const Y0: [f64; 4] = [0.0, 0.5, 1.5, 1.0];

/// The potential, its gradient and its Hessian at `p`.
fn muller_brown(p: [f64; 2]) -> (f64, [f64; 2], [[f64; 2]; 2]) {
    let (mut v, mut g, mut h) = (0.0, [0.0; 2], [[0.0; 2]; 2]);
    for i in 0..4 {
        let (dx, dy) = (p[0] - X0[i], p[1] - Y0[i]);
        let e = A[i] * (SA[i] * dx * dx + SB[i] * dx * dy + SC[i] * dy * dy).exp();
        let (ux, uy) = (2.0 * SA[i] * dx + SB[i] * dy, SB[i] * dx + 2.0 * SC[i] * dy);
        v += e;
        g[0] += e * ux;
        g[1] += e * uy;
        h[0][0] += e * (ux * ux + 2.0 * SA[i]);
        h[0][1] += e * (ux * uy + SB[i]);
        h[1][1] += e * (uy * uy + 2.0 * SC[i]);
    }
    h[1][0] = h[0][1];
    (v, g, h)
}

/// Newton's method for a stationary point of the potential near `start`.
fn stationary(start: [f64; 2]) -> [f64; 2] {
    let mut p = start;
    for _ in 0..50 {
        let (_, g, h) = muller_brown(p);
        let det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
        p[0] -= (h[1][1] * g[0] - h[0][1] * g[1]) / det;
        p[1] -= (h[0][0] * g[1] - h[1][0] * g[0]) / det;
    }
    p
}

/// Negative Hessian eigenvalues at `p`: 0 at a minimum, 1 at a saddle point.
fn index(p: [f64; 2]) -> usize {
    let (_, _, h) = muller_brown(p);
    let (tr, det) = (h[0][0] + h[1][1], h[0][0] * h[1][1] - h[0][1] * h[1][0]);
    let root = (tr * tr / 4.0 - det).sqrt();
    [tr / 2.0 - root, tr / 2.0 + root]
        .iter()
        .filter(|&&l| l < 0.0)
        .count()
}

/// A point of the plane as a module: its two parameters are the coordinates.
#[derive(Module, Debug)]
struct Point<B: Backend> {
    xy: Param<Tensor<B, 1>>,
}

/// The Müller-Brown potential as a landscape: one empty batch per epoch, the potential both
/// as the training loss and as the energy.
struct MullerBrown {
    device: burn::tensor::Device<Train>,
}

/// The backend the band relaxes on.
type B = Train;

#[derive(Debug, Clone)]
struct NoBatch;

struct OneItem;

impl Dataset<()> for OneItem {
    fn get(&self, i: usize) -> Option<()> {
        (i == 0).then_some(())
    }
    fn len(&self) -> usize {
        1
    }
}

struct NoBatcher;

impl<B: Backend> Batcher<B, (), NoBatch> for NoBatcher {
    fn batch(&self, _items: Vec<()>, _device: &B::Device) -> NoBatch {
        NoBatch
    }
}

fn potential<B: Backend>(xy: Tensor<B, 1>) -> Tensor<B, 1> {
    let x = xy.clone().narrow(0, 0, 1);
    let y = xy.narrow(0, 1, 1);
    (0..4)
        .map(|i| {
            let dx = x.clone().sub_scalar(X0[i]);
            let dy = y.clone().sub_scalar(Y0[i]);
            (dx.clone().powi_scalar(2).mul_scalar(SA[i])
                + (dx * dy.clone()).mul_scalar(SB[i])
                + dy.powi_scalar(2).mul_scalar(SC[i]))
            .exp()
            .mul_scalar(A[i])
        })
        .reduce(|a, b| a + b)
        .expect("four terms")
}

impl Landscape<Train> for MullerBrown {
    type Model = Point<B>;
    type Batch = NoBatch;
    type Carry = ();

    fn architecture(&self) -> Architecture {
        unreachable!("the test never asks")
    }
    fn energy_kind(&self) -> Energy {
        Energy::TestLoss
    }
    fn device(&self) -> &burn::tensor::Device<Train> {
        &self.device
    }
    fn init(&self, _seed: u64) -> Point<B> {
        let xy = Tensor::zeros([2], &Default::default());
        Point {
            xy: Param::initialized(ParamId::new(), xy),
        }
    }
    fn loader(&self, _seed: u64) -> Arc<dyn DataLoader<B, NoBatch>> {
        DataLoaderBuilder::new(NoBatcher)
            .batch_size(1)
            .build(OneItem)
    }
    fn carry(&self, _seed: u64, _epoch: usize) {}
    fn loss(&self, model: &Point<B>, _batch: NoBatch, _carry: &mut ()) -> Tensor<B, 1> {
        potential(model.xy.val())
    }
    fn energy(&self, model: &EvalModel<B, Self>) -> f64 {
        potential(model.xy.val()).into_scalar().elem::<f64>()
    }
    fn batch_examples(_batch: &NoBatch) -> usize {
        1
    }
    fn eval_examples(&self) -> usize {
        1
    }
}

fn flat(p: [f64; 2]) -> Tensor<Compute, 1> {
    Tensor::from_data(
        TensorData::new(vec![p[0] as f32, p[1] as f32], [2]),
        &device(),
    )
}

fn coordinates(t: &Tensor<Compute, 1>) -> [f64; 2] {
    let v: Vec<f64> = t.to_data().iter::<f64>().collect();
    [v[0], v[1]]
}

fn close(p: [f64; 2], q: [f64; 2]) -> f64 {
    (p[0] - q[0]).hypot(p[1] - q[1])
}

fn neb(pivots: usize, spring: f64, cycles: Vec<NebCycle>) -> NebConfig {
    NebConfig {
        pivots,
        spring,
        optimizer: OptimizerConfig::Adam {
            lr: 0.01,
            weight_decay: None,
        },
        cycles,
        grid: 10,
        min_rise: 0.0,
        slack: 1.0,
        length_over: LengthOver::All,
    }
}

fn cycle(steps: usize, lr: f64, insert: usize, climbing: bool) -> NebCycle {
    NebCycle {
        steps,
        lr: Some(lr),
        insert,
        climbing,
    }
}

fn run_mb(
    from: [f64; 2],
    to: [f64; 2],
    level: f64,
    config: &NebConfig,
) -> (ModelPath<Compute>, PathReport) {
    connect_neb::<Train, _>(
        &MullerBrown { device: device() },
        flat(from),
        flat(to),
        level,
        config,
        0,
        &ProgressBar::hidden(),
    )
    .expect("valid endpoints and config")
}

/// AutoNEB's cycles that carry a 3-pivot band across both saddles: relax, insert pivots
/// twice, then climb.
fn autoneb_cycles() -> Vec<NebCycle> {
    vec![
        cycle(400, 0.01, 0, false),
        cycle(400, 0.01, 4, false),
        cycle(400, 0.005, 4, false),
        cycle(800, 0.002, 0, true),
    ]
}

/// The published stationary points, refined by Newton's method and checked.
struct Known {
    minimum_a: [f64; 2],
    minimum_b: [f64; 2],
    minimum_c: [f64; 2],
    saddle_ac: [f64; 2],
    saddle_cb: [f64; 2],
}

fn known() -> Known {
    let points = [
        ([-0.558, 1.442], -146.70, 0),
        ([0.623, 0.028], -108.17, 0),
        ([-0.050, 0.467], -80.77, 0),
        ([-0.822, 0.624], -40.66, 1),
        ([0.212, 0.293], -72.25, 1),
    ]
    .map(|(published, energy, saddle)| {
        let p = stationary(published);
        assert!(close(p, published) < 2e-3, "{p:?} vs {published:?}");
        assert!((muller_brown(p).0 - energy).abs() < 0.01, "{p:?}");
        assert_eq!(index(p), saddle, "{p:?}");
        p
    });
    Known {
        minimum_a: points[0],
        minimum_b: points[1],
        minimum_c: points[2],
        saddle_ac: points[3],
        saddle_cb: points[4],
    }
}

/// The bead of highest energy and its energy.
fn highest(path: &ModelPath<Compute>) -> ([f64; 2], f64) {
    let (k, e) = path
        .bead_energies
        .iter()
        .enumerate()
        .max_by(|x, y| x.1.total_cmp(y.1))
        .expect("beads");
    (coordinates(&path.beads[k]), *e)
}

#[test]
fn a_climbing_band_finds_the_saddle_between_two_minima() {
    let k = known();
    for spring in [1.0, f64::INFINITY] {
        let config = neb(
            8,
            spring,
            vec![cycle(600, 0.01, 0, false), cycle(600, 0.002, 0, true)],
        );
        let (path, report) = run_mb(k.minimum_a, k.minimum_c, -30.0, &config);
        let (top, energy) = highest(&path);
        assert!(close(top, k.saddle_ac) < 0.05, "spring {spring}: {top:?}");
        assert!(
            (energy - muller_brown(k.saddle_ac).0).abs() < 1.0,
            "{energy}"
        );
        assert_eq!(report.status, Status::Connected);
        assert_eq!(report.method, "neb");
        assert_eq!(report.bead_steps, 1200);
    }
}

#[test]
fn autoneb_inserts_pivots_and_the_band_passes_both_saddles() {
    let k = known();
    let config = neb(3, 1.0, autoneb_cycles());
    let (path, report) = run_mb(k.minimum_a, k.minimum_b, -30.0, &config);
    assert!(path.beads.len() > 5, "{}", path.beads.len());
    let (top, energy) = highest(&path);
    assert!(close(top, k.saddle_ac) < 0.05, "{top:?}");
    assert!(
        (energy - muller_brown(k.saddle_ac).0).abs() < 1.0,
        "{energy}"
    );
    // The band's highest point is the saddle: the certified maximum is that saddle's energy.
    assert!((report.max_energy - muller_brown(k.saddle_ac).0).abs() < 1.0);
    // On its way it crosses the second saddle: one segment's check maximum is that saddle.
    let crossing = path
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = lerp(&path.beads[i], &path.beads[i + 1], s.argmax_t);
            (close(coordinates(&p), k.saddle_cb), s.max_energy)
        })
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .expect("segments");
    assert!(crossing.0 < 0.05, "{crossing:?}");
    assert!(
        (crossing.1 - muller_brown(k.saddle_cb).0).abs() < 0.5,
        "{crossing:?}"
    );
    assert_eq!(report.status, Status::Connected);
    // Below the saddle the band cannot be connected.
    let (_, below) = run_mb(k.minimum_a, k.minimum_b, -45.0, &config);
    assert!(
        matches!(below.status, Status::NotConnected { .. }),
        "{:?}",
        below.status
    );
}

#[test]
fn same_seed_gives_the_same_band() {
    let (task, a, b) = quadratic_pair(0.05, [40, 41]);
    let config = NebConfig {
        pivots: 3,
        spring: 1.0,
        optimizer: OptimizerConfig::Adam {
            lr: 0.01,
            weight_decay: None,
        },
        cycles: vec![
            NebCycle {
                steps: 200,
                lr: None,
                insert: 0,
                climbing: false,
            },
            NebCycle {
                steps: 200,
                lr: Some(0.005),
                insert: 2,
                climbing: false,
            },
        ],
        grid: 10,
        min_rise: 0.0,
        slack: 1.1,
        length_over: LengthOver::Weights,
    };
    let run = |seed| {
        let (_, report) = connect_neb(
            &task,
            a.clone(),
            b.clone(),
            0.05,
            &config,
            seed,
            &ProgressBar::hidden(),
        )
        .expect("valid");
        PathReport {
            wall_seconds: 0.0,
            ..report
        }
    };
    let first = run(1);
    assert_eq!(first, run(1));
    assert!(first.beads > 5);
    assert!(first.linear_barrier > 0.1);
    assert_eq!(first.status, Status::Connected);
}

#[test]
fn bad_configs_name_the_key() {
    let good = neb(2, 1.0, vec![cycle(10, 0.01, 0, false)]);
    let breakages: [Breakage<NebConfig>; 9] = [
        ("neb.pivots must be at most", |c| c.pivots = usize::MAX),
        ("neb.grid must be at most", |c| c.grid = 1 << 50),
        ("neb.cycles[0].insert must be at most", |c| {
            c.cycles[0].insert = usize::MAX
        }),
        ("neb.pivots", |c| c.pivots = 0),
        ("neb.spring", |c| c.spring = -1.0),
        ("neb.cycles must", |c| c.cycles.clear()),
        ("neb.cycles[0].lr", |c| c.cycles[0].lr = Some(0.0)),
        ("neb.grid", |c| c.grid = 1),
        ("neb.slack", |c| c.slack = f64::NAN),
    ];
    assert_breakages_name_their_keys(&good, &breakages, NebConfig::validate, |config| {
        let (a, b) = (flat([0.0, 0.0]), flat([0.1, 0.0]));
        connect_neb::<Train, _>(
            &MullerBrown { device: device() },
            a,
            b,
            0.0,
            config,
            0,
            &ProgressBar::hidden(),
        )
    });
    let mut no_pivots_but_inserts = good;
    no_pivots_but_inserts.pivots = 0;
    no_pivots_but_inserts.cycles[0].insert = 1;
    assert_eq!(no_pivots_but_inserts.validate(), Ok(()));
}

/// The three minima as one graph per level, connected in the graph's own order by a climbing
/// band: at -60 the band joins B and C below their saddle (-72.25) and finds A behind the
/// A-C saddle (-40.66), which every path to A crosses; at -30 one component.
#[test]
fn a_graph_of_the_three_minima_joins_them_at_their_saddles() {
    let k = known();
    let landscape = MullerBrown { device: device() };
    let points = [k.minimum_a, k.minimum_b, k.minimum_c];
    let minima = points.map(flat);
    let energies: Vec<f64> = points.iter().map(|&p| muller_brown(p).0).collect();
    let method = Method::Neb(neb(3, 1.0, autoneb_cycles()));
    let evaluator = Evaluator::new(&landscape);
    let saddle_ac = muller_brown(k.saddle_ac).0;
    let saddle_cb = muller_brown(k.saddle_cb).0;
    for (level, components) in [
        (-60.0, vec![vec![0], vec![1, 2]]),
        (-30.0, vec![vec![0, 1, 2]]),
    ] {
        let lines = pairs(3)
            .map(|(a, b)| {
                let ends = [energies[a], energies[b]];
                line_barrier(&evaluator, &minima[a], &minima[b], ends, 10)
            })
            .collect();
        let mut graph = MinimaGraph::new(level, energies.clone(), lines).unwrap();
        let mut runs = 0;
        while let Some((a, b)) = graph.next_pair() {
            let result = connect_with::<Train, _>(
                &landscape,
                minima[a].clone(),
                minima[b].clone(),
                level,
                &method,
                0,
                &ProgressBar::hidden(),
            );
            let result = result.map(|(_, report)| report).map_err(|e| e.to_string());
            let edge = GraphEdge::from_result((a, b), "neb", graph.line(a, b), result, 0.0);
            graph.record(edge).unwrap();
            runs += 1;
        }
        assert_eq!(graph.components(), components, "level {level}");
        // Every path from A crosses the A-C saddle: at -60 the bands find it; at -30 a line
        // within the level may join A first.
        let minimax = graph.minimax();
        if level == -60.0 {
            assert!((minimax[0][2] - saddle_ac).abs() < 1.0, "{minimax:?}");
        } else {
            assert!(
                minimax[0][2] >= saddle_ac - 1.0 && minimax[0][2] <= level,
                "{minimax:?}"
            );
        }
        assert_eq!(minimax[0][1], minimax[0][2]);
        // B and C join at or below the level, never below their saddle.
        assert!(
            minimax[1][2] >= saddle_cb - 0.5 && minimax[1][2] <= level,
            "{minimax:?}"
        );
        // A is tried from both of the other minima at -60 only; at -30 no pair of one
        // component is connected twice.
        assert!(runs <= 3, "{runs}");
        if level == -60.0 {
            assert_eq!(graph.edges().iter().filter(|e| e.a == 0).count(), 2);
        }
    }
}
