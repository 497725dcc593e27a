//! What runs show and leave behind besides their rows: progress and logs, figures, the
//! paper's tables, and the deep nets' sweeps against their floors.

pub mod contour;
pub mod depth;
pub mod figures;
pub mod graph_figure;
pub mod paper;
pub mod progress;
pub mod tables;
