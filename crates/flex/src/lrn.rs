//! Local response normalization on flex, one pass over each image each way.
//!
//! The generic layer (levelset-models' `nets::lrn`) sums squares over a channel window as
//! 2r + 1 channel slices of a padded copy, each a strided view that flex walks one index at a
//! time, which dominates the CIFAR-10 convnet's evaluation (profile in
//! `experiments/bench/README.md`). Here the window sums run along contiguous channel planes,
//! in the generic layer's order of additions and operations, so the outputs are the same.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::{TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{try_unary, values};

/// Local response normalization across channels, as TensorFlow's `tf.nn.lrn`:
/// `x / (bias + alpha * sum over 2r+1 neighbouring channels of x^2)^beta`, r = `depth_radius`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrnWindow {
    pub depth_radius: usize,
    pub bias: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// The normalization `lrn` of `x` [b, c, h, w] when `B` is flex, with or without autodiff,
/// and `x` is f32; otherwise `x` back untouched.
pub fn try_lrn<B: Backend>(lrn: &LrnWindow, x: Tensor<B, 4>) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    try_unary(x, LrnBackward(*lrn), |x| {
        let x = x.to_contiguous();
        let [n, c, h, w] = x.shape().dims();
        let planes = Planes { c, len: h * w };
        let xs = values(&x);
        let (mut y, mut d, mut p) = (
            vec![0f32; xs.len()],
            vec![0f32; xs.len()],
            vec![0f32; xs.len()],
        );
        y.par_chunks_mut(planes.image())
            .zip(d.par_chunks_mut(planes.image()))
            .zip(p.par_chunks_mut(planes.image()))
            .zip(xs.par_chunks(planes.image()))
            .for_each(|(((y, d), p), x)| planes.forward(lrn, x, y, d, p));
        let shape = [n, c, h, w];
        let tensor = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, shape));
        (tensor(y), (x, tensor(d), tensor(p)))
    })
}

/// The channel planes [c, h * w] of one image.
#[derive(Debug, Clone, Copy)]
struct Planes {
    c: usize,
    len: usize,
}

impl Planes {
    fn image(&self) -> usize {
        self.c * self.len
    }

    /// `sum` = the sum of the planes of `values` [c, len] within `radius` of `channel`,
    /// added in ascending order as the generic layer does (its zero padding adds nothing).
    fn window_sum(&self, radius: usize, channel: usize, values: &[f32], sum: &mut [f32]) {
        let plane = |j: usize| &values[j * self.len..][..self.len];
        let mut window = channel.saturating_sub(radius)..(channel + radius + 1).min(self.c);
        let first = window.next().expect("a window holds its own channel");
        sum.copy_from_slice(plane(first));
        for j in window {
            for (s, v) in sum.iter_mut().zip(plane(j)) {
                *s += v;
            }
        }
    }

    /// One image: `y = x / p`, with the denominator base `d = bias + alpha * (window sum of
    /// x^2)` and `p = d^beta`.
    fn forward(&self, lrn: &LrnWindow, x: &[f32], y: &mut [f32], d: &mut [f32], p: &mut [f32]) {
        let (alpha, bias, beta) = (lrn.alpha as f32, lrn.bias as f32, lrn.beta as f32);
        let square: Vec<f32> = x.iter().map(|v| v * v).collect();
        let planes = y
            .chunks_mut(self.len)
            .zip(d.chunks_mut(self.len))
            .zip(p.chunks_mut(self.len));
        for (channel, ((y, d), p)) in planes.enumerate() {
            self.window_sum(lrn.depth_radius, channel, &square, d);
            let x = &x[channel * self.len..][..self.len];
            for (((y, d), p), x) in y.iter_mut().zip(d.iter_mut()).zip(p.iter_mut()).zip(x) {
                *d = *d * alpha + bias;
                *p = d.powf(beta);
                *y = x / *p;
            }
        }
    }

    /// One image's input gradient, from its output gradient `g`:
    /// `dx_k = g_k / p_k - 2 alpha beta x_k * sum over c in window(k) of g_c x_c / (p_c d_c)`.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        lrn: &LrnWindow,
        x: &[f32],
        d: &[f32],
        p: &[f32],
        g: &[f32],
        dx: &mut [f32],
    ) {
        let scale = 2.0 * lrn.alpha as f32 * lrn.beta as f32;
        let t: Vec<f32> = (0..x.len()).map(|i| g[i] * x[i] / (p[i] * d[i])).collect();
        for (channel, dx) in dx.chunks_mut(self.len).enumerate() {
            let at = channel * self.len;
            let (x, p, g) = (
                &x[at..][..self.len],
                &p[at..][..self.len],
                &g[at..][..self.len],
            );
            self.window_sum(lrn.depth_radius, channel, &t, dx);
            for (((dx, x), p), g) in dx.iter_mut().zip(x).zip(p).zip(g) {
                *dx = g / p - scale * x * *dx;
            }
        }
    }
}

#[derive(Debug)]
struct LrnBackward(LrnWindow);

impl Backward<Flex, 1> for LrnBackward {
    /// The input, the denominator bases `d` and the denominators `p = d^beta`.
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Some(node) = node else { return };
        let (x, d, p) = ops.state;
        let [_, c, h, w] = x.shape().dims();
        let planes = Planes { c, len: h * w };
        let (xs, ds, ps, gs) = (values(&x), values(&d), values(&p), values(&grad));
        let mut dx = vec![0f32; xs.len()];
        let image = planes.image();
        dx.par_chunks_mut(image)
            .zip(xs.par_chunks(image))
            .zip(ds.par_chunks(image).zip(ps.par_chunks(image)))
            .zip(gs.par_chunks(image))
            .for_each(|(((dx, x), (d, p)), g)| planes.backward(&self.0, x, d, p, g, dx));
        let dx = FlexTensor::from_data(TensorData::new(dx, x.shape()));
        grads.register::<Flex>(node.id, dx);
    }
}
