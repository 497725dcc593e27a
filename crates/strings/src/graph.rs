//! Many minima, one graph: which of them a level set joins, and in which order to connect
//! them so that few path methods run (the paper's title question over more than two models).
//!
//! The nodes are minima; an edge is what is known of a path between two of them: the straight
//! line's highest energy (measured for every pair first, cheaply) and, for the pairs a path
//! method was run on, that path's highest energy and verdict. Everything else is derived:
//!
//! - the *best known barrier* of a pair is the lowest highest-energy of the paths found
//!   between its two minima directly (the line, a method's path);
//! - the *components at the level* join the pairs whose line stays within the level, and the
//!   pairs a method connected (its own certificate, which allows the method's slack);
//! - the *minimum spanning tree* of the best known barriers gives the minimax barrier of every
//!   pair through the graph: the lowest level at which the paths known so far join them (an
//!   upper bound on the true merge level), and the merges of a disconnectivity graph.
//!
//! [`MinimaGraph::next_pair`] is the order AutoNEB's users know (Draxler et al. 2018): among
//! the pairs not yet tried whose minima lie in different components, the connection that would
//! most lower the minimax barrier between two components, i.e. a pair of the two components
//! the graph now joins highest; of those, the pair with the lowest barrier known (most likely
//! to connect). A pair already joined through the graph within the level is never connected
//! directly. The choice depends only on what is known, not on the order it became known, so
//! a graph resumed from its recorded edges continues exactly as the uninterrupted run.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use levelset_models::Landscape;
use petgraph::algo::min_spanning_tree;
use petgraph::data::Element;
use petgraph::graph::UnGraph;
use petgraph::unionfind::UnionFind;
use serde::{Deserialize, Serialize};

use crate::evaluator::Evaluator;
use crate::path::{Outcome, PathReport, Status};

/// One tried connection between minima `a < b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub a: usize,
    pub b: usize,
    /// The path method that ran.
    pub method: String,
    pub outcome: Outcome,
    /// Why the pair is not connected or failed; empty when connected.
    pub reason: String,
    /// Highest energy on the straight line (the endpoints included).
    #[serde(with = "crate::json_float")]
    pub linear_barrier: f64,
    /// Highest energy of the path found (beads and checked segment points); none when the
    /// method failed before it had a path.
    #[serde(with = "crate::json_float::option")]
    pub path_max: Option<f64>,
    pub normalized_length: Option<f64>,
    pub beads: Option<usize>,
    pub wall_seconds: f64,
}

impl GraphEdge {
    /// The edge of pair `(a, b)` from what a path method returned (its report, or why it
    /// could not run), with the pair's straight-line barrier.
    pub fn from_result(
        (a, b): (usize, usize),
        method: &str,
        linear_barrier: f64,
        result: Result<PathReport, String>,
        wall_seconds: f64,
    ) -> Self {
        let mut edge = GraphEdge {
            a,
            b,
            method: method.to_string(),
            outcome: Outcome::Failed,
            reason: String::new(),
            linear_barrier,
            path_max: None,
            normalized_length: None,
            beads: None,
            wall_seconds,
        };
        match result {
            Ok(report) => {
                edge.outcome = report.status.outcome();
                edge.reason = match report.status {
                    Status::Connected => String::new(),
                    Status::NotConnected { reason, .. } | Status::Failed { reason } => reason,
                };
                edge.path_max = Some(report.max_energy);
                edge.normalized_length = Some(report.normalized_length);
                edge.beads = Some(report.beads);
            }
            Err(reason) => edge.reason = reason,
        }
        edge
    }

    /// The lowest highest-energy of the paths this edge knows between its minima.
    pub fn barrier(&self) -> f64 {
        self.path_max
            .map_or(self.linear_barrier, |p| p.min(self.linear_barrier))
    }
}

/// An edge of the minimum spanning tree of best known barriers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEdge {
    pub a: usize,
    pub b: usize,
    /// The best known barrier of the pair: the level at which the tree joins the two sides.
    #[serde(with = "crate::json_float")]
    pub barrier: f64,
}

