//! safetensors files, through the `safetensors` crate, which checks the header, every
//! tensor's byte range against the file and its dtype and shape against that range.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use burn::tensor::{BoolStore, DType, TensorData};
use safetensors::{Dtype, SafeTensors};

use super::{ForeignTensor, Loader, Tree};

/// The file's tensors as a flat dict, by their names.
pub fn read(path: &Path) -> Result<Tree> {
    let bytes =
        Rc::new(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file: {e}", path.display()))?;
    let base = bytes.as_ptr() as usize;
    let mut entries = Vec::new();
    for (name, view) in file.iter() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::I64 => DType::I64,
            Dtype::I32 => DType::I32,
            Dtype::I16 => DType::I16,
            Dtype::I8 => DType::I8,
            Dtype::U64 => DType::U64,
            Dtype::U32 => DType::U32,
            Dtype::U16 => DType::U16,
            Dtype::U8 => DType::U8,
            Dtype::BOOL => DType::Bool(BoolStore::Native),
            other => bail!(
                "{}: tensor {name} is of type {other:?}, which levelset does not read",
                path.display()
            ),
        };
        // The view's bytes as a range of the file, so that the loader owns no borrow.
        let start = view.data().as_ptr() as usize - base;
        let range = start..start + view.data().len();
        let shape = view.shape().to_vec();
        let bytes = Rc::clone(&bytes);
        let loader_shape = shape.clone();
        let loader: Loader = Rc::new(move || {
            Ok(TensorData::from_bytes_vec(
                bytes[range.clone()].to_vec(),
                loader_shape.clone(),
                dtype,
            ))
        });
        entries.push((
            name.to_string(),
            Tree::Tensor(ForeignTensor {
                dtype,
                shape,
                loader,
            }),
        ));
    }
    // The header is a JSON object, whose order the crate does not keep: by name, as the
    // tensors are listed in messages.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Tree::Dict(entries))
}
