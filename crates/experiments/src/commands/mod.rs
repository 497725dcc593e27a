//! What each `levelset` subcommand does, given its parsed arguments.

pub mod connect;
pub mod connect_hessian;
pub mod connect_resume;
pub mod data;
pub mod eval;
pub mod export;
pub mod graph;
pub mod hessian;
pub mod import;
pub mod pictures;
pub mod plane;
mod pytorch_lstm;
pub mod pytorch_names;
pub mod reproduce;
pub mod slurm;
pub mod surface;
pub mod train;
