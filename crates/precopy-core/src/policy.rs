//! Transfer policies behind one trait: each round a policy orders the files to send and, after it,
//! decides whether pre-copy is over. The engine ([`crate::sim`]) does the sending.
//!
//! | name | rounds | order | end |
//! |---|---|---|---|
//! | `proposed` | periods | RO first, then ascending p̂ × size | β test |
//! | `baseline` | iterations | path order, skip re-dirtied | 10 iterations |
//! | `qemu` | iterations | path order | dirty bytes fit the downtime limit |
//! | `clairvoyant` | periods | files not written again before its stop | its stop time |
//! | `p-only`, `size-only`, `random` | periods | ablations of the proposed order | β test |
//! | `sweep` (ours) | periods | proposed order | β test, or one final sweep once all left fits |
//! | `converge` (ours) | periods | proposed order | final copy fits the downtime limit, or passes of U bytes stop cutting U |

mod clairvoyant;
mod converge;
mod expectation;
mod iterative;
mod sweep;

use alloc::boxed::Box;
use alloc::vec::Vec;

pub use clairvoyant::Clairvoyant;
pub use converge::Converge;
pub use expectation::{BetaTest, ExpectationPolicy, OrderKey};
pub use iterative::Iterative;
pub use sweep::Sweep;

use crate::dataset::Kind;
use crate::delta::Delta;
use crate::metrics::{EndReason, Phase, Planned, RoundReport};
use crate::monitor::Estimator;
use crate::pending::Pending;
use crate::workload::WriteClock;

/// Whether a file's copy at the destination is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Status {
    /// Never sent.
    Unsent,
    /// Its transfer started and no write hit it since (it may still be on the wire).
    Clean,
    /// Written after its last transfer started: must be sent again.
    Dirty,
}

impl Status {
    /// Unsent or dirty: it still has to go.
    pub fn needs_send(self) -> bool {
        self != Status::Clean
    }
}

/// What the sender knows about one file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileView {
    /// Size in bytes.
    pub size: u64,
    /// ReadOnly or ReadWrite.
    pub kind: Kind,
    /// Current status.
    pub status: Status,
    /// Transfers started so far.
    pub sends: u32,
}

impl FileView {
    /// A file not sent yet.
    pub fn unsent(size: u64, kind: Kind) -> FileView {
        FileView {
            size,
            kind,
            status: Status::Unsent,
            sends: 0,
        }
    }
}

/// Whether a policy's rounds are monitoring periods or self-timed iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounds {
    /// A round lasts one monitoring period; transfers start only within it.
    Periods,
    /// A round sends its whole plan, however long that takes.
    Iterations,
}

/// Everything a policy may look at: the sender's state and the monitor's counts.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Current simulated time, seconds.
    pub now: f64,
    /// The round about to be planned, or just ended.
    pub round: u32,
    /// Monitoring period, seconds.
    pub period: f64,
    /// When the link finishes its current transfer (≥ `now` if busy).
    pub link_free_at: f64,
    /// Files, by id.
    pub files: &'a [FileView],
    /// Writes per file in the last round (a monitoring period for period-based policies).
    pub counts: &'a [u32],
    /// U: bytes not cleanly at the destination.
    pub unsent_bytes: u64,
    /// What sending all of them would put on the link: U, or less under delta.
    pub unsent_cost: u64,
    /// Dirty blocks per file, under delta.
    pub(crate) delta: Option<&'a Delta>,
    /// The files that still have to go.
    pub(crate) pending: &'a Pending,
    /// The files whose count is not 0 (each at least once).
    pub(crate) written: &'a [u32],
    pub(crate) link: Link,
    pub(crate) future: Option<&'a WriteClock>,
}