/// Two groups of minima joined at `barrier` (a node of the disconnectivity graph).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merge {
    #[serde(with = "crate::json_float")]
    pub barrier: f64,
    pub left: Vec<usize>,
    pub right: Vec<usize>,
}

/// What is known about the minima at one level.
#[derive(Debug, Clone, PartialEq)]
pub struct MinimaGraph {
    pub level: f64,
    /// The minima's energies.
    pub energies: Vec<f64>,
    /// The straight line's highest energy for every pair `a < b`, endpoints included, in
    /// the order of [`pairs`].
    pub lines: Vec<f64>,
    /// The tried edges, in the order they were recorded.
    edges: Vec<GraphEdge>,
    /// Each pair's position in `edges` (pairs in the order of [`pairs`]), so that the
    /// comparisons of [`MinimaGraph::next_pair`] look an edge up in constant time.
    edge_at: Vec<Option<usize>>,
}

/// Every pair `(a, b)` with `a < b < n`, in the order graphs store per-pair values.
pub fn pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |a| (a + 1..n).map(move |b| (a, b)))
}

fn pair_index(n: usize, a: usize, b: usize) -> usize {
    let (a, b) = (a.min(b), a.max(b));
    // Pairs before row `a`: (n-1) + (n-2) + ... + (n-a).
    a * (2 * n - a - 1) / 2 + (b - a - 1)
}

impl MinimaGraph {
    /// A graph with its straight lines measured and no edge tried. `lines` holds one barrier
    /// per pair of [`pairs`]`(energies.len())`.
    pub fn new(level: f64, energies: Vec<f64>, lines: Vec<f64>) -> Result<Self, String> {
        let n = energies.len();
        if n < 2 {
            return Err(format!("a graph needs at least 2 minima, got {n}"));
        }
        let expected = n * (n - 1) / 2;
        if lines.len() != expected {
            return Err(format!(
                "{n} minima have {expected} pairs, but {} straight-line barriers were given",
                lines.len()
            ));
        }
        Ok(MinimaGraph {
            level,
            energies,
            lines,
            edges: Vec::new(),
            edge_at: vec![None; expected],
        })
    }

    pub fn minima(&self) -> usize {
        self.energies.len()
    }

    /// The straight line's barrier between `a` and `b`.
    pub fn line(&self, a: usize, b: usize) -> f64 {
        self.lines[pair_index(self.minima(), a, b)]
    }

    /// The recorded edge of a pair, if it was tried.
    pub fn edge(&self, a: usize, b: usize) -> Option<&GraphEdge> {
        self.edge_at[pair_index(self.minima(), a, b)].map(|i| &self.edges[i])
    }

    /// The tried edges, in the order they were recorded.
    pub fn edges(&self) -> &[GraphEdge] {
        &self.edges
    }

    /// Adds a tried edge, refusing one that is not a pair of this graph or was tried before
    /// (a recorded graph read back is checked with it).
    pub fn record(&mut self, edge: GraphEdge) -> Result<(), String> {
        let n = self.minima();
        if edge.a >= edge.b || edge.b >= n {
            return Err(format!(
                "edge ({}, {}) is not a pair a < b of {n} minima",
                edge.a, edge.b
            ));
        }
        let at = pair_index(n, edge.a, edge.b);
        if self.edge_at[at].is_some() {
            return Err(format!("edge ({}, {}) is recorded twice", edge.a, edge.b));
        }
        self.edge_at[at] = Some(self.edges.len());
        self.edges.push(edge);
        Ok(())
    }

    /// The lowest highest-energy of the paths known directly between `a` and `b`.
    pub fn barrier(&self, a: usize, b: usize) -> f64 {
        let line = self.line(a, b);
        self.edge(a, b).map_or(line, |e| e.barrier().min(line))
    }

