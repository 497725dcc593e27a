//! `levelset`: train networks to a loss level and map the geometry of their level sets.
//!
//! This file is the command line alone: each subcommand parses its flags here and calls the
//! `levelset_experiments` library (its `commands`, `studies`, `output` and `bench` modules),
//! where the work is done. Every command is described in the book's usage page
//! (`docs/src/guide/usage.md`).

// The doc comments of the command line are clap's `--help` text, written for a terminal
// (`configs/<task>.toml`, `[a,b]`), not Markdown for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use levelset_experiments::commands::{
    connect, data, eval, export, graph, hessian, import, plane, reproduce, slurm, surface, train,
};
use levelset_experiments::config::load_config;
use levelset_experiments::output::{depth, progress};
use levelset_experiments::studies::{floor, shard, shards, sweep};
use levelset_experiments::{bench, pair};

// A training step allocates and frees tensors of megabytes (each of the MNIST convnet's
// first dense layer's weights, gradient and Adam moments is 12.8 MB). glibc hands blocks that
// big back to the kernel on every free, and re-faulting their pages slows training and
// evaluation; mimalloc keeps them (measured in experiments/bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "levelset", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version, compiled backend, device and thread count.
    Info,
    /// Train one network until its energy is at most LEVEL and save it as a checkpoint.
    Train {
        #[arg(long)]
        config: PathBuf,
        /// The level L0 to reach (in the config's energy units).
        #[arg(long, allow_negative_numbers = true)]
        level: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Checkpoint directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Overrides the config's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Replace a checkpoint already in --out (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Import weights trained elsewhere (a PyTorch state_dict saved as .safetensors) into the
    /// config's network and save them as a checkpoint; its sidecar records the file and its
    /// SHA-256.
    Import {
        #[arg(long)]
        config: PathBuf,
        /// The weights: a PyTorch state_dict saved with torch.save (.pt, .pth) or as
        /// .safetensors.
        #[arg(long)]
        from: PathBuf,
        /// In a .pt file holding a dictionary (a training checkpoint), the key of the
        /// state_dict; found by itself when the file's tensors all sit under `state_dict`,
        /// `model_state_dict` or `model`.
        #[arg(long)]
        key: Option<String>,
        /// Checkpoint directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Rename the file's tensors: OLD=NEW, a regex and its replacement (repeatable,
        /// applied in order), e.g. --map '^net\.=layers.'.
        #[arg(long)]
        map: Vec<String>,
        /// Overrides the config's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Replace a checkpoint already in --out (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Export a checkpoint as a PyTorch state_dict in a .safetensors file, under the names
    /// `import` reads: a checkpoint imported from PyTorch gets its file's own names back (and
    /// the same shapes, dtypes and bits); another net the names of its description (the
    /// paper's convnets their layers' names, a CIFAR ResNet `conv1`, `layer1.0.conv1`, ...,
    /// `linear`, other nets their nn.Sequential positions, `3.weight`, `3.body.0.weight`; a
    /// language model `embedding`, `lstm`, `output`). Linear weights are [out, in], an LSTM's
    /// gates packed as nn.LSTM packs them, and each BatchNorm has its `num_batches_tracked`
    /// (the imported file's count, else 0), so that `load_state_dict` accepts the file in
    /// strict mode. The file's metadata records levelset's version, the config's name and
    /// the checkpoint's energy. With --path, every point of a `connect` run (DSS or NEB: the
    /// endpoints and every bead) goes to --out/NNNN.safetensors, each with the running
    /// statistics [bn] gives it at its point, and --out/path.json lists them in path order:
    /// {"points": [{"file", "t", "energy"}]}, t in [0, 1] by length along the path (over all
    /// parameters), energy as the run's report measured it. A curve's (bezier, polychain)
    /// points are its samples, rebuilt from the points of control `connect` saves in
    /// RUN/bends (--points N resamples it); those go to --out/bends/NNNN.safetensors,
    /// listed in path.json's control_points with the energy connect measured at each.
    Export {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// The .safetensors file to write (atomically); with --path, the folder.
        #[arg(long)]
        out: PathBuf,
        /// Name the tensors as the PyTorch file this checkpoint was imported from names them
        /// (an endpoint of the path: its points then load into the module the endpoints came
        /// from); BatchNorm counters are 0.
        #[arg(long, value_name = "CHECKPOINT")]
        names_from: Option<PathBuf>,
        /// Rename the exported tensors: OLD=NEW, a regex and its replacement (repeatable,
        /// applied in order, after the names above), as import's --map, e.g.
        /// --names '^=net.'.
        #[arg(long)]
        names: Vec<String>,
        /// Overrides the config's data directory (export builds the config's network, and a
        /// language model's vocabulary comes from its data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// With --path of a curve (bezier, polychain): export its samples at N points evenly
        /// spaced in t (the endpoints included), their energies measured by export, instead
        /// of the report's samples. A curve's points of control always go to --out/bends/.
        #[arg(long, value_name = "N")]
        points: Option<usize>,
        /// Replace what --out holds (the file; with --path, path.json and the points' files);
        /// refused otherwise.
        #[arg(long)]
        force: bool,
    },
    /// Print the config's energy of a checkpoint as JSON, with what the checkpoint recorded;
    /// with --path, the energy at every point of a `connect` run (DSS or NEB), beside what its
    /// report measured, and with --ensemble the error of the ensemble of its points (the mean
    /// of their softmax outputs) beside each endpoint's and the endpoints' two-model ensemble.
    Eval {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// With --path: the errors of the ensembles, on the examples the energy is measured on
        /// (image classifiers only).
        #[arg(long, requires = "path")]
        ensemble: bool,
        /// Overrides the config's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The curvature at a checkpoint (or at every point of a connect run, --path): the
    /// largest eigenvalues of the Hessian of the config's training loss (without its weight
    /// penalty, dropout or augmentation) over the first --examples examples of --split, by
    /// Lanczos, and with --trace its trace (Hutchinson), from Hessian-vector products that are
    /// central differences of gradients holding the point's ReLU and max-pool pattern. Prints
    /// JSON.
    #[command(group(clap::ArgGroup::new("at").required(true).args(["checkpoint", "path"])))]
    Hessian {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// A finished `connect` run (DSS or NEB): every point of its path, into its
        /// hessian.json and hessian.{svg,png} (continued where an earlier measurement of the
        /// same settings stopped), the summary added to its report.json.
        #[arg(long)]
        path: Option<PathBuf>,
        /// The largest eigenvalues to report (default: a `[hessian]` section's, 1).
        #[arg(long)]
        top: Option<usize>,
        /// Lanczos iterations (default: 2 x top + 10).
        #[arg(long)]
        iterations: Option<usize>,
        /// Also estimate the trace.
        #[arg(long)]
        trace: bool,
        /// Rademacher probes of the trace's estimate (default: a `[hessian]` section's, 50).
        #[arg(long)]
        probes: Option<usize>,
        /// Default: a `[hessian]` section's, train.
        #[arg(long, value_enum)]
        split: Option<hessian::SplitName>,
        /// The first N examples of the split (default: a `[hessian]` section's, 500).
        #[arg(long)]
        examples: Option<usize>,
        /// Seeds the Lanczos start vector and the probes (default: a `[hessian]` section's, 0).
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overrides the config's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The energy and training loss on the plane through three models (Garipov et al.), or
    /// through a `connect` run's endpoints and its bead farthest from their straight line,
    /// the path projected onto it: plane.json, plane.csv and the contour figure
    /// plane.{svg,png}. Coordinates are distances in parameter space from --a.
    Plane(plane::PlaneCli),
    /// The energy and training loss around a checkpoint along Li et al.'s filter-normalized
    /// random directions: surface.json, surface.csv and a curve (--dims 1) or contour figure
    /// (--dims 2), surface.{svg,png}.
    Surface(surface::SurfaceCli),
    /// Connect two endpoints with Dynamic String Sampling and report the string's geometry.
    /// Without --a/--b both endpoints are first trained from seeds derived from --seed.
    Connect {
        #[arg(long)]
        config: PathBuf,
        /// Checkpoint directory of the first endpoint.
        #[arg(long, requires = "b")]
        a: Option<PathBuf>,
        /// Checkpoint directory of the second endpoint.
        #[arg(long, requires = "a")]
        b: Option<PathBuf>,
        /// The level L0 (default with checkpoints: the higher of their training levels).
        #[arg(long, allow_negative_numbers = true)]
        level: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Directory for report.json and the bead checkpoints.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The path method.
        #[arg(long, value_enum, default_value = "dss")]
        method: pair::MethodName,
        /// Finish a run in --out that stopped after computing its path (its bead
        /// checkpoints or report unwritten), without computing the path again.
        #[arg(long)]
        resume: bool,
        /// Weight-match the second endpoint's hidden units to the first's before connecting
        /// (MLPs, convnets, described and residual nets); writes align.json with the barriers
        /// before and after.
        #[arg(long)]
        align: bool,
        /// Measure the Hessian's top eigenvalue (and trace) at every point of the path, as the
        /// config's [hessian] says (`levelset hessian`'s defaults without one): hessian.json,
        /// hessian.{svg,png} and a summary in report.json.
        #[arg(long)]
        hessian: bool,
    },
    /// Many minima at one or more levels, one graph per level: every pair's straight line
    /// first, then path methods on the pairs that would most lower the barrier between two
    /// components, until each level is one component or every such pair has been tried.
    /// Writes graph.json (after every edge), its figures and prints components per level.
    Graph {
        #[arg(long, required_unless_present = "merge")]
        config: Option<PathBuf>,
        /// The level L0 (replaces graph.levels).
        #[arg(long, allow_negative_numbers = true, conflicts_with = "levels")]
        level: Option<f64>,
        /// Several levels, comma-separated: minima trained once, down to the lowest.
        #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
        levels: Option<Vec<f64>>,
        /// Minima to train (replaces graph.minima).
        #[arg(long)]
        minima: Option<usize>,
        /// Base seed of the minima (replaces graph.seed).
        #[arg(long)]
        seed: Option<u64>,
        /// The path method for pairs the straight line does not join (replaces graph.method).
        #[arg(long, value_enum)]
        method: Option<pair::MethodName>,
        /// Weight-match each pair's second minimum to its first (sets graph.align).
        #[arg(long)]
        align: bool,
        #[arg(long)]
        out: PathBuf,
        /// Continue the graph whose graph.json is in --out.
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run only shard K of N: level i of the list goes to shard i mod N (each shard trains
        /// the minima down to its own lowest level), into --out/shards/K-of-N; `graph --merge
        /// --out` joins the shards.
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
        /// Join the finished shards under --out/shards into --out/graph.json and its figures.
        #[arg(long, conflicts_with_all = ["config", "level", "levels", "minima", "seed", "method", "align", "resume", "shard", "data_dir"])]
        merge: bool,
    },
    /// Run the config's [sweep]: levels x pairs, each pair trained and connected; writes
    /// results.json, results.csv and summary.md.
    Sweep {
        #[arg(long, required_unless_present = "status")]
        config: Option<PathBuf>,
        #[arg(long, required_unless_present = "status")]
        out: Option<PathBuf>,
        /// Continue a sweep whose results.json is in --out, skipping finished pairs.
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run only shard K of N (the pairs p with p mod N = K) into --out/shards/K-of-N;
        /// `levelset merge --out` joins the shards.
        #[arg(long, value_name = "K/N")]
        shard: Option<shard::Shard>,
        /// List the shards under this sweep folder: done, running, failed or missing.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["config", "out", "shard", "resume"])]
        status: Option<PathBuf>,
    },
    /// Join the shards under --out/shards into --out/results.{json,csv} and summary.md, as one
    /// whole sweep writes them.
    Merge {
        #[arg(long)]
        out: PathBuf,
        /// Merge what is there, listing the missing shards and pairs in summary.md.
        #[arg(long)]
        partial: bool,
    },
    /// Write (and with --submit, submit) a Slurm job array running the sweep's shards, and a
    /// merge job that runs after them.
    Slurm(slurm::SlurmArgs),
    /// Time the paper's models on the compiled backend (training steps, energy evaluations,
    /// DSS segment checks, end-to-end DSS) as medians of repeats, and write them as JSON for
    /// experiments/bench/compare.py. A repeated option takes its last value, so scripts can
    /// append overrides to a user's arguments.
    #[command(args_override_self = true)]
    Bench(bench::BenchArgs),
    /// Obtain the real data sets (`data fetch`) and inspect a data directory (`data check`).
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Autotune every kernel shape a config's runs use (GPU backends), untimed; resumable.
    Warmup(bench::warmup::WarmupArgs),
    /// Measure how low the config's training gets: seeds 0..SEEDS each train STEPS steps with
    /// the config's optimizer; writes floor.json (the training curves and each seed's lowest
    /// energy), curves.csv and floor.md to --out. Resumes the seeds already done.
    Floor {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Steps per seed (default: the config's train.max_steps).
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        out: PathBuf,
        /// Overrides the config's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Draw sweeps towards their floors in one figure: length and beads against L0 / floor for
    /// each task, the paper's against L0 / its lowest level; writes length.{svg,png},
    /// beads.{svg,png} and depth.md to --out.
    Depth {
        /// TASK=SWEEP_DIR[,FLOOR_DIR] (TASK: a name for the legend; mnist, cifar10, ptb and the
        /// other Figure 1 tasks also draw the paper's line; FLOOR_DIR defaults to
        /// SWEEP_DIR/floor, written by `levelset floor`). Repeat for each task, up to 4.
        #[arg(long = "sweep", required = true)]
        sweeps: Vec<depth::DepthTask>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Reproduce a task of the paper: its sweep (resumed when interrupted) and figures, in
    /// experiments/<task>-quick/ (or experiments/<task>/ with --full).
    Reproduce {
        /// quadratic, cubic, mnist, cifar10, ptb, linear, symmetry, resnet20 (sweeps with
        /// figures; the curvature along every string when the config has a [hessian]), prop23,
        /// methods, methods-mnist and methods-resnet20 (every path method on the same
        /// quadratic, MNIST or ResNet-20 pairs, configs/methods[-mnist|-resnet20]-quick.toml),
        /// or width (ReLU nets of growing width).
        task: String,
        /// Paper-scale settings (configs/<task>.toml) instead of configs/<task>-quick.toml.
        #[arg(long)]
        full: bool,
        #[arg(long, default_value = "configs")]
        configs: PathBuf,
        /// Output directory (default experiments/<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// What `export` and `eval` read: one checkpoint, or every point of a path.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// A checkpoint directory.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// A `connect` output folder (its report.json and beads/): every point of its path.
    #[arg(long)]
    path: Option<PathBuf>,
}

impl TargetArgs {
    fn target(self) -> eval::Target {
        match (self.checkpoint, self.path) {
            (Some(checkpoint), _) => eval::Target::Checkpoint(checkpoint),
            (None, Some(run)) => eval::Target::Path(run),
            (None, None) => unreachable!("clap requires --checkpoint or --path"),
        }
    }
}

fn check_level(level: f64) -> Result<()> {
    if !(level.is_finite() && level > 0.0) {
        bail!("--level must be a positive number, got {level}");
    }
    Ok(())
}

/// x86-64 builds target x86-64-v3 (`.cargo/config.toml`): on a CPU without AVX2 and FMA the
/// first such instruction would end the process with SIGILL and no word of why. Kept out of
/// line, so that this check runs before any code compiled for those instructions.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline(never)]
fn require_cpu_features() {
    if !bench::has_avx2_and_fma() {
        eprintln!(
            "error: this levelset build needs a CPU with AVX2 and FMA (x86-64-v3); rebuild \
             without the target-cpu line of .cargo/config.toml for this one"
        );
        std::process::exit(1);
    }
}

fn main() -> Result<()> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    require_cpu_features();
    progress::init_logging();
    match Cli::parse().command {
        Command::Info => {
            println!("levelset {}", env!("CARGO_PKG_VERSION"));
            println!("backend: {}", levelset_models::backend::BACKEND_NAME);
            println!("device: {:?}", levelset_models::backend::device());
            println!(
                "threads: {} (rayon; set RAYON_NUM_THREADS to change)",
                rayon::current_num_threads()
            );
            // The CPU kernels' speed depends on its vector instructions (AVX-512 or not).
            let machine = bench::Machine::this();
            println!(
                "cpu: {} ({} cores, {})",
                machine.cpu, machine.cores, machine.simd
            );
        }
        Command::Train {
            config,
            level,
            seed,
            out,
            data_dir,
            force,
        } => {
            check_level(level)?;
            train::run(train::TrainArgs {
                config: load_config(&config, data_dir)?,
                level,
                seed,
                out,
                force,
            })?
        }
        Command::Import {
            config,
            from,
            key,
            out,
            map,
            data_dir,
            force,
        } => import::run(import::ImportArgs {
            config: load_config(&config, data_dir)?,
            from,
            key,
            out,
            map,
            force,
        })?,
        Command::Export {
            config,
            target,
            out,
            names_from,
            names,
            data_dir,
            points,
            force,
        } => export::run(export::ExportArgs {
            config: load_config(&config, data_dir)?,
            target: target.target(),
            out,
            names,
            names_from,
            points,
            force,
        })?,
        Command::Eval {
            config,
            target,
            ensemble,
            data_dir,
        } => {
            eval::run(eval::EvalArgs {
                config: load_config(&config, data_dir)?,
                target: target.target(),
                ensemble,
            })?;
        }
        Command::Hessian {
            config,
            checkpoint,
            path,
            top,
            iterations,
            trace,
            probes,
            split,
            examples,
            seed,
            out,
            data_dir,
        } => {
            let target = match (checkpoint, path) {
                (Some(dir), None) => hessian::HessianTarget::Checkpoint(dir),
                (None, Some(run)) => hessian::HessianTarget::Path(run),
                _ => unreachable!("clap takes exactly one of --checkpoint and --path"),
            };
            hessian::run(hessian::HessianArgs {
                config: load_config(&config, data_dir)?,
                target,
                // The flags are a `[hessian]` section: its defaults and checks.
                settings: {
                    let section = levelset_experiments::config::HessianSection::default();
                    levelset_experiments::config::HessianSection {
                        top: top.unwrap_or(section.top),
                        iterations,
                        trace,
                        probes: probes.unwrap_or(section.probes),
                        split: split.map_or(section.split, Into::into),
                        examples: examples.unwrap_or(section.examples),
                        seed: seed.unwrap_or(section.seed),
                    }
                    .settings()
                    .map_err(anyhow::Error::msg)?
                },
                out,
            })?;
        }
        Command::Plane(args) => {
            plane::run(args.into_args()?)?;
        }
        Command::Surface(args) => {
            surface::run(args.into_args()?)?;
        }
        Command::Connect {
            config,
            a,
            b,
            level,
            seed,
            out,
            data_dir,
            method,
            resume,
            align,
            hessian,
        } => {
            if let Some(level) = level {
                check_level(level)?;
            }
            let config = load_config(&config, data_dir)?;
            let hessian = hessian
                .then(|| config.hessian.clone().unwrap_or_default().settings())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            connect::run(connect::ConnectArgs {
                config,
                endpoints: a.zip(b),
                level,
                seed,
                out,
                method,
                align,
                resume,
                hessian,
            })?
        }
        Command::Graph {
            config,
            level,
            levels,
            minima,
            seed,
            method,
            align,
            out,
            resume,
            data_dir,
            shard,
            merge,
        } => {
            let Some(config) = config.filter(|_| !merge) else {
                graph::merge(&out)?;
                return Ok(());
            };
            let levels = level.map(|l| vec![l]).or(levels);
            for &level in levels.iter().flatten() {
                check_level(level)?;
            }
            let flags = graph::GraphFlags {
                levels,
                minima,
                method,
                align,
                seed,
            };
            graph::run(load_config(&config, data_dir)?, flags, out, resume, shard)?;
        }
        Command::Sweep {
            config,
            out,
            resume,
            data_dir,
            shard,
            status,
        } => match (status, config, out) {
            (Some(dir), _, _) => println!("{}", shards::status(&dir)?),
            (None, Some(config), Some(out)) => {
                sweep::run(sweep::SweepArgs {
                    config: load_config(&config, data_dir)?,
                    out,
                    resume,
                    shard,
                })?;
            }
            _ => bail!("sweep needs --config and --out (or --status DIR)"),
        },
        Command::Merge { out, partial } => {
            let results = shards::merge(&out, partial)?;
            println!(
                "merged {} rows into {}",
                results.rows.len(),
                out.join("results.json").display()
            );
        }
        Command::Slurm(args) => slurm::run(args)?,
        Command::Bench(args) => {
            bench::run(args)?;
        }
        Command::Warmup(args) => bench::warmup::run(args)?,
        Command::Depth { sweeps, out } => {
            let _lock = levelset_models::outdir::OutputLock::acquire(&out)?;
            println!("{}", depth::run(&sweeps, &out)?);
        }
        Command::Floor {
            config,
            seeds,
            steps,
            out,
            data_dir,
        } => {
            let config = load_config(&config, data_dir)?;
            floor::run(floor::FloorArgs {
                steps: steps.unwrap_or(config.train.max_steps),
                config,
                seeds,
                out,
            })?;
        }
        Command::Data { command } => data::run(command)?,
        Command::Reproduce {
            task,
            full,
            configs,
            out,
            data_dir,
        } => reproduce::run(reproduce::ReproduceArgs {
            task,
            full,
            configs,
            out,
            data_dir,
        })?,
    }
    Ok(())
}