impl View<'_> {
    /// Seconds the link needs for one file of `size` bytes.
    pub fn transfer_time(&self, size: u64) -> f64 {
        self.link.transfer_time(size)
    }

    /// How many files, none smaller than `smallest` bytes, could still start in this period:
    /// a plan need not be longer.
    pub fn period_capacity(&self, smallest: u64) -> usize {
        let free_from = self.link_free_at.max(self.now);
        let remaining = (self.now + self.period - free_from).max(0.0);
        let per_file = self.transfer_time(smallest.max(1));
        // +1: a file may start just before the period ends.
        (libm::floor(remaining / per_file) as usize).saturating_add(1)
    }

    /// Bytes a send of `file` would put on the link now (see [`crate::engine::Engine::send_cost`]).
    pub fn send_cost(&self, file: u32) -> u64 {
        let view = &self.files[file as usize];
        match self.delta {
            Some(delta) if view.sends > 0 => {
                delta.files[file as usize].cost(view.size, delta.block)
            }
            _ => view.size,
        }
    }

    /// Link rate in bits per second.
    pub fn bandwidth_bps(&self) -> f64 {
        self.link.bandwidth_bps
    }

    /// The last write to `file` before `until`: only given to clairvoyant policies.
    pub fn future_last_write(&self, file: u32, until: f64) -> Option<Option<f64>> {
        self.future.map(|c| c.stream(file).last_before(until))
    }
}

/// The link: a rate and a fixed per-file cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Link {
    pub(crate) bandwidth_bps: f64,
    pub(crate) overhead_s: f64,
}

impl Link {
    pub(crate) fn transfer_time(&self, size: u64) -> f64 {
        size as f64 * 8.0 / self.bandwidth_bps + self.overhead_s
    }

    /// Seconds for `files` files totalling `bytes`, back to back.
    pub(crate) fn bulk_time(&self, bytes: u64, files: usize) -> f64 {
        bytes as f64 * 8.0 / self.bandwidth_bps + files as f64 * self.overhead_s
    }
}

/// A round's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The stage this round belongs to.
    pub phase: Phase,
    /// Files to send, in order, with their keys.
    pub order: Vec<Planned>,
    /// Skip a planned file that was written during this round before its turn (Xen's rule).
    pub skip_redirtied: bool,
    /// End the round (and, if the policy says so, pre-copy) as soon as the plan is sent, instead
    /// of at the period's end.
    pub end_when_sent: bool,
}

/// A transfer policy.
pub trait Policy {
    /// The policy's name.
    fn name(&self) -> &'static str;
    /// Periods or iterations.
    fn rounds(&self) -> Rounds;
    /// Whether it may look at future writes (only the clairvoyant reference).
    fn clairvoyant(&self) -> bool {
        false
    }
    /// Whether pre-copy may end only once the link is idle (else a transfer still on the wire at
    /// the stop finishes first and its time counts as downtime).
    fn waits_for_the_wire(&self) -> bool {
        false
    }
    /// Orders the files for the next round. `view.counts` are the last round's writes.
    fn plan(&mut self, view: &View<'_>) -> Plan;
    /// After a round: `view.counts` are that round's writes. `Some` ends pre-copy.
    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason>;
}

/// The policies this crate offers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum PolicyKind {
    /// The paper's method.
    Proposed,
    /// Xen-style iterative pre-copy (the paper's "existing method").
    Baseline,
    /// QEMU-style convergence on a downtime limit.
    Qemu,
    /// Knows the future writes: a reference.
    Clairvoyant,
    /// Ablation: order by p̂ only.
    #[cfg_attr(feature = "serde", serde(rename = "p-only"))]
    ProbabilityOnly,
    /// Ablation: order by size only.
    SizeOnly,
    /// Ablation: random order.
    Random,
    /// Ours: the proposed policy, ended by one sweep as soon as everything left fits a period.
    Sweep,
    /// Ours: the proposed order, ended by a downtime target or by progress over bytes sent.
    Converge,
}

impl PolicyKind {
    /// Every policy, in display order.
    pub const ALL: [PolicyKind; 9] = [
        PolicyKind::Baseline,
        PolicyKind::Proposed,
        PolicyKind::Sweep,
        PolicyKind::Converge,
        PolicyKind::Qemu,
        PolicyKind::Clairvoyant,
        PolicyKind::ProbabilityOnly,
        PolicyKind::SizeOnly,
        PolicyKind::Random,
    ];