    /// Whether the pair is joined within the level without going through other minima: its
    /// straight line stays within it, or a method connected it.
    pub fn joined(&self, a: usize, b: usize) -> bool {
        self.line(a, b) <= self.level
            || self
                .edge(a, b)
                .is_some_and(|e| e.outcome == Outcome::Connected)
    }

    /// The components at the level: minima joined through pairs that are
    /// [`MinimaGraph::joined`], each sorted, ordered by their first minimum.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let n = self.minima();
        let mut sets = UnionFind::<usize>::new(n);
        for (a, b) in pairs(n) {
            if self.joined(a, b) {
                sets.union(a, b);
            }
        }
        group(n, &sets)
    }

    /// The minimum spanning tree of the best known barriers (Kruskal's, ties in pair order),
    /// its edges in increasing barrier.
    pub fn spanning_tree(&self) -> Vec<TreeEdge> {
        let n = self.minima();
        let mut graph = UnGraph::<usize, f64>::with_capacity(n, n * (n - 1) / 2);
        let nodes: Vec<_> = (0..n).map(|i| graph.add_node(i)).collect();
        for (a, b) in pairs(n) {
            // A NaN barrier is no path at all: it sorts above every finite one.
            let barrier = self.barrier(a, b);
            let weight = if barrier.is_nan() {
                f64::INFINITY
            } else {
                barrier
            };
            graph.add_edge(nodes[a], nodes[b], weight);
        }
        let mut tree: Vec<TreeEdge> = min_spanning_tree(&graph)
            .filter_map(|element| match element {
                Element::Edge {
                    source,
                    target,
                    weight,
                } => Some(TreeEdge {
                    a: source.min(target),
                    b: source.max(target),
                    barrier: weight,
                }),
                Element::Node { .. } => None,
            })
            .collect();
        tree.sort_by(|x, y| {
            x.barrier
                .total_cmp(&y.barrier)
                .then((x.a, x.b).cmp(&(y.a, y.b)))
        });
        tree
    }

    /// The merges of the disconnectivity graph: the spanning tree's edges in increasing
    /// barrier, each joining the two groups of minima it connects.
    pub fn merges(&self) -> Vec<Merge> {
        merges_of(self.minima(), &self.spanning_tree())
    }

    /// The minimax barrier of every pair through the spanning tree, `[a][b]`: the lowest
    /// level at which the known paths join them (0 on the diagonal).
    pub fn minimax(&self) -> Vec<Vec<f64>> {
        minimax_of(self.minima(), &self.merges())
    }

    /// The pair to connect next, or `None` when the graph is one component at the level or
    /// every pair between two components has been tried (see the module's rule).
    pub fn next_pair(&self) -> Option<(usize, usize)> {
        self.derive().next_pair
    }

    /// Everything derived from what is known, each computed once: what a run records after
    /// every edge.
    pub fn derive(&self) -> Derived {
        let n = self.minima();
        let components = self.components();
        let spanning_tree = self.spanning_tree();
        let merges = merges_of(n, &spanning_tree);
        let mut component = vec![0; n];
        for (c, members) in components.iter().enumerate() {
            for &m in members {
                component[m] = c;
            }
        }
        let minimax = minimax_of(n, &merges);
        let next_pair = pairs(n)
            .filter(|&(a, b)| component[a] != component[b] && self.edge(a, b).is_none())
            .min_by(|&(a, b), &(c, d)| {
                // Highest minimax first, then lowest own barrier, then pair order.
                minimax[c][d]
                    .total_cmp(&minimax[a][b])
                    .then(self.barrier(a, b).total_cmp(&self.barrier(c, d)))
                    .then((a, b).cmp(&(c, d)))
            });
        Derived {
            components,
            spanning_tree,
            merges,
            next_pair,
        }
    }
}

