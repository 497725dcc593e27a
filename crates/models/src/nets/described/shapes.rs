//! Checking a description against its input before any tensor is made: the shape after each
//! layer, or an error that names what is wrong.

use super::Shape;
use super::spec::{LayerSpec, NamedPadding, Padding};
use crate::init::Init;

/// Layer sizes and feature counts are capped: each sizes an allocation.
const MAX_SIZE: usize = 1 << 20;

/// The pixels a window layer adds before and after each axis: ((top, bottom), (left, right)).
type Pads = ((usize, usize), (usize, usize));

/// The output side of a convolution or pooling window over `side` pixels padded with
/// `before` and `after`.
fn window_out(
    side: usize,
    kernel: usize,
    stride: usize,
    (before, after): (usize, usize),
) -> Option<usize> {
    let padded = side + before + after;
    (kernel <= padded).then(|| (padded - kernel) / stride + 1)
}

/// TensorFlow's SAME padding of one axis of `side` pixels: an output of ceil(side / stride),
/// the odd pixel of the padding after.
fn tf_same(side: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let total = ((side.div_ceil(stride) - 1) * stride + kernel).saturating_sub(side);
    (total / 2, total - total / 2)
}

/// A pooling layer's padding of an `h` x `w` input (kernel and stride positive).
pub(super) fn pool_pads(
    padding: Padding,
    kernel: usize,
    stride: usize,
    [h, w]: [usize; 2],
) -> Pads {
    match padding {
        Padding::Pixels(p) => ((p, p), (p, p)),
        Padding::Named(NamedPadding::Same) => {
            (tf_same(h, kernel, stride), tf_same(w, kernel, stride))
        }
    }
}

/// What is wrong with a net's or a layer's weight and bias draws, if anything.
pub(crate) fn check_draws(weights: Option<Init>, biases: Option<Init>) -> Result<(), String> {
    for (key, init) in [("weights", weights), ("biases", biases)] {
        if let Some(init) = init {
            init.validate().map_err(|e| format!("{key}: {e}"))?;
        }
    }
    Ok(())
}

/// What is wrong with a layer's parameter draws and weight decay, if anything.
pub(crate) fn check_params(
    weights: Option<Init>,
    biases: Option<Init>,
    weight_decay: f64,
) -> Result<(), String> {
    check_draws(weights, biases)?;
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(format!(
            "weight_decay must be a finite number >= 0, got {weight_decay}"
        ));
    }
    Ok(())
}

/// PyTorch's default draw of a linear or convolution layer's parameters (and of an LSTM's):
/// uniform in ±1/sqrt(n), n the fan-in (the hidden size).
pub(crate) fn pytorch_uniform(n: usize) -> Init {
    let bound = 1.0 / (n.max(1) as f32).sqrt();
    Init::Uniform {
        low: -bound,
        high: bound,
    }
}

/// `v`, if it is a usable size for `key` (a layer size or feature count; each sizes an
/// allocation).
pub(crate) fn check_size(key: &str, v: usize) -> Result<usize, String> {
    if v == 0 || v > MAX_SIZE {
        Err(format!("{key} must be in 1..={MAX_SIZE}, got {v}"))
    } else {
        Ok(v)
    }
}

