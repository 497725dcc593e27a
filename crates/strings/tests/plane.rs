//! The plane through three models and Li et al.'s filter-normalized directions: the basis,
//! the coordinates, the grid's energies against one-by-one evaluation, and the directions'
//! filters.

use burn::module::AutodiffModule;
use burn::prelude::*;
use levelset_models::backend::{Compute, Train, device};
use levelset_models::flat::{flatten, param_shapes, unflatten};
use levelset_models::landscape::pointwise_energies;
use levelset_models::nets::{DescribedConfig, MnistConvConfig, NetDescription};
use levelset_models::statistics::{BnConfig, StatsMode};
use levelset_models::tasks::{ImageNet, ImageTask, Pipeline};
use levelset_models::{Energy, Landscape};
use levelset_strings::Plane;
use levelset_strings::directions::filter_normalized;
use levelset_strings::plane::{farthest_from_line, span_row};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{noise_images, quadratic_task};

fn random(n: usize, seed: u64) -> Tensor<Compute, 1> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_data(TensorData::new(values, [n]), &device())
}

fn values(t: &Tensor<Compute, 1>) -> Vec<f32> {
    t.to_data().to_vec().unwrap()
}

fn dot(a: &Tensor<Compute, 1>, b: &Tensor<Compute, 1>) -> f64 {
    (a.clone() * b.clone()).sum().into_scalar().elem::<f64>()
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(found.len(), expected.len());
    for (i, (f, e)) in found.iter().zip(expected).enumerate() {
        assert!((f - e).abs() <= tolerance, "entry {i}: {f} vs {e}");
    }
}

#[test]
fn the_basis_is_orthonormal_and_the_models_land_at_their_coordinates() {
    let [a, b, c] = [1, 2, 3].map(|seed| random(500, seed));
    let plane = Plane::through(&a, &b, &c).unwrap();
    let u = plane.point(1.0, 0.0) - a.clone();
    let v = plane.point(0.0, 1.0) - a.clone();
    assert!((dot(&u, &u) - 1.0).abs() < 1e-5);
    assert!((dot(&v, &v) - 1.0).abs() < 1e-5);
    assert!(dot(&u, &v).abs() < 1e-5);

    let ab = (b.clone() - a.clone())
        .powi_scalar(2)
        .sum()
        .sqrt()
        .into_scalar();
    assert!((plane.u_norm - f64::from(ab)).abs() < 1e-4);
    assert_eq!(plane.coordinates(&a), (0.0, 0.0));
    let (bx, by) = plane.coordinates(&b);
    assert!(
        (bx - plane.u_norm).abs() < 1e-3 && by.abs() < 1e-3,
        "b at ({bx}, {by})"
    );
    let (cx, cy) = plane.coordinates(&c);
    assert!(
        (cy - plane.v_norm).abs() < 1e-3 && cy > 0.0,
        "c at ({cx}, {cy})"
    );
    // c - a = cx u + cy v, so the model is in the plane and rebuilt from its coordinates.
    assert_close(&values(&plane.point(cx, cy)), &values(&c), 1e-5);
    assert!(plane.distance(&c) < 1e-3);
    // A point off the plane keeps its in-plane coordinates and reports its distance.
    let w = random(500, 9);
    let normal = w.clone() - u.clone().mul_scalar(dot(&w, &u)) - v.clone().mul_scalar(dot(&w, &v));
    let off = plane.point(0.5, -0.25) + normal.clone();
    let (x, y) = plane.coordinates(&off);
    assert!(
        (x - 0.5).abs() < 1e-4 && (y + 0.25).abs() < 1e-4,
        "({x}, {y})"
    );
    assert!((plane.distance(&off) - dot(&normal, &normal).sqrt()).abs() < 1e-3);

    // Each row of the grid is the points of `point`, to the bit.
    let xs = [-0.5, 0.0, 1.5];
    let row = plane.row(&xs, 0.75);
    for (i, &x) in xs.iter().enumerate() {
        let from_row: Vec<f32> = row
            .clone()
            .narrow(0, i, 1)
            .reshape([500])
            .to_data()
            .to_vec()
            .unwrap();
        assert_eq!(from_row, values(&plane.point(x, 0.75)));
    }
    assert!(Plane::through(&a, &a, &c).is_err());
    let on_line = a.clone() + (b.clone() - a.clone()).mul_scalar(2.0);
    assert!(Plane::through(&a, &b, &on_line).is_err());
}

#[test]
fn the_farthest_bead_is_the_one_off_the_line() {
    let [a, b] = [1, 2].map(|seed| random(50, seed));
    let mid = (a.clone() + b.clone()).div_scalar(2.0);
    let bump = random(50, 3).mul_scalar(0.1);
    let beads = [
        mid.clone(),
        mid.clone() + bump.clone(),
        mid + bump.mul_scalar(0.5),
    ];
    let (k, distance) = farthest_from_line(&a, &b, &beads).unwrap();
    assert_eq!(k, 1);
    assert!(distance > 0.0);
}

