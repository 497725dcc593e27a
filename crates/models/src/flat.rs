//! Flat parameter vectors: every float parameter of a module, in Burn's deterministic
//! traversal order, concatenated into one 1-D tensor.
//!
//! Every path method works on these vectors, so the networks never need curve-aware layers:
//! a point of a path is turned back into an ordinary module and run with its usual `forward`.
//!
//! A batch normalization's running statistics are not coordinates of the landscape: Burn
//! visits them as float parameters (BURN-NOTES 8.1), and every visitor and mapper here skips
//! them ([`Coordinates`]); a module made from a vector keeps its template's statistics.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

/// The module's parameters as one vector (keeps the autodiff graph on autodiff backends).
pub fn flatten<B: Backend, M: Module<B>>(module: &M) -> Tensor<B, 1> {
    let mut visitor = Flatten {
        coordinates: Coordinates::default(),
        parts: Vec::new(),
    };
    module.visit(&mut visitor);
    Tensor::cat(visitor.parts, 0)
}

/// Number of float parameters (the length of [`flatten`]'s vector): running statistics are
/// not counted, unlike Burn's `Module::num_params`.
pub fn num_params<B: Backend, M: Module<B>>(module: &M) -> usize {
    let mut visitor = Count {
        coordinates: Coordinates::default(),
        count: 0,
    };
    module.visit(&mut visitor);
    visitor.count
}

/// The shape of every coordinate tensor of `module`, in flat-vector order.
pub fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    let mut visitor = ShapesOf {
        coordinates: Coordinates::default(),
        shapes: Vec::new(),
    };
    module.visit(&mut visitor);
    visitor.shapes
}

/// Tells, during a module's traversal, whether the float tensor being visited or mapped is a
/// coordinate of the landscape or a batch normalization's running statistic (the field
/// `running_mean` or `running_var` of a struct named `BatchNorm`: levelset's and Burn's).
#[derive(Debug, Default)]
pub struct Coordinates {
    /// Depth of the module path inside a running statistic (0: outside).
    inside: usize,
}

impl Coordinates {
    pub fn enter(&mut self, name: &str, container_type: &str) {
        let statistic = container_type == "Struct:BatchNorm"
            && (name == "running_mean" || name == "running_var");
        if self.inside > 0 || statistic {
            self.inside += 1;
        }
    }

    pub fn exit(&mut self) {
        self.inside = self.inside.saturating_sub(1);
    }

    /// Whether the tensor now visited is a coordinate.
    pub fn here(&self) -> bool {
        self.inside == 0
    }
}

/// Implements the path tracking of [`Coordinates`] for a visitor or mapper with a
/// `coordinates` field.
macro_rules! track_coordinates {
    () => {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.coordinates.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.coordinates.exit();
        }
    };
}
pub(crate) use track_coordinates;

struct Count {
    coordinates: Coordinates,
    count: usize,
}

impl<B: Backend> ModuleVisitor<B> for Count {
    track_coordinates!();
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.coordinates.here() {
            self.count += param.shape().num_elements();
        }
    }
}

struct ShapesOf {
    coordinates: Coordinates,
    shapes: Vec<Vec<usize>>,
}

impl<B: Backend> ModuleVisitor<B> for ShapesOf {
    track_coordinates!();
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.coordinates.here() {
            self.shapes.push(param.shape().to_vec());
        }
    }
}

/// A module shaped like `template` whose parameters are `flat`. Differentiable: on an
/// autodiff backend, gradients of anything computed with the result flow back into `flat`.
pub fn unflatten<B: Backend, M: Module<B>>(template: M, flat: Tensor<B, 1>) -> M {
    map_chunks(template, flat.unsqueeze(), Mode::KeepGraph)
}

/// `k` models in one module shaped like `template` (see [`Stacked`]): row `j` of `points`
/// [k, num_params] is model `j`'s flat vector.
pub fn unflatten_stacked<B: Backend, M: Module<B>>(
    template: M,
    points: Tensor<B, 2>,
) -> Stacked<M> {
    let [k, _] = points.dims();
    Stacked {
        module: map_chunks(template, points, Mode::KeepGraph),
        k,
    }
}

/// `k` models of one architecture held in a single module: each parameter of shape
/// `[d0, d1, ...]` holds the `k` models' values stacked along its first dimension,
/// `[k * d0, d1, ...]`, model `j` in rows `j * d0 .. (j + 1) * d0`. That is exactly the
/// weight layout of a grouped convolution with `k` groups, and a reshape away from batched
/// matmul weights `[k, d_in, d_out]`, so a net's stacked forward evaluates all `k` models in
/// one pass with its ordinary layers. Only stacked forwards may use the module.
pub struct Stacked<M> {
    pub module: M,
    pub k: usize,
}