/// The shape after `layer` for an input of shape `shape`, or what is wrong.
pub(super) fn next_shape(layer: &LayerSpec, shape: Shape) -> Result<Shape, String> {
    if let Some(reason) = layer.unsupported() {
        return Err(reason.into());
    }
    let image = || match shape {
        Shape::Image(dims) => Ok(dims),
        Shape::Flat(_) => Err(format!(
            "takes an image, but its input is {shape} (put it before `flatten`)"
        )),
    };
    let flat = || match shape {
        Shape::Flat(n) => Ok(n),
        Shape::Image(_) => Err(format!(
            "takes features, but its input is a {shape} (add a `flatten` layer before it)"
        )),
    };
    let size = check_size;
    // PyTorch's pools take at most half the kernel as padding; a convolution's padding of a
    // kernel or more would only add outputs that see no input.
    let window = |kernel: usize, stride: usize, pads: Pads, [c, h, w]: [usize; 3], pool| {
        let ((top, bottom), (left, right)) = pads;
        let padding = top.max(bottom).max(left).max(right);
        if pool && padding > kernel / 2 {
            return Err(format!(
                "padding {padding} is more than half the kernel ({kernel})"
            ));
        }
        if padding >= kernel {
            return Err(format!(
                "padding {padding} is not less than the kernel ({kernel})"
            ));
        }
        match (
            window_out(h, kernel, stride, (top, bottom)),
            window_out(w, kernel, stride, (left, right)),
        ) {
            (Some(oh), Some(ow)) => Ok(Shape::Image([c, oh, ow])),
            _ => Err(format!(
                "a {kernel}x{kernel} window with padding {padding} does not fit its {h}x{w} input"
            )),
        }
    };
    match *layer {
        LayerSpec::Linear {
            features,
            weights,
            biases,
            weight_decay,
            ..
        } => {
            flat()?;
            check_params(weights, biases, weight_decay)?;
            Ok(Shape::Flat(size("features", features)?))
        }
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
            groups,
            weights,
            biases,
            weight_decay,
            ..
        } => {
            let [c, h, w] = image()?;
            check_params(weights, biases, weight_decay)?;
            size("channels", channels)?;
            size("kernel", kernel)?;
            size("stride", stride)?;
            size("groups", groups)?;
            if c % groups != 0 || channels % groups != 0 {
                return Err(format!(
                    "groups ({groups}) must divide the input channels ({c}) and the output \
                     channels ({channels})"
                ));
            }
            let pixels = match padding {
                Padding::Pixels(p) => p,
                Padding::Named(NamedPadding::Same) => {
                    if stride != 1 || kernel % 2 == 0 {
                        return Err(format!(
                            "padding \"same\" needs stride 1 and an odd kernel, got stride \
                             {stride} and kernel {kernel}"
                        ));
                    }
                    kernel / 2
                }
            };
            let pads = ((pixels, pixels), (pixels, pixels));
            match window(kernel, stride, pads, [channels, h, w], false)? {
                Shape::Image(dims) if dims.iter().product::<usize>() <= MAX_SIZE * 16 => {
                    Ok(Shape::Image(dims))
                }
                shape => Err(format!("its output, a {shape}, is too large")),
            }
        }
        LayerSpec::MaxPool2d {
            kernel,
            stride,
            padding,
        }
        | LayerSpec::AvgPool2d {
            kernel,
            stride,
            padding,
        } => {
            let [c, h, w] = image()?;
            if matches!(layer, LayerSpec::AvgPool2d { .. })
                && padding == Padding::Named(NamedPadding::Same)
            {
                return Err(
                    "padding \"same\" (TensorFlow's) is taken by max_pool2d only: an \
                            average pool would count the padding in its averages, which \
                            TensorFlow's does not; give the padding in pixels"
                        .into(),
                );
            }
            let stride = size("stride", stride.unwrap_or(kernel))?;
            let pads = pool_pads(padding, size("kernel", kernel)?, stride, [h, w]);
            window(kernel, stride, pads, [c, h, w], true)
        }
        LayerSpec::Relu | LayerSpec::Sigmoid | LayerSpec::Tanh | LayerSpec::Gelu => Ok(shape),
        LayerSpec::Dropout { p } => {
            if (0.0..1.0).contains(&p) {
                Ok(shape)
            } else {
                Err(format!("p must be in [0, 1), got {p}"))
            }
        }
        LayerSpec::Flatten => {
            let [c, h, w] = image()?;
            Ok(Shape::Flat(c * h * w))
        }
        LayerSpec::Lrn {
            depth_radius,
            bias,
            alpha,
            beta,
        } => {
            image()?;
            size("depth_radius", depth_radius)?;
            if !(bias.is_finite() && alpha.is_finite() && beta.is_finite()) || bias <= 0.0 {
                return Err(format!(
                    "bias must be > 0 and alpha, beta finite, got bias {bias}, alpha {alpha}, \
                     beta {beta}"
                ));
            }
            Ok(shape)
        }
        LayerSpec::LayerNorm { epsilon } => {
            flat()?;
            positive_epsilon(epsilon)?;
            Ok(shape)
        }
        LayerSpec::BatchNorm {
            momentum, epsilon, ..
        } => {
            if !(0.0..=1.0).contains(&momentum) {
                return Err(format!("momentum must be in [0, 1], got {momentum}"));
            }
            positive_epsilon(epsilon)?;
            Ok(shape)
        }
        LayerSpec::GroupNorm {
            groups, epsilon, ..
        } => {
            let [c, _, _] = image()?;
            size("groups", groups)?;
            if c % groups != 0 {
                return Err(format!(
                    "groups ({groups}) must divide the input channels ({c})"
                ));
            }
            positive_epsilon(epsilon)?;
            Ok(shape)
        }
        LayerSpec::GlobalAvgPool => {
            let [c, _, _] = image()?;
            Ok(Shape::Flat(c))
        }
        LayerSpec::Subsample { stride } => {
            let [c, h, w] = image()?;
            size("stride", stride)?;
            Ok(Shape::Image([c, h.div_ceil(stride), w.div_ceil(stride)]))
        }
        LayerSpec::PadChannels { before, after } => {
            let [c, h, w] = image()?;
            let channels = c.saturating_add(before).saturating_add(after);
            size("the padded channels", channels)?;
            Ok(Shape::Image([channels, h, w]))
        }
        LayerSpec::Residual {
            ref body,
            ref shortcut,
        } => residual_shape(body, shortcut, shape).map_err(|e| match e {
            BlockError::Inside(e) | BlockError::Block(e) => e,
        }),
        LayerSpec::Lstm { .. } | LayerSpec::Embedding { .. } => unreachable!("rejected above"),
    }
}

