//! PyTorch's `nn.LSTM` parameters laid out as Burn's. PyTorch packs each layer's four gates
//! into one tensor per transform (`weight_ih_l{k}` [4h, in], `weight_hh_l{k}` [4h, h],
//! `bias_ih_l{k}` and `bias_hh_l{k}` [4h], gate blocks in the order input, forget, cell,
//! output); Burn keeps a gate controller per gate, each an input and a hidden transform
//! (`Linear` layers). Both compute `W_ih x + b_ih + W_hh h + b_hh` per gate, so the blocks map
//! one to one.

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