    /// The name used on the command line and in URLs.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Proposed => "proposed",
            PolicyKind::Baseline => "baseline",
            PolicyKind::Qemu => "qemu",
            PolicyKind::Clairvoyant => "clairvoyant",
            PolicyKind::ProbabilityOnly => "p-only",
            PolicyKind::SizeOnly => "size-only",
            PolicyKind::Random => "random",
            PolicyKind::Sweep => "sweep",
            PolicyKind::Converge => "converge",
        }
    }

    /// A one-line description for help texts and legends.
    pub fn describe(self) -> &'static str {
        match self {
            PolicyKind::Proposed => {
                "paper: RO first, then ascending update expectation, β end test"
            }
            PolicyKind::Baseline => "Xen-style: path order, skip re-dirtied, 10 iterations",
            PolicyKind::Qemu => "QEMU-style: iterate until dirty bytes fit the downtime limit",
            PolicyKind::Clairvoyant => "reference that knows future writes",
            PolicyKind::ProbabilityOnly => "ablation: ascending p̂ only",
            PolicyKind::SizeOnly => "ablation: ascending size only",
            PolicyKind::Random => "ablation: random order",
            PolicyKind::Sweep => {
                "ours: proposed, then sweeps of all that is left once it fits a period"
            }
            PolicyKind::Converge => {
                "ours: proposed order; stop when the final copy fits the downtime limit or U stops shrinking per U bytes sent"
            }
        }
    }

    /// Parses a policy name.
    pub fn from_name(name: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Every tunable parameter of every policy. Each policy reads the ones it uses.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct PolicyParams {
    /// β: U values kept by the end test (even, ≥ 2).
    pub beta: u32,
    /// The β test accepts a ratio within [1 − tolerance, 1 + tolerance] (paper: 0.01).
    pub tolerance: f64,
    /// How p̂ is estimated.
    pub estimator: Estimator,
    /// Baseline iterations (paper: 10).
    pub baseline_iterations: u32,
    /// Downtime limit, seconds, of the QEMU-style and converge policies (QEMU's default: 0.3).
    pub downtime_limit_s: f64,
    /// QEMU-style iteration cap.
    pub qemu_max_iterations: u32,
    /// Converge: passes in a row that do not cut U by 10 % before it stops (≥ 1).
    pub stall_passes: u32,
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams {
            beta: 10,
            tolerance: 0.01,
            estimator: Estimator::Share,
            baseline_iterations: 10,
            downtime_limit_s: 0.3,
            qemu_max_iterations: 30,
            stall_passes: 1,
        }
    }
}

/// Builds a policy. `files` is the data-set size; `seed` feeds the random ablation.
pub fn build(kind: PolicyKind, params: &PolicyParams, files: usize, seed: u64) -> Box<dyn Policy> {
    let beta = BetaTest::new(params.beta, params.tolerance);
    let order_key = match kind {
        PolicyKind::Proposed => Some(OrderKey::Expectation),
        PolicyKind::ProbabilityOnly => Some(OrderKey::Probability),
        PolicyKind::SizeOnly => Some(OrderKey::Size),
        PolicyKind::Random => Some(OrderKey::Random),
        _ => None,
    };
    if let Some(key) = order_key {
        return Box::new(ExpectationPolicy::new(
            key,
            params.estimator,
            beta,
            files,
            seed,
        ));
    }
    match kind {
        PolicyKind::Baseline => Box::new(Iterative::xen(params.baseline_iterations)),
        PolicyKind::Qemu => Box::new(Iterative::qemu(
            params.downtime_limit_s,
            params.qemu_max_iterations,
        )),
        PolicyKind::Clairvoyant => Box::new(Clairvoyant::default()),
        PolicyKind::Sweep => Box::new(Sweep::new(params.estimator, beta, files)),
        PolicyKind::Converge => Box::new(Converge::new(
            params.estimator,
            params.downtime_limit_s,
            params.stall_passes,
            files,
        )),
        PolicyKind::Proposed
        | PolicyKind::ProbabilityOnly
        | PolicyKind::SizeOnly
        | PolicyKind::Random => unreachable!("handled above"),
    }
}

