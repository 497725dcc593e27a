//! Freeman & Bruna's Figure 1 values (read from the paper's vector plots, PAPER.md section
//! 4), in levelset's units: error levels as fractions, not percent.

/// One level of Figure 1: L0, normalized geodesic length, mean beads (when reliable).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperPoint {
    pub level: f64,
    pub length: f64,
    pub beads: Option<f64>,
}

const fn p(level: f64, length: f64, beads: f64) -> PaperPoint {
    PaperPoint {
        level,
        length,
        beads: Some(beads),
    }
}

/// A level whose bead count the paper reported unreliably.
const fn length_only(level: f64, length: f64) -> PaperPoint {
    PaperPoint {
        level,
        length,
        beads: None,
    }
}

const QUADRATIC: [PaperPoint; 8] = [
    p(0.125, 1.270, 3.98),
    p(0.1, 1.346, 5.04),
    p(0.05, 1.366, 6.81),
    p(0.025, 1.329, 8.17),
    p(0.01, 1.476, 13.8),
    p(0.005, 1.661, 23.5),
    p(0.0025, 1.753, 38.3),
    p(0.001, 1.863, 62.4),
];

// 0.32 .. 0.168 read as a flat ~1.004 / ~3.1 in the paper's plot.
const CUBIC: [PaperPoint; 9] = [
    p(0.32, 1.004, 3.1),
    p(0.168, 1.004, 3.1),
    p(0.158, 2.538, 3.43),
    p(0.15, 1.657, 3.74),
    p(0.12, 1.375, 5.96),
    p(0.08, 1.394, 9.50),
    p(0.05, 1.428, 14.0),
    p(0.02, 1.688, 27.3),
    p(0.01, 1.872, 46.3),
];

const MNIST: [PaperPoint; 8] = [
    p(0.04, 1.003, 4.09),
    p(0.02, 1.005, 4.79),
    p(0.015, 1.008, 5.11),
    p(0.01, 1.016, 5.48),
    p(0.009, 1.022, 5.92),
    p(0.008, 1.026, 6.00),
    p(0.0075, 1.047, 6.63),
    p(0.007, 1.071, 7.12),
];

const CIFAR10: [PaperPoint; 5] = [
    p(0.8, 1.001, 3.0),
    p(0.6, 1.003, 3.0),
    p(0.4, 1.012, 3.0),
    p(0.3, 1.159, 3.90),
    p(0.2, 1.845, 5.90),
];

// The authors' PTB check always passed (a bug), so their bead counts mean nothing.
const PTB: [PaperPoint; 5] = [
    length_only(700.0, 1.091),
    length_only(300.0, 1.086),
    length_only(200.0, 1.346),
    length_only(150.0, 1.278),
    length_only(135.0, 1.178),
];

/// Figure 1's row for a task name (`quadratic`, `cubic`, `mnist`, `cifar10`, `ptb`).
pub fn figure1(task: &str) -> Option<&'static [PaperPoint]> {
    Some(match task {
        "quadratic" => &QUADRATIC,
        "cubic" => &CUBIC,
        "mnist" => &MNIST,
        "cifar10" => &CIFAR10,
        "ptb" => &PTB,
        _ => return None,
    })
}
