//! PyTorch's `nn.LSTM` parameters laid out as Burn's. PyTorch packs each layer's four gates
//! into one tensor per transform (`weight_ih_l{k}` [4h, in], `weight_hh_l{k}` [4h, h],
//! `bias_ih_l{k}` and `bias_hh_l{k}` [4h], gate blocks in the order input, forget, cell,
//! output); Burn keeps a gate controller per gate, each an input and a hidden transform
//! (`Linear` layers). Both compute `W_ih x + b_ih + W_hh h + b_hh` per gate, so the blocks map
//! one to one. [`unpack`] reads PyTorch's layout at import, [`pack`] writes it at export.

use anyhow::{Result, anyhow, bail};
use burn::module::ParamId;
use burn::tensor::TensorData;
use burn_store::TensorSnapshot;

/// Burn's gate controllers, in the order of PyTorch's gate blocks.
const GATES: [&str; 4] = ["input_gate", "forget_gate", "cell_gate", "output_gate"];

/// A packed tensor's place: `{prefix}.{weight|bias}_{ih|hh}_l{layer}`.
struct Packed<'a> {
    tensor: &'a str,
    transform: &'static str,
    layer: usize,
}

fn packed<'a>(name: &'a str, prefix: &str) -> Option<Packed<'a>> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    let (tensor, rest) = rest.split_once('_')?;
    let (which, layer) = rest.split_once("_l")?;
    let transform = match which {
        "ih" => "input_transform",
        "hh" => "hidden_transform",
        _ => return None,
    };
    let layer = layer.parse().ok()?;
    matches!(tensor, "weight" | "bias").then_some(Packed {
        tensor,
        transform,
        layer,
    })
}

/// The snapshots with every packed LSTM tensor under `prefix` split into its four gates'
/// blocks, named as Burn's `Lstm` in a `Vec` at `prefix` names them
/// (`{prefix}.{layer}.{gate}.{transform}.{weight|bias}`); the weights stay in PyTorch's
/// [out, in] layout for the import's adapter to transpose, as any `Linear` weight. Other
/// tensors (a bidirectional LSTM's `_reverse` ones, a projection's `weight_hr`) pass
/// unchanged, so that the import lists them as left over.
pub fn unpack(snapshots: Vec<TensorSnapshot>, prefix: &str) -> Result<Vec<TensorSnapshot>> {
    let mut out = Vec::with_capacity(snapshots.len());
    for snapshot in snapshots {
        let name = snapshot.full_path();
        let Some(place) = packed(&name, prefix) else {
            out.push(snapshot);
            continue;
        };
        let shape = snapshot.shape.to_vec();
        let rows = shape[0];
        if rows % GATES.len() != 0 || shape.len() > 2 {
            bail!(
                "{name} has shape {shape:?}; PyTorch's LSTM packs its four gates' blocks along \
                 the first axis, so it needs a multiple of 4 rows (and at most two axes)"
            );
        }
        let data = snapshot
            .to_data()
            .map_err(|e| anyhow!("{name}: {e:?}"))?
            .convert::<f32>();
        let values = data.to_vec::<f32>().map_err(|e| anyhow!("{name}: {e:?}"))?;
        let hidden = rows / GATES.len();
        let block = values.len() / GATES.len();
        for (g, gate) in GATES.iter().enumerate() {
            let mut dims = shape.clone();
            dims[0] = hidden;
            let part = TensorData::new(values[g * block..(g + 1) * block].to_vec(), dims);
            let path = format!(
                "{prefix}.{}.{gate}.{}.{}",
                place.layer, place.transform, place.tensor
            );
            out.push(TensorSnapshot::from_data(
                part,
                path.split('.').map(String::from).collect(),
                Vec::new(),
                ParamId::new(),
            ));
        }
    }
    Ok(out)
}

/// A gate controller's tensor, as Burn's `Lstm` in a `Vec` at a prefix names it:
/// `{prefix}.{layer}.{gate}.{transform}.{weight|bias}`, the gate's index in [`GATES`].
struct Gate<'a> {
    layer: usize,
    gate: usize,
    transform: &'a str,
    tensor: &'a str,
}