/// Scratch space a period-based policy keeps between plans: which pending ReadWrite files this
/// plan does not take in size order (their key is not +0, or they have none).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scratch {
    not_zero: Vec<bool>,
    marked: Vec<u32>,
}

impl Scratch {
    fn reset(&mut self, files: usize) {
        for id in self.marked.drain(..) {
            self.not_zero[id as usize] = false;
        }
        self.not_zero.resize(files, false);
    }

    fn mark(&mut self, id: u32) {
        self.not_zero[id as usize] = true;
        self.marked.push(id);
    }
}

/// What a period-based plan is chosen from: the files the engine holds as pending, nothing else.
/// Every pending ReadWrite file whose key is +0 is taken in the engine's (size, id) order, which
/// needs no sort: under the share estimator that is every file not written in the last period,
/// most of them.
pub(crate) struct Candidates<'a> {
    /// Unsent ReadOnly files, in id (path) order: every period-based policy sends them first.
    pub(crate) read_only: Vec<Planned>,
    /// ReadWrite candidates whose key is not +0, as (key, size, id), unordered.
    pub(crate) read_write: Vec<(f64, u64, u32)>,
    /// ReadWrite candidates whose key is +0.
    zero_keys: usize,
    scratch: &'a Scratch,
    view: View<'a>,
    /// Link time to send every file that still has to go.
    pub(crate) seconds: f64,
    /// How many ReadWrite files could still start in this period after the ReadOnly ones.
    pub(crate) capacity: usize,
}

