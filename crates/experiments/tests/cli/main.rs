//! End-to-end tests of the `levelset` binary: config validation, `info`, `train`, `connect`
//! and `sweep` (resume included), each run as a child process on tiny synthetic configs so the
//! whole suite takes seconds.

mod bench;
mod common;
mod config;
mod connect;
mod data;
mod described;
mod export;
mod floor;
mod foreign_files;
mod graph;
mod hessian;
mod imported_lm;
mod info;
mod methods;
mod output_safety;
mod plane;
mod reproduce;
mod resnet;
mod shards;
mod slurm;
mod surface;
mod sweep;
mod train;
