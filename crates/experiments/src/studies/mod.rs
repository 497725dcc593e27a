//! Experiments over many pairs: level sweeps (whole or in shards), graphs of many minima (whole or in shards), the comparison of every
//! path method, the width series, the Proposition 2.3 check, and a task's training floor.

pub mod compare;
pub mod floor;
pub mod graph;
pub mod graph_merge;
pub mod prop23;
pub mod shard;
pub mod shards;
pub mod sweep;
pub mod width;