fn gate<'a>(name: &'a str, prefix: &str) -> Option<Gate<'a>> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    let parts: Vec<&str> = rest.split('.').collect();
    let [layer, gate, transform, tensor] = parts[..] else {
        return None;
    };
    let which = match transform {
        "input_transform" | "hidden_transform" => transform,
        _ => return None,
    };
    matches!(tensor, "weight" | "bias").then_some(())?;
    Some(Gate {
        layer: layer.parse().ok()?,
        gate: GATES.iter().position(|g| *g == gate)?,
        transform: which,
        tensor,
    })
}

/// The inverse of [`unpack`]: every gate controller's tensors under `prefix` (weights already
/// in PyTorch's [out, in] layout) stacked into PyTorch's packed tensors,
/// `{prefix}.{weight|bias}_{ih|hh}_l{layer}`, gate blocks in PyTorch's order. The bytes are
/// concatenated as they are, so the values are exact. Other tensors pass unchanged; the packed
/// ones take the place of their first gate.
pub fn pack(snapshots: Vec<TensorSnapshot>, prefix: &str) -> Result<Vec<TensorSnapshot>> {
    /// A place in the output: a tensor that passes, or the packed tensor `packed[i]`.
    enum Place {
        Kept(TensorSnapshot),
        Packed(usize),
    }
    // (packed name, [its four blocks]) in order of first appearance.
    let mut places = Vec::with_capacity(snapshots.len());
    let mut packed: Vec<(String, [Option<TensorData>; 4])> = Vec::new();
    for snapshot in snapshots {
        let name = snapshot.full_path();
        let Some(place) = gate(&name, prefix) else {
            places.push(Place::Kept(snapshot));
            continue;
        };
        let which = if place.transform == "input_transform" {
            "ih"
        } else {
            "hh"
        };
        let target = format!("{prefix}.{}_{which}_l{}", place.tensor, place.layer);
        let index = match packed.iter().position(|(n, _)| *n == target) {
            Some(index) => index,
            None => {
                packed.push((target, Default::default()));
                places.push(Place::Packed(packed.len() - 1));
                packed.len() - 1
            }
        };
        let data = snapshot.to_data().map_err(|e| anyhow!("{name}: {e:?}"))?;
        packed[index].1[place.gate] = Some(data);
    }
    let mut out = Vec::with_capacity(places.len());
    for place in places {
        let index = match place {
            Place::Kept(snapshot) => {
                out.push(snapshot);
                continue;
            }
            Place::Packed(index) => index,
        };
        let (name, blocks) = &packed[index];
        let mut bytes = Vec::new();
        let mut first: Option<&TensorData> = None;
        for (block, gate) in blocks.iter().zip(GATES) {
            let Some(block) = block else {
                bail!("{name}: the LSTM's {gate} has no tensor for it; Burn's LSTM has four gates");
            };
            if let Some(first) = first
                && (first.shape != block.shape || first.dtype != block.dtype)
            {
                bail!(
                    "{name}: the gates' blocks differ ({:?} {:?} against {:?} {:?})",
                    first.dtype,
                    first.shape,
                    block.dtype,
                    block.shape
                );
            }
            first = first.or(Some(block));
            bytes.extend_from_slice(block.as_bytes());
        }
        let first = first.expect("four blocks");
        let mut shape = first.shape.to_vec();
        shape[0] *= GATES.len();
        let data = TensorData::from_bytes_vec(bytes, shape, first.dtype);
        out.push(TensorSnapshot::from_data(
            data,
            name.split('.').map(String::from).collect(),
            Vec::new(),
            ParamId::new(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(name: &str, values: Vec<f32>, shape: Vec<usize>) -> TensorSnapshot {
        TensorSnapshot::from_data(
            TensorData::new(values, shape),
            name.split('.').map(String::from).collect(),
            Vec::new(),
            ParamId::new(),
        )
    }

    fn values(s: &TensorSnapshot) -> Vec<f32> {
        s.to_data().unwrap().to_vec::<f32>().unwrap()
    }

    #[test]
    fn packed_gates_are_split_in_pytorch_order_and_the_rest_passes() {
        // Hidden 2, input 3: rows 0-1 input gate, 2-3 forget, 4-5 cell, 6-7 output.
        let weight: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let bias: Vec<f32> = (0..8).map(|v| 100.0 + v as f32).collect();
        let snapshots = vec![
            snapshot("lstm.weight_ih_l1", weight, vec![8, 3]),
            snapshot("lstm.bias_hh_l1", bias, vec![8]),
            snapshot("lstm.weight_ih_l0_reverse", vec![0.0; 24], vec![8, 3]),
            snapshot("embedding.weight", vec![1.0; 6], vec![3, 2]),
        ];
        let out = unpack(snapshots, "lstm").unwrap();
        let find = |name: &str| {
            out.iter()
                .find(|s| s.full_path() == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let forget = find("lstm.1.forget_gate.input_transform.weight");
        assert_eq!(forget.shape.to_vec(), vec![2, 3]);
        assert_eq!(values(forget), vec![6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        let cell = find("lstm.1.cell_gate.hidden_transform.bias");
        assert_eq!(values(cell), vec![104.0, 105.0]);
        assert_eq!(
            values(find("lstm.1.output_gate.hidden_transform.bias")),
            vec![106.0, 107.0]
        );
        find("lstm.weight_ih_l0_reverse");
        find("embedding.weight");
        assert_eq!(out.len(), 4 + 4 + 2);
    }

    /// Packing is unpacking's inverse: a packed layer's tensors, split and packed again, come
    /// back with the same names, shapes and bits; the other tensors pass both ways.
    #[test]
    fn pack_undoes_unpack_bit_for_bit() {
        let weight: Vec<f32> = (0..24).map(|v| (v as f32).sin() * 1e-3).collect();
        let hidden: Vec<f32> = (0..16).map(|v| -(v as f32) / 7.0).collect();
        let bias: Vec<f32> = (0..8).map(|v| 100.0 + v as f32 / 3.0).collect();
        let original = vec![
            snapshot("lstm.weight_ih_l0", weight, vec![8, 3]),
            snapshot("lstm.weight_hh_l0", hidden, vec![8, 2]),
            snapshot("lstm.bias_ih_l0", bias.clone(), vec![8]),
            snapshot(
                "lstm.bias_hh_l0",
                bias.iter().map(|b| -b).collect(),
                vec![8],
            ),
            snapshot("embedding.weight", vec![1.5; 6], vec![3, 2]),
        ];
        let split = unpack(original.clone(), "lstm").unwrap();
        assert_eq!(split.len(), 4 * 4 + 1);
        let packed = pack(split, "lstm").unwrap();
        let describe = |all: &[TensorSnapshot]| -> Vec<(String, Vec<usize>, Vec<u8>)> {
            let mut out: Vec<_> = all
                .iter()
                .map(|s| {
                    let data = s.to_data().unwrap();
                    (s.full_path(), data.shape.to_vec(), data.as_bytes().to_vec())
                })
                .collect();
            out.sort();
            out
        };
        assert_eq!(describe(&packed), describe(&original));
    }

    #[test]
    fn a_gate_missing_from_a_layer_is_an_error_naming_it() {
        let split = unpack(
            vec![snapshot("lstm.bias_ih_l0", vec![0.0; 8], vec![8])],
            "lstm",
        )
        .unwrap();
        let without_cell: Vec<_> = split
            .into_iter()
            .filter(|s| !s.full_path().contains("cell_gate"))
            .collect();
        let err = pack(without_cell, "lstm").unwrap_err().to_string();
        assert!(
            err.contains("lstm.bias_ih_l0") && err.contains("cell_gate"),
            "{err}"
        );
    }

    #[test]
    fn a_packed_tensor_that_is_not_four_blocks_is_an_error() {
        let bad = vec![snapshot("lstm.weight_hh_l0", vec![0.0; 6], vec![3, 2])];
        let err = unpack(bad, "lstm").unwrap_err().to_string();
        assert!(
            err.contains("lstm.weight_hh_l0") && err.contains("multiple of 4"),
            "{err}"
        );
    }
}
