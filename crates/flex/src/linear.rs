//! Dense layers on flex.
//!
//! Burn's `linear` runs flex's matmul, which zeroes each output on the calling thread while
//! the workers wait, before gemm overwrites it: 13 MB every step for the weight gradient of
//! the MNIST convnet's first dense layer. It then adds the bias in a pass of its own, into
//! another fresh tensor. Here each product is one gemm call on all threads, written straight
//! into its output, and the bias is added in place.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::{TensorData, TensorMetadata};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::matrix::{Matrix, column_sums, product};
use super::{AffineState, CHUNK, try_affine, values};

/// `layer.forward(x)` when `B` is flex, with or without autodiff, the layer has a bias and
/// `x` is f32; otherwise `x` back untouched.
pub fn try_linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let Some(bias) = &layer.bias else {
        return Err(x);
    };
    try_affine(
        x,
        layer.weight.val(),
        bias.val(),
        LinearBackward,
        |x, weight, bias| (forward(x, weight, bias), ()),
    )
}

/// x [.., d_in] @ weight [d_in, d_out] + bias [d_out]: [.., d_out]
fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let (x, weight, bias) = (
        x.to_contiguous(),
        weight.to_contiguous(),
        bias.to_contiguous(),
    );
    let [d_in, d_out] = weight.shape().dims();
    let (xs, bias) = (values(&x), values(&bias));
    let rows = xs.len() / d_in;
    let mut y = product(Matrix::rows(xs, rows), Matrix::rows(values(&weight), d_in));
    y.par_chunks_mut(CHUNK.div_ceil(d_out) * d_out)
        .for_each(|y| {
            for row in y.chunks_mut(d_out) {
                row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        });
    let mut shape = x.shape();
    let last = shape.num_dims() - 1;
    shape[last] = d_out;
    FlexTensor::from_data(TensorData::new(y, shape))
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    /// The input and the weight.
    type State = AffineState<()>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let (x, weight, ()) = ops.state;
        let [d_in, d_out] = weight.shape().dims();
        let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let grad = values(&grad);
        let rows = grad.len() / d_out;
        let grad = Matrix::rows(grad, rows); // [rows, d_out]
        if let Some(node) = node_bias {
            let db = TensorData::new(column_sums(grad.data, d_out), [d_out]);
            grads.register::<Flex>(node.id, FlexTensor::from_data(db));
        }
        if let Some(node) = node_weight {
            let x = x.to_contiguous();
            // dW [d_in, d_out] = x^T @ grad
            let dw = product(Matrix::rows(values(&x), rows).t(), grad);
            let dw = TensorData::new(dw, [d_in, d_out]);
            grads.register::<Flex>(node.id, FlexTensor::from_data(dw));
        }
        if let Some(node) = node_x {
            let w = weight.to_contiguous();
            // dx [rows, d_in] = grad @ weight^T
            let dx = product(grad, Matrix::rows(values(&w), d_in).t());
            let dx = TensorData::new(dx, x.shape());
            grads.register::<Flex>(node.id, FlexTensor::from_data(dx));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::AutodiffModule;
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::super::FlexTrain;
    use super::*;

    /// Output and gradients (weight, bias, and input when `track_x`) of `sum(f(x) * r)`,
    /// for ours and for Burn's layer.
    fn check<const D: usize>(x_dims: [usize; D], d_out: usize) {
        let device = Default::default();
        let layer = LinearConfig::new(x_dims[D - 1], d_out).init::<FlexTrain>(&device);
        let random =
            |dims| Tensor::<FlexTrain, D>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let x = random(x_dims);
        let mut y_dims = x_dims;
        y_dims[D - 1] = d_out;
        let r = random(y_dims);
        let run = |track_x: bool, f: &dyn Fn(Tensor<FlexTrain, D>) -> Tensor<FlexTrain, D>| {
            let x = if track_x {
                x.clone().require_grad()
            } else {
                x.clone()
            };
            let y = f(x.clone());
            let grads = (y.clone() * r.clone()).sum().backward();
            let bias = layer.bias.as_ref().expect("a bias");
            let mut results = vec![
                y.into_data(),
                layer.weight.grad(&grads).expect("tracked").into_data(),
                bias.grad(&grads).expect("tracked").into_data(),
            ];
            results.extend(x.grad(&grads).map(|dx| dx.into_data()));
            assert_eq!(results.len(), 3 + usize::from(track_x));
            results
        };
        for track_x in [true, false] {
            let ours = run(track_x, &|x| {
                try_linear(&layer, x).expect("handled by flex_linear")
            });
            let burns = run(track_x, &|x| layer.forward(x));
            for (ours, burns) in ours.iter().zip(&burns) {
                assert_eq!(ours.shape, burns.shape);
                ours.assert_approx_eq::<f32>(burns, Tolerance::rel_abs(1e-4, 1e-5));
            }
        }
        let layer = layer.valid();
        let ours = try_linear(&layer, x.clone().inner()).expect("handled by flex_linear");
        ours.into_data().assert_approx_eq::<f32>(
            &layer.forward(x.inner()).into_data(),
            Tolerance::rel_abs(1e-4, 1e-5),
        );
    }

    #[test]
    fn matches_burns_layer_on_a_batch() {
        // Wide enough that gemm splits the products between threads.
        check([37, 300], 129);
    }

    #[test]
    fn matches_burns_layer_on_sequences() {
        check([3, 5, 7], 4);
    }

    #[test]
    fn layers_without_a_bias_are_left_to_burn() {
        let device = Default::default();
        let layer = LinearConfig::new(3, 2)
            .with_bias(false)
            .init::<FlexTrain>(&device);
        assert!(try_linear(&layer, Tensor::<FlexTrain, 2>::zeros([1, 3], &device)).is_err());
    }
}