impl<'a> Candidates<'a> {
    /// Gathers the files that still have to go. A ReadWrite file is a candidate if
    /// `key(id, size)` gives it a key; they are visited in id order.
    pub(crate) fn gather(
        view: &View<'a>,
        scratch: &'a mut Scratch,
        key: impl Fn(u32, u64) -> Option<f64>,
    ) -> Candidates<'a> {
        scratch.reset(view.files.len());
        let mut read_only = Vec::new();
        let mut read_write = Vec::new();
        let mut zero_keys = 0;
        for id in view.pending.ids() {
            let f = &view.files[id as usize];
            match f.kind {
                Kind::ReadOnly => read_only.push(Planned {
                    file: id,
                    key: f64::NAN,
                }),
                Kind::ReadWrite => match key(id, f.size) {
                    Some(k) if k.to_bits() == 0 => zero_keys += 1,
                    Some(k) => {
                        read_write.push((k, f.size, id));
                        scratch.mark(id);
                    }
                    None => scratch.mark(id),
                },
            }
        }
        Candidates::new(view, scratch, read_only, read_write, zero_keys)
    }

    /// Gathers the files that still have to go when every ReadWrite file has a key and only
    /// those in `keyed` may have one other than +0: a plan then looks at the pending files it
    /// sends and at `keyed` (the files written lately), not at every file.
    pub(crate) fn gather_keyed(
        view: &View<'a>,
        scratch: &'a mut Scratch,
        keyed: impl Iterator<Item = u32>,
        key: impl Fn(u32, u64) -> f64,
    ) -> Candidates<'a> {
        scratch.reset(view.files.len());
        let read_only = (view.pending.read_only())
            .map(|file| Planned {
                file,
                key: f64::NAN,
            })
            .collect();
        let mut read_write = Vec::new();
        for id in keyed {
            let f = &view.files[id as usize];
            if f.kind == Kind::ReadWrite && view.pending.contains(id) {
                let k = key(id, f.size);
                if k.to_bits() != 0 {
                    read_write.push((k, f.size, id));
                    scratch.mark(id);
                }
            }
        }
        let zero_keys = view.pending.read_write_len() - read_write.len();
        Candidates::new(view, scratch, read_only, read_write, zero_keys)
    }

    fn new(
        view: &View<'a>,
        scratch: &'a Scratch,
        read_only: Vec<Planned>,
        read_write: Vec<(f64, u64, u32)>,
        zero_keys: usize,
    ) -> Candidates<'a> {
        let pending = view.pending.read_write_len() + read_only.len();
        // The cheapest pending ReadWrite send: the smallest file, or under delta any file's
        // resend cost (a single block may be all that goes).
        let smallest = match view.delta {
            None => view
                .pending
                .read_write_by_size()
                .next()
                .map(|id| view.files[id as usize].size),
            Some(_) => view
                .pending
                .read_write_by_size()
                .map(|id| view.send_cost(id))
                .min(),
        };
        let smallest = smallest.map_or(1 << 62, |bytes| bytes.min(1 << 62));
        let capacity = view
            .period_capacity(smallest)
            .saturating_sub(read_only.len());
        Candidates {
            seconds: view.link.bulk_time(view.unsent_cost, pending),
            read_only,
            read_write,
            zero_keys,
            scratch,
            view: *view,
            capacity,
        }
    }

    /// ReadOnly while any ReadOnly file is unsent (paper step B), then ReadWrite.
    pub(crate) fn phase(&self) -> Phase {
        if self.read_only.is_empty() {
            Phase::ReadWrite
        } else {
            Phase::ReadOnly
        }
    }

    /// Whether every file left is ReadWrite and all of them, after what the link still has to
    /// send, fit in one period: then a round can send them all (sweep, converge).
    pub(crate) fn all_fit_in_a_period(&self) -> bool {
        let busy = (self.view.link_free_at - self.view.now).max(0.0);
        self.phase() == Phase::ReadWrite && busy + self.seconds <= self.view.period
    }

    /// ReadWrite candidates.
    pub(crate) fn read_write_len(&self) -> usize {
        self.read_write.len() + self.zero_keys
    }

    /// The ReadOnly files, then the first `keep` ReadWrite ones in ascending key, then size, then
    /// id (a total, platform-independent order): the +0 keys, already in size order, merged with
    /// the others, of which only the first `keep` are sorted (O(m + k log k) for m keyed files).
    pub(crate) fn into_order(self, keep: usize) -> Vec<Planned> {
        let (files, not_zero) = (self.view.files, &self.scratch.not_zero);
        let mut zero = (self.view.pending.read_write_by_size())
            .filter(|&id| !not_zero[id as usize])
            .map(|id| (0.0, files[id as usize].size, id))
            .peekable();
        // Keys above +0 all come after the +0 ones: only the places those leave need sorting.
        let places = if self.read_write.iter().all(|k| k.0 > 0.0) {
            keep.saturating_sub(self.zero_keys)
        } else {
            keep
        };
        let mut keyed = (sorted_prefix(self.read_write, places).into_iter()).peekable();
        let mut order = self.read_only;
        let rw_start = order.len();
        while order.len() - rw_start < keep {
            let next = match (zero.peek(), keyed.peek()) {
                (Some(z), Some(k)) if by_key(z, k).is_le() => zero.next(),
                (_, Some(_)) => keyed.next(),
                _ => zero.next(),
            };
            let Some((key, _, file)) = next else { break };
            order.push(Planned { file, key });
        }
        order
    }
}

fn by_key(a: &(f64, u64, u32), b: &(f64, u64, u32)) -> core::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

/// The `keep` first of `keyed` by [`by_key`]. Selecting before sorting makes it O(n + k log k).
fn sorted_prefix(mut keyed: Vec<(f64, u64, u32)>, keep: usize) -> Vec<(f64, u64, u32)> {
    if keep < keyed.len() {
        keyed.select_nth_unstable_by(keep, by_key);
        keyed.truncate(keep);
    }
    keyed.sort_unstable_by(by_key);
    keyed
}