/// The energies of `rows` in one stacked call against one by one, and the energy at the
/// origin of the first row against the model's own.
fn grid_energies_match<L: Landscape<Train>>(task: &L, seeds: [u64; 3]) {
    let template = task.init(0).valid();
    let [a, b, c] = seeds.map(|s| flatten(&task.init(s).valid()));
    task.set_endpoints(&a, &b);
    let plane = Plane::through(&a, &b, &c).unwrap();
    let xs = [0.0, 0.3 * plane.u_norm, plane.u_norm, -0.2];
    for y in [0.0, 0.5 * plane.v_norm] {
        let row = plane.row(&xs, y);
        let stacked = task.energies(&template, row.clone());
        let one_by_one = pointwise_energies(task, &template, row);
        for (s, o) in stacked.iter().zip(&one_by_one) {
            assert!(
                (s - o).abs() <= 1e-5 * o.abs().max(1.0),
                "{stacked:?} vs {one_by_one:?}"
            );
        }
        if y == 0.0 {
            let at_a = task.energy(&unflatten(template.clone(), a.clone()));
            assert!(
                (stacked[0] - at_a).abs() <= 1e-6 * at_a.abs().max(1.0),
                "{} vs {at_a}",
                stacked[0]
            );
        }
    }
}

#[test]
fn a_grid_row_evaluates_as_its_points_one_by_one() {
    grid_energies_match(&quadratic_task(), [1, 2, 3]);
}

fn image_task<N: ImageNet>(net: N, bn: Option<BnConfig>) -> ImageTask<Train, N> {
    let images = noise_images(16, 4);
    let task = ImageTask::<Train, _>::new(
        net,
        Pipeline::Scale,
        images.clone(),
        &images,
        8,
        Energy::TestLoss,
        &device(),
    )
    .expect("valid task");
    match bn {
        Some(bn) => task.with_statistics(bn).expect("valid [bn]"),
        None => task,
    }
}

fn batch_norm_net() -> DescribedConfig {
    let description: NetDescription = toml::from_str(
        r#"
layers = [
    { kind = "conv2d", channels = 3, kernel = 3, padding = 1, bias = false },
    { kind = "batch_norm" },
    { kind = "relu" },
    { kind = "max_pool2d", kernel = 4 },
    { kind = "flatten" },
    { kind = "linear", features = 10 },
]
"#,
    )
    .unwrap();
    DescribedConfig::new(description, [1, 28, 28], 10).unwrap()
}

#[test]
fn a_batch_norm_nets_grid_row_evaluates_as_its_points_one_by_one() {
    for stats in [StatsMode::Recompute, StatsMode::Interpolate] {
        let bn = BnConfig { stats, batches: 1 };
        grid_energies_match(&image_task(batch_norm_net(), Some(bn)), [1, 2, 3]);
    }
}

/// Every filter of `direction` has the norm of `model`'s filter, and every parameter of rank
/// one is zero.
fn check_filters(model: &[f32], direction: &[f32], shapes: &[Vec<usize>]) {
    let mut offset = 0;
    let mut filters_seen = 0;
    for shape in shapes {
        let n: usize = shape.iter().product();
        let filters: Vec<Vec<usize>> = match shape.len() {
            0 | 1 => {
                assert!(
                    direction[offset..offset + n].iter().all(|&d| d == 0.0),
                    "{shape:?}"
                );
                Vec::new()
            }
            // Burn's linear weight is [in, out]: a column per output unit.
            2 => (0..shape[1])
                .map(|j| (0..shape[0]).map(|i| offset + i * shape[1] + j).collect())
                .collect(),
            _ => (0..shape[0])
                .map(|f| (offset + f * n / shape[0]..offset + (f + 1) * n / shape[0]).collect())
                .collect(),
        };
        for filter in filters {
            let norm = |v: &[f32]| filter.iter().map(|&i| v[i] * v[i]).sum::<f32>().sqrt();
            let (m, d) = (norm(model), norm(direction));
            assert!((m - d).abs() <= 1e-4 * m.max(1e-3), "{shape:?}: {d} vs {m}");
            filters_seen += 1;
        }
        offset += n;
    }
    assert_eq!(offset, model.len());
    assert!(filters_seen > 0);
}

fn filter_normalization_holds<M: burn::module::Module<Compute>>(model: &M) {
    let shapes = param_shapes(model);
    let flat = values(&flatten(model));
    let direction = values(&filter_normalized(model, 7));
    check_filters(&flat, &direction, &shapes);
    // A seed gives one direction; another seed another.
    assert_eq!(direction, values(&filter_normalized(model, 7)));
    assert_ne!(direction, values(&filter_normalized(model, 8)));
}

#[test]
fn filter_normalized_directions_of_a_convnet() {
    let net = MnistConvConfig {
        conv1: 4,
        conv2: 6,
        hidden: 16,
        dropout: 0.0,
    };
    let model = net.init::<Compute>(3, &device());
    assert!(param_shapes(&model).iter().any(|s| s.len() == 4));
    filter_normalization_holds(&model);
}

#[test]
fn filter_normalized_directions_of_a_batch_norm_net() {
    let model = batch_norm_net().init::<Compute>(3, &device());
    // The BatchNorm's scale and shift are coordinates of rank one: zero in the direction.
    let ranks: Vec<usize> = param_shapes(&model).iter().map(Vec::len).collect();
    assert!(ranks.iter().filter(|&&r| r == 1).count() >= 2, "{ranks:?}");
    filter_normalization_holds(&model);
}

#[test]
fn a_span_row_without_v_moves_along_u_alone() {
    let [origin, u] = [1, 2].map(|seed| random(20, seed));
    let row = span_row(&origin, &u, None, &[2.0], 5.0);
    let expected = origin + u.mul_scalar(2.0);
    assert_eq!(
        row.reshape([20]).to_data().to_vec::<f32>().unwrap(),
        values(&expected)
    );
}
