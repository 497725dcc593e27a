//! What runs show and leave behind besides their rows: progress and logs, figures, and the
//! paper's tables.

pub mod figures;
pub mod paper;
pub mod progress;
pub mod tables;