/// What [`MinimaGraph::derive`] computes from a graph's lines and edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// [`MinimaGraph::components`].
    pub components: Vec<Vec<usize>>,
    /// [`MinimaGraph::spanning_tree`].
    pub spanning_tree: Vec<TreeEdge>,
    /// [`MinimaGraph::merges`].
    pub merges: Vec<Merge>,
    /// [`MinimaGraph::next_pair`].
    pub next_pair: Option<(usize, usize)>,
}

/// The merges that the spanning `tree` of `n` minima makes, in its order.
fn merges_of(n: usize, tree: &[TreeEdge]) -> Vec<Merge> {
    let mut groups: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut owner: Vec<usize> = (0..n).collect();
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    for edge in tree {
        let (ga, gb) = (owner[edge.a], owner[edge.b]);
        let (left, right) = (groups[ga].clone(), std::mem::take(&mut groups[gb]));
        for &m in &right {
            owner[m] = ga;
        }
        groups[ga].extend(&right);
        groups[ga].sort_unstable();
        merges.push(Merge {
            barrier: edge.barrier,
            left,
            right,
        });
    }
    merges
}

/// The minimax barrier of every pair of `n` minima that `merges` give, `[a][b]`.
fn minimax_of(n: usize, merges: &[Merge]) -> Vec<Vec<f64>> {
    let mut joined = vec![vec![0.0; n]; n];
    for merge in merges {
        for &l in &merge.left {
            for &r in &merge.right {
                joined[l][r] = merge.barrier;
                joined[r][l] = merge.barrier;
            }
        }
    }
    joined
}