fn positive_epsilon(epsilon: f64) -> Result<(), String> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(format!("epsilon must be > 0, got {epsilon}"))
    }
}

/// The shape after each of `layers` (the list `key` of a description: `layers`, `body`,
/// `shortcut`) for an input of shape `input`; an error names the layer by its path
/// (`layers[4].body[2] (conv2d): ...`).
pub(super) fn chain_shapes(
    layers: &[LayerSpec],
    key: &str,
    input: Shape,
) -> Result<Vec<Shape>, String> {
    let mut shape = input;
    let mut shapes = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        shape = match layer {
            LayerSpec::Residual { body, shortcut } => residual_shape(body, shortcut, shape)
                .map_err(|e| match e {
                    BlockError::Inside(e) => format!("{key}[{i}].{e}"),
                    BlockError::Block(e) => format!("{key}[{i}] (residual): {e}"),
                })?,
            _ => next_shape(layer, shape)
                .map_err(|e| format!("{key}[{i}] ({}): {e}", layer.name()))?,
        };
        shapes.push(shape);
    }
    Ok(shapes)
}

/// What is wrong with a residual block: a layer inside it (the message starts with the
/// layer's path within the block), or the block itself.
enum BlockError {
    Inside(String),
    Block(String),
}

/// The shape after a residual block, whose body and shortcut must give the same shape (they
/// are added).
fn residual_shape(
    body: &[LayerSpec],
    shortcut: &[LayerSpec],
    input: Shape,
) -> Result<Shape, BlockError> {
    if body.is_empty() {
        return Err(BlockError::Block(
            "body: a residual block needs at least one layer in its body".into(),
        ));
    }
    let body_out = *chain_shapes(body, "body", input)
        .map_err(BlockError::Inside)?
        .last()
        .expect("a body has a layer");
    let shortcut_out = match chain_shapes(shortcut, "shortcut", input)
        .map_err(BlockError::Inside)?
        .last()
    {
        Some(&shape) => shape,
        None => input,
    };
    if body_out != shortcut_out {
        let shortcut = if shortcut.is_empty() {
            "the identity shortcut gives its input".to_string()
        } else {
            "its shortcut gives".to_string()
        };
        return Err(BlockError::Block(format!(
            "its body gives a {body_out} but {shortcut}, a {shortcut_out}: the two are added, so \
             they must have the same shape"
        )));
    }
    Ok(body_out)
}
