//! levelset's experiments: configs, the commands behind the `levelset` binary, the studies
//! they run (sweeps, method comparisons, width series), their outputs and the benchmarks.
//!
//! Modules depend downwards only: `config` at the bottom, then `landscapes` (a config's
//! task, built on the chosen backend) and `pair` (endpoints and one connection), then
//! `studies`, `output` and `bench`, then `commands`; `weights` (foreign weight files) depends on nothing of ours; `main.rs` holds the command line alone.

pub mod bench;
pub mod commands;
pub mod config;
#[cfg(test)]
mod config_props;
pub mod landscapes;
pub mod output;
pub mod pair;
pub mod studies;
pub mod weights;
