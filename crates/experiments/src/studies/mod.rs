//! Experiments over many pairs: level sweeps (whole or in shards), the comparison of every
//! path method, the width series and the Proposition 2.3 check.

pub mod compare;
pub mod prop23;
pub mod shard;
pub mod shards;
pub mod sweep;
pub mod width;