/// A module shaped like `template` holding a copy of `flat` as fresh, trainable leaf
/// parameters with new ids (so an optimizer never confuses it with another copy).
pub fn load_flat<B: Backend, M: Module<B>>(template: M, flat: Tensor<B, 1>) -> M {
    map_chunks(template, flat.unsqueeze(), Mode::FreshLeaves)
}

/// 1 for every entry of a weight tensor (rank 2 or more), 0 for biases and other vectors, in
/// the order of [`flatten`]. The paper's polynomial scripts measured lengths over weights only.
pub fn weight_mask<B: Backend, M: Module<B>>(module: &M) -> Tensor<B, 1> {
    let mut visitor = Mask {
        coordinates: Coordinates::default(),
        parts: Vec::new(),
    };
    module.visit(&mut visitor);
    Tensor::cat(visitor.parts, 0)
}

/// `(1 - t) a + t b`.
pub fn lerp<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>, t: f64) -> Tensor<B, 1> {
    a.clone() + (b.clone() - a.clone()).mul_scalar(t)
}

/// [`lerp`] at every `t`, one row each: [ts.len(), n].
pub fn lerps<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>, ts: &[f64]) -> Tensor<B, 2> {
    // Row by row and a copy: flex's broadcast `[1, n] * [k, 1]` is slower (measured on an
    // MNIST segment check, `experiments/bench/README.md`).
    Tensor::stack(lerp_rows(a, b, ts).collect(), 0)
}

/// [`lerp`] at every `t`, one point at a time (the operations of [`lerps`], so the same
/// values), for callers that need only one point in memory.
pub fn lerp_rows<'a, B: Backend>(
    a: &'a Tensor<B, 1>,
    b: &Tensor<B, 1>,
    ts: &'a [f64],
) -> impl Iterator<Item = Tensor<B, 1>> + 'a {
    let delta = b.clone() - a.clone();
    ts.iter()
        .map(move |&t| a.clone() + delta.clone().mul_scalar(t))
}

/// Euclidean distance between two parameter vectors, read back to the host.
pub fn distance<B: Backend>(a: &Tensor<B, 1>, b: &Tensor<B, 1>) -> f64 {
    let d = (a.clone() - b.clone()).powi_scalar(2).sum().sqrt();
    d.into_scalar().elem::<f64>()
}

/// Hands each parameter of `template`, in [`flatten`]'s order, its chunk of the rows of
/// `points` [k, num_params], stacked along the parameter's first dimension (see [`Stacked`];
/// one row gives the parameter's own shape).
fn map_chunks<B: Backend, M: Module<B>>(template: M, points: Tensor<B, 2>, mode: Mode) -> M {
    let expected = num_params(&template);
    let [k, found] = points.dims();
    assert_eq!(
        found, expected,
        "flat vector of {found} values for a module of {expected} parameters"
    );
    let mut mapper = Chunks {
        coordinates: Coordinates::default(),
        points,
        offset: 0,
        k,
        mode,
    };
    template.map(&mut mapper)
}

struct Flatten<B: Backend> {
    coordinates: Coordinates,
    parts: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Flatten<B> {
    track_coordinates!();
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.coordinates.here() {
            return;
        }
        let value = param.val();
        let n = value.shape().num_elements();
        self.parts.push(value.reshape([n]));
    }
}

#[derive(Clone, Copy)]
enum Mode {
    KeepGraph,
    FreshLeaves,
}

struct Mask<B: Backend> {
    coordinates: Coordinates,
    parts: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Mask<B> {
    track_coordinates!();
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.coordinates.here() {
            return;
        }
        let n = param.shape().num_elements();
        let fill = if D >= 2 { 1.0 } else { 0.0 };
        self.parts
            .push(Tensor::full([n], fill, &param.lazy_device()));
    }
}

struct Chunks<B: Backend> {
    coordinates: Coordinates,
    points: Tensor<B, 2>,
    offset: usize,
    k: usize,
    mode: Mode,
}

impl<B: Backend> ModuleMapper<B> for Chunks<B> {
    track_coordinates!();
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if !self.coordinates.here() {
            return param;
        }
        let mut dims = param.shape().dims::<D>();
        let n: usize = dims.iter().product();
        dims[0] *= self.k;
        // [k, n] row-major is [k, d0, d1, ...], which is [k * d0, d1, ...].
        let chunk: Tensor<B, D> = self.points.clone().narrow(1, self.offset, n).reshape(dims);
        self.offset += n;
        match self.mode {
            Mode::KeepGraph => param.map(|_| chunk),
            Mode::FreshLeaves => Param::initialized(ParamId::new(), chunk.detach().require_grad()),
        }
    }
}
