//! levelset's experiments: configs, the commands behind the `levelset` binary, the studies
//! they run (sweeps, method comparisons, width series), their outputs and the benchmarks.
//!
//! Modules depend downwards only: `config` at the bottom, then `landscapes` (a config's
//! task, built on the chosen backend), `pair` (endpoints and one connection), `curvature` (the Hessian along a path) and `resumable`
//! (the checks before a results file is continued), then
//! `studies`, `output` and `bench`, then `commands`; `weights` (foreign weight files) depends on nothing of ours; `main.rs` holds the command line alone.
//!
//! Where to start reading: [`config::ExperimentConfig`], what a config file may say (every
//! key is in the book's configs reference, `docs/src/reference/configs.md`); [`pair`], which
//! trains two endpoints and connects them, the unit every study repeats;
//! [`studies::sweep`], levels x pairs with resume and shards; and [`commands`], one module per
//! subcommand. The book (`docs/`) describes each command and each study's results.

pub mod bench;
pub mod commands;
pub mod config;
#[cfg(test)]
mod config_docs;
#[cfg(test)]
mod config_props;
pub mod curvature;
pub mod landscapes;
pub mod output;
pub mod pair;
pub mod resumable;
pub mod studies;
pub mod weights;