/// The straight line's highest energy between `a` and `b`, whose energies are `ends`:
/// checked on `grid` points in one batched evaluation where the landscape's stacked pass
/// pays. The landscape learns the pair's endpoints first, as a path method's would.
pub fn line_barrier<B: AutodiffBackend, L: Landscape<B>>(
    evaluator: &Evaluator<'_, B, L>,
    a: &Tensor<B::InnerBackend, 1>,
    b: &Tensor<B::InnerBackend, 1>,
    ends: [f64; 2],
    grid: usize,
) -> f64 {
    evaluator.landscape.set_endpoints(a, b);
    evaluator
        .segment(a, b, grid)
        .into_iter()
        .map(|(_, e)| e)
        .chain(ends)
        // NaN is no path: the worst energy.
        .map(|e| if e.is_nan() { f64::INFINITY } else { e })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The sets of a union-find over `0..n`, each sorted, ordered by their first member.
fn group(n: usize, sets: &UnionFind<usize>) -> Vec<Vec<usize>> {
    let mut by_root: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        by_root[sets.find(i)].push(i);
    }
    let mut groups: Vec<Vec<usize>> = by_root.into_iter().filter(|g| !g.is_empty()).collect();
    groups.sort_by_key(|g| g[0]);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(a: usize, b: usize, line: f64, path_max: f64, connected: bool) -> GraphEdge {
        GraphEdge {
            a,
            b,
            method: "dss".into(),
            outcome: if connected {
                Outcome::Connected
            } else {
                Outcome::NotConnected
            },
            reason: String::new(),
            linear_barrier: line,
            path_max: Some(path_max),
            normalized_length: Some(1.0),
            beads: Some(1),
            wall_seconds: 0.0,
        }
    }

    #[test]
    fn pair_indices_follow_the_pair_order() {
        for n in 2..7 {
            for (k, (a, b)) in pairs(n).enumerate() {
                assert_eq!(pair_index(n, a, b), k);
                assert_eq!(pair_index(n, b, a), k);
            }
        }
    }

    /// Four minima: 0-1 and 2-3 joined by their lines at 0.3; every line between the two
    /// groups at 2.0 or above, the lowest 0-2.
    fn two_wells() -> MinimaGraph {
        let lines = vec![0.3, 2.0, 2.5, 2.6, 2.2, 0.3];
        MinimaGraph::new(1.0, vec![0.1; 4], lines).unwrap()
    }

    #[test]
    fn lines_within_the_level_join_components_and_the_tree_gives_merge_levels() {
        let graph = two_wells();
        assert_eq!(graph.components(), vec![vec![0, 1], vec![2, 3]]);
        let tree = graph.spanning_tree();
        let barriers: Vec<f64> = tree.iter().map(|e| e.barrier).collect();
        assert_eq!(barriers, vec![0.3, 0.3, 2.0]);
        assert_eq!((tree[2].a, tree[2].b), (0, 2));
        let minimax = graph.minimax();
        assert_eq!(minimax[1][3], 2.0);
        assert_eq!(minimax[0][1], 0.3);
        let merges = graph.merges();
        assert_eq!(merges[2].barrier, 2.0);
        let mut all: Vec<usize> = merges[2]
            .left
            .iter()
            .chain(&merges[2].right)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_next_pair_bridges_components_with_the_lowest_barrier_and_stops_when_joined() {
        let mut graph = two_wells();
        // Every cross pair has minimax 2.0; the lowest own barrier is 0-2's line.
        assert_eq!(graph.next_pair(), Some((0, 2)));
        graph.record(edge(0, 2, 2.0, 1.5, false)).unwrap();
        // The failed path lowers 0-2's barrier to 1.5, and so the minimax of every cross
        // pair; the untried cross pair with the lowest line is next.
        assert_eq!(graph.minimax()[1][3], 1.5);
        assert_eq!(graph.next_pair(), Some((1, 3)));
        graph.record(edge(1, 3, 2.2, 0.9, true)).unwrap();
        assert_eq!(graph.components(), vec![vec![0, 1, 2, 3]]);
        assert_eq!(graph.next_pair(), None);
        assert_eq!(graph.minimax()[0][2], 0.9);
    }

    #[test]
    fn the_highest_joined_components_are_bridged_first_and_trying_ends() {
        // Three isolated minima at level 1: 0-1 joined by the known paths at 3, 2 at 5.
        let mut graph = MinimaGraph::new(1.0, vec![0.0; 3], vec![3.0, 5.0, 6.0]).unwrap();
        assert_eq!(graph.components().len(), 3);
        assert_eq!(graph.next_pair(), Some((0, 2)));
        graph.record(edge(0, 2, 5.0, 4.0, false)).unwrap();
        // Now 2 joins at 4 through 0-2; 0-1 at 3: the untried pair reaching 2 goes first.
        assert_eq!(graph.next_pair(), Some((1, 2)));
        graph.record(edge(1, 2, 6.0, 6.0, false)).unwrap();
        assert_eq!(graph.next_pair(), Some((0, 1)));
        graph.record(edge(0, 1, 3.0, 2.0, false)).unwrap();
        assert_eq!(graph.next_pair(), None, "every pair tried");
        assert_eq!(graph.components().len(), 3);
    }

    #[test]
    fn the_choice_depends_on_what_is_known_not_its_order() {
        let mut one = two_wells();
        let mut two = two_wells();
        let edges = [edge(0, 2, 2.0, 1.5, false), edge(1, 2, 2.6, 1.2, false)];
        for e in &edges {
            one.record(e.clone()).unwrap();
        }
        for e in edges.iter().rev() {
            two.record(e.clone()).unwrap();
        }
        assert_eq!(one.next_pair(), two.next_pair());
        assert_eq!(one.spanning_tree(), two.spanning_tree());
    }

    #[test]
    fn bad_records_and_sizes_are_refused() {
        let mut graph = two_wells();
        assert!(graph.record(edge(2, 1, 1.0, 1.0, true)).is_err());
        assert!(graph.record(edge(1, 4, 1.0, 1.0, true)).is_err());
        graph.record(edge(0, 2, 2.0, 1.5, false)).unwrap();
        let twice = graph.record(edge(0, 2, 2.0, 1.5, false)).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
        assert!(MinimaGraph::new(1.0, vec![0.0], vec![]).is_err());
        assert!(MinimaGraph::new(1.0, vec![0.0; 3], vec![1.0]).is_err());
    }
}
