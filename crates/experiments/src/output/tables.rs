//! What every study's tables share: the mean and standard error over pairs, how a value or a
//! mean ± standard error is printed, and the one writer of a study's results.json,
//! results.csv and summary.md.

use std::path::Path;

use anyhow::{Context, Result};
use levelset_models::atomic::write_atomic;
use serde::Serialize;

/// The mean of `values` and its standard error (the sample standard deviation over
/// sqrt(n)); no mean without values, no error from fewer than two.
pub fn mean_se(values: &[f64]) -> (Option<f64>, Option<f64>) {
    let n = values.len();
    if n == 0 {
        return (None, None);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let se = (n > 1).then(|| {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    });
    (Some(mean), se)
}

/// The mean of `values`, none without values.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.into_iter().collect();
    mean_se(&values).0
}

/// `value` with `digits` decimals, "–" when absent.
pub fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

/// `mean ± se` with `digits` decimals; the mean alone without an error, "–" without a mean.
pub fn plus_minus(mean: Option<f64>, se: Option<f64>, digits: usize) -> String {
    match (mean, se) {
        (Some(m), Some(se)) => format!("{m:.digits$} ± {se:.digits$}"),
        (m, _) => number(m, digits),
    }
}

/// Writes `rows` to `path` as CSV (a header from their fields), atomically.
pub fn write_csv<R: Serialize>(path: &Path, rows: &[R]) -> Result<()> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    for row in rows {
        csv.serialize(row)?;
    }
    write_atomic(path, &csv.into_inner()?).with_context(|| format!("writing {}", path.display()))
}

/// Writes a study's `results` as `out/results.json`, its `rows` as `out/results.csv` and
/// `summary` as `out/summary.md`, each atomically.
pub fn write_study<R: Serialize>(
    out: &Path,
    results: &(impl Serialize + ?Sized),
    rows: &[R],
    summary: &str,
) -> Result<()> {
    let json = out.join("results.json");
    write_atomic(&json, &serde_json::to_vec_pretty(results)?)
        .with_context(|| format!("writing {}", json.display()))?;
    write_csv(&out.join("results.csv"), rows)?;
    let md = out.join("summary.md");
    write_atomic(&md, summary.as_bytes()).with_context(|| format!("writing {}", md.display()))
}
