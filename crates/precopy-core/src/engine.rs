//! The pre-copy engine, sans-IO: what a migration knows about its files and what its policy
//! decided, driven by events with explicit times. The simulator ([`crate::sim`]) drives it with
//! simulated time and seeded writes; the real sender drives it with a monotonic clock, its write
//! monitor and its transport. Both therefore run the same rounds: the same plans, the same
//! consistency rule, the same U accounting and the same end test.
//!
//! ```text
//!  begin_round(now) → plan(context) → { candidate(t) → [on_write…] → should_send → on_sent }…
//!     → end_round(context)            … then begin_final(stop) → on_sent… → end_final(end)
//! ```
//!
//! A round's transfers start in the policy's order: [`Engine::candidate`] names the next planned
//! file (or `None` once the plan is done or the period is over at that time); the driver applies
//! that file's writes due by then ([`Engine::on_write`]), asks [`Engine::should_send`] (a copy
//! already clean is not resent; the baseline skips a file written again during its round), and
//! reports the transfer ([`Engine::on_sent`]). Before [`Engine::end_round`] it applies every
//! write due by the round's end. So the consistency rule — a copy is clean iff no write hit the
//! file after its transfer started — holds for any driver that reports writes in time.
//!
//! Files may join and leave between or within rounds ([`Engine::add_file`],
//! [`Engine::remove_file`]) and change size ([`Engine::set_size`]): a live application creates,
//! deletes and grows files.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::dataset::Kind;
use crate::delta::{Delta, DirtyBlocks, Extent};
use crate::metrics::{end_of_precopy, Dirtied, EndReason, Metrics, Phase, RoundReport, Transfer};
use crate::pending::Pending;
use crate::policy::{FileView, Link, Plan, Policy, Rounds, Status, View};
use crate::workload::WriteClock;

/// What the policy sees: the engine's state and the driver's context. A macro, not a method, so
/// that it borrows the fields it reads and the policy stays free to be called.
macro_rules! view {
    ($engine:expr, $context:expr) => {
        View {
            now: $context.now,
            round: $engine.round,
            period: $engine.period_s,
            link_free_at: $context.link_free_at,
            files: &$engine.files,
            counts: &$engine.counts,
            unsent_bytes: $engine.unsent,
            unsent_cost: $engine.unsent_cost(),
            delta: $engine.delta.as_ref(),
            pending: &$engine.pending,
            written: &$engine.written,
            link: Link {
                bandwidth_bps: $context.bandwidth_bps,
                overhead_s: $context.overhead_s,
            },
            future: $context.future,
        }
    };
}

/// What a policy may be told besides the engine's own state.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Now, seconds.
    pub now: f64,
    /// When the link finishes its current transfer (≥ `now` if busy).
    pub link_free_at: f64,
    /// Link rate the policy plans with, bits per second.
    pub bandwidth_bps: f64,
    /// Fixed cost per transfer, seconds.
    pub overhead_s: f64,
    /// Future writes, for the clairvoyant reference only.
    pub future: Option<&'a WriteClock>,
}

impl Context<'_> {
    /// A live sender's context: no look-ahead, the link free now.
    pub fn live(now: f64, bandwidth_bps: f64) -> Context<'static> {
        Context {
            now,
            link_free_at: now,
            bandwidth_bps,
            overhead_s: 0.0,
            future: None,
        }
    }
}

/// Whether the migration is pre-copying, in its final copy, or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Rounds while the application runs.
    PreCopy,
    /// Pre-copy has ended: the final copy is next.
    FinalCopy,
    /// The final copy is done.
    Done,
}

/// The round in progress.
#[derive(Debug)]
struct Round {
    report: RoundReport,
    plan: Option<Plan>,
    next: usize,
    deadline: Option<f64>,
}

/// The engine. See the module docs.
pub struct Engine {
    policy: Box<dyn Policy>,
    period_s: f64,
    max_rounds: u32,
    files: Vec<FileView>,
    /// The files that still have to go, so a plan need not look at the others.
    pending: Pending,
    last_write: Vec<f64>,
    counts: Vec<u32>,
    /// The files whose count is not 0, so a round resets only those.
    written: Vec<u32>,
    /// Whether round reports list the files dirtied.
    keep_dirtied: bool,
    unsent: u64,
    /// Dirty blocks per file, when a resend costs only them.
    delta: Option<Delta>,
    round: u32,
    stage: Stage,
    /// Why pre-copy ended before [`Engine::one_more_round`] reopened it: that round ends it.
    closing: Option<EndReason>,
    current: Option<Round>,
    metrics: Metrics,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("policy", &self.policy.name())
            .field("round", &self.round)
            .field("stage", &self.stage)
            .field("unsent", &self.unsent)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `files` (none sent yet) under `policy`, with monitoring period `period_s`
    /// and a safety cap of `max_rounds` pre-copy rounds; `metrics` is filled in as it goes.
    pub fn new(
        policy: Box<dyn Policy>,
        files: Vec<FileView>,
        period_s: f64,
        max_rounds: u32,
        metrics: Metrics,
    ) -> Engine {
        let n = files.len();
        Engine {
            policy,
            period_s,
            max_rounds,
            unsent: files
                .iter()
                .filter(|f| f.status.needs_send())
                .map(|f| f.size)
                .sum(),
            pending: Pending::new(&files),
            files,
            last_write: alloc::vec![f64::NEG_INFINITY; n],
            counts: alloc::vec![0; n],
            written: Vec::new(),
            keep_dirtied: true,
            delta: None,
            round: 0,
            stage: Stage::PreCopy,
            closing: None,
            current: None,
            metrics,
        }
    }

    /// Resends cost the blocks of `block_bytes` written since the file's last send, as told by
    /// [`Engine::on_write_to`], rather than the file's size ([`Engine::send_cost`]).
    pub fn track_delta(&mut self, block_bytes: u64) {
        let mut delta = Delta::new(block_bytes.max(1), self.files.len());
        for (dirty, view) in delta.files.iter_mut().zip(&self.files) {
            match view.status {
                Status::Unsent => {}
                Status::Clean => dirty.sent(view.size),
                Status::Dirty => dirty.whole(),
            }
        }
        self.delta = Some(delta);
    }

    /// Bytes a send of `file` now puts on the link: its size, or under delta, for a file the
    /// destination holds, the blocks written since its last send plus its growth.
    pub fn send_cost(&self, file: u32) -> u64 {
        let view = &self.files[file as usize];
        match &self.delta {
            Some(delta) if view.sends > 0 => {
                delta.files[file as usize].cost(view.size, delta.block)
            }
            _ => view.size,
        }
    }

    /// What sending every file not cleanly at the destination would put on the link now: U
    /// with whole-file resends, less under delta.
    pub fn unsent_cost(&self) -> u64 {
        match self.delta {
            None => self.unsent,
            Some(_) => self.pending.ids().map(|f| self.send_cost(f)).sum(),
        }
    }

    /// Stops listing dirtied files in round reports (a run that drops its reports).
    pub fn forget_dirtied(&mut self) {
        self.keep_dirtied = false;
    }

    /// The files' current state, by id.
    pub fn files(&self) -> &[FileView] {
        &self.files
    }

    /// U: bytes not cleanly at the destination.
    pub fn unsent_bytes(&self) -> u64 {
        self.unsent
    }

    /// Pre-copy, final copy, or done.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Rounds begun so far.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// The metrics so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics, for a driver's own figures (a real sender's measured downtime).
    pub fn metrics_mut(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    /// The round in progress's report so far.
    pub fn report(&self) -> Option<&RoundReport> {
        self.current.as_ref().map(|r| &r.report)
    }

    /// Opens a pre-copy round at `now`. Files may join, leave or change size before its plan.
    pub fn begin_round(&mut self, now: f64) {
        debug_assert_eq!(self.stage, Stage::PreCopy);
        self.current = Some(Round {
            report: RoundReport::empty(self.round, Phase::ReadOnly, now, self.unsent),
            plan: None,
            next: 0,
            deadline: None,
        });
    }

    /// Asks the policy for the round's order, with last round's write counts, then starts
    /// counting this round's writes.
    pub fn plan(&mut self, context: Context<'_>) {
        self.pending.refresh(&self.files);
        let view = view!(self, context);
        let plan = self.policy.plan(&view);
        for file in self.written.drain(..) {
            self.counts[file as usize] = 0;
        }
        let unsent_cost = self.unsent_cost();
        let round = self.current.as_mut().expect("a round is open");
        round.report.phase = plan.phase;
        round.report.unsent_bytes = self.unsent;
        round.report.unsent_cost = unsent_cost;
        // Room for a transfer per planned file, so the list does not grow by copying.
        round.report.transfers.reserve(plan.order.len());
        round.deadline = match self.policy.rounds() {
            Rounds::Periods => Some(round.report.start + self.period_s),
            Rounds::Iterations => None,
        };
        round.plan = Some(plan);
    }

    /// The next planned file whose transfer may start at `at`, or `None` once the plan is done
    /// or the period is over.
    pub fn candidate(&mut self, at: f64) -> Option<u32> {
        let round = self.current.as_mut()?;
        if round.deadline.is_some_and(|d| at >= d) {
            return None;
        }
        let plan = round.plan.as_ref()?;
        let planned = plan.order.get(round.next)?;
        round.next += 1;
        Some(planned.file)
    }

    /// Whether the candidate goes now: it still has to (it is not cleanly at the destination),
    /// and, under the baseline's rule, it was not written again since its round began. Call it
    /// after applying the file's writes due by the transfer's start.
    pub fn should_send(&mut self, file: u32) -> bool {
        let id = file as usize;
        if !self.files[id].status.needs_send() {
            return false;
        }
        let Some(round) = self.current.as_mut() else {
            return true;
        };
        let skip = round.plan.as_ref().is_some_and(|p| p.skip_redirtied)
            && self.last_write[id] > round.report.start;
        if skip {
            round.report.skipped += 1;
        }
        !skip
    }

    /// `count` writes to `file` seen at `at`, where in the file unknown: counted for the policy,
    /// a clean copy is now stale (U grows by the file's size) and, under delta, all of it.
    pub fn on_write(&mut self, file: u32, count: u32, at: f64) {
        self.on_write_to(file, count, at, Extent::WHOLE);
    }

    /// `count` ≥ 1 writes to `file` seen from `first` to `last`, where in the file unknown: the
    /// same as [`Engine::on_write`] for the first and then for the others at `last`, in one call.
    pub fn on_writes(&mut self, file: u32, count: u32, first: f64, last: f64) {
        self.on_write(file, count, first);
        self.last_write[file as usize] = last;
    }

    /// [`Engine::on_write`] for writes that together dirtied `extent` of the file.
    pub fn on_write_to(&mut self, file: u32, count: u32, at: f64, extent: Extent) {
        let id = file as usize;
        if self.counts[id] == 0 && count > 0 {
            self.written.push(file);
        }
        self.counts[id] = self.counts[id].saturating_add(count);
        self.last_write[id] = at;
        if let Some(round) = self.current.as_mut() {
            round.report.writes += u64::from(count);
        }
        self.stale(file, at);
        if let Some(delta) = self.delta.as_mut() {
            delta.files[id].write(extent, delta.block);
        }
    }

    /// The destination's copy of `file` is not current (a write the monitor could not see, or
    /// the destination lost it): it has to go again. No write is counted for the policy.
    pub fn on_lost(&mut self, file: u32, at: f64) {
        self.stale(file, at);
        self.mark_whole(file);
    }

    /// Under delta, every byte of `file` has to go again.
    fn mark_whole(&mut self, file: u32) {
        if let Some(delta) = self.delta.as_mut() {
            delta.files[file as usize].whole();
        }
    }

    /// A clean copy of `file` is stale from `at` on.
    fn stale(&mut self, file: u32, at: f64) {
        let view = &mut self.files[file as usize];
        if view.status != Status::Clean {
            return;
        }
        view.status = Status::Dirty;
        self.pending.insert(file, view.kind);
        self.unsent += view.size;
        if let Some(round) = self.current.as_mut() {
            round.report.bytes_dirtied += view.size;
            if self.keep_dirtied {
                round.report.dirtied.push(Dirtied { file, at });
            }
        }
    }

    /// A transfer of `file`, `size` bytes as read, of which `bytes` went over the link (fewer
    /// than `size` for a delta), started at `start` and ended at `end`: its copy is clean from
    /// `start` on.
    pub fn on_sent(&mut self, file: u32, size: u64, bytes: u64, start: f64, end: f64) {
        let view = &mut self.files[file as usize];
        if view.status.needs_send() {
            self.unsent -= view.size;
            self.pending.remove(file, view.kind);
        }
        if view.size != size {
            view.size = size;
            self.pending.resized();
        }
        let resend = view.sends > 0;
        view.status = Status::Clean;
        view.sends += 1;
        if let Some(delta) = self.delta.as_mut() {
            delta.files[file as usize].sent(size);
        }
        if let Some(round) = self.current.as_mut() {
            let report = &mut round.report;
            report.bytes_sent += bytes;
            report.files_sent += 1;
            if resend {
                report.resent_bytes += bytes;
            }
            report.transfers.push(Transfer {
                file,
                start,
                end,
                resend,
                bytes,
            });
        }
    }

    /// A new file joins, not sent yet; returns its id.
    pub fn add_file(&mut self, size: u64, kind: Kind) -> u32 {
        let id = self.files.len() as u32;
        self.files.push(FileView::unsent(0, kind));
        self.pending.grow(self.files.len());
        self.pending.insert(id, kind);
        self.last_write.push(f64::NEG_INFINITY);
        self.counts.push(0);
        if let Some(delta) = self.delta.as_mut() {
            delta.files.push(DirtyBlocks::default());
        }
        self.set_size(id, size);
        id
    }

    /// A file joins that the destination already holds, current (it was renamed there): clean.
    pub fn add_clean_file(&mut self, size: u64, kind: Kind) -> u32 {
        let id = self.add_file(0, kind);
        let view = &mut self.files[id as usize];
        view.status = Status::Clean;
        view.sends = 1;
        view.size = size;
        self.pending.remove(id, kind);
        if let Some(delta) = self.delta.as_mut() {
            delta.files[id as usize].sent(size);
        }
        id
    }

    /// The file is gone at the source: nothing of it is left to send.
    pub fn remove_file(&mut self, file: u32) {
        let view = &mut self.files[file as usize];
        if view.status.needs_send() {
            self.unsent -= view.size;
            self.pending.remove(file, view.kind);
        }
        view.size = 0;
        view.status = Status::Clean;
        self.pending.resized();
    }

    /// A removed file is back (created again at the same path): it has to go.
    pub fn restore_file(&mut self, file: u32, size: u64) {
        let view = &mut self.files[file as usize];
        view.status = if view.sends == 0 {
            Status::Unsent
        } else {
            Status::Dirty
        };
        self.pending.insert(file, view.kind);
        view.size = 0;
        self.mark_whole(file);
        self.set_size(file, size);
    }

    /// The file's current size. While it still has to go, U follows; growth counts as dirtied.
    pub fn set_size(&mut self, file: u32, size: u64) {
        let view = &mut self.files[file as usize];
        if view.status.needs_send() {
            if size >= view.size {
                self.unsent += size - view.size;
                if let Some(round) = self.current.as_mut() {
                    round.report.bytes_dirtied += size - view.size;
                }
            } else {
                self.unsent -= view.size - size;
            }
        }
        if view.size != size {
            view.size = size;
            self.pending.resized();
        }
    }

    /// When the round ends if the link is done at `sent_by`: the period's end, or, for a round
    /// that ends when its plan is sent, whichever comes first; an iteration ends when sent.
    pub fn round_end(&self, sent_by: f64) -> f64 {
        let Some(round) = self.current.as_ref() else {
            return sent_by;
        };
        let end_when_sent = round.plan.as_ref().is_some_and(|p| p.end_when_sent);
        match round.deadline {
            Some(d) if end_when_sent => sent_by.min(d),
            Some(d) => d,
            None => sent_by,
        }
    }

    /// Closes the round at `context.now`, after every write due by then was applied: the
    /// policy's end test, U = 0 or the safety cap may end pre-copy.
    pub fn end_round(&mut self, context: Context<'_>) -> RoundReport {
        let round = self.current.take().expect("a round is open");
        let mut report = round.report;
        // Write times are ≥ 0, where the bits order floats as `total_cmp` does, but more cheaply.
        report
            .dirtied
            .sort_unstable_by_key(|d| (d.at.to_bits(), d.file));
        report.end = context.now;
        report.unsent_bytes = self.unsent;
        report.unsent_cost = self.unsent_cost();
        report.plan = round.plan.map(|p| p.order).unwrap_or_default();
        self.pending.refresh(&self.files);
        let view = view!(self, context);
        let policy_end = self.policy.end_of_round(&view, &report);
        // Stopping with a transfer on the wire would make the rest of it downtime: a policy may
        // wait for the link to be idle, and only the safety cap ends pre-copy meanwhile.
        report.ended = if self.policy.waits_for_the_wire() && context.link_free_at > context.now {
            end_of_precopy(self.unsent.max(1), None, self.round + 1, self.max_rounds)
        } else {
            end_of_precopy(self.unsent, policy_end, self.round + 1, self.max_rounds)
                .or(self.closing.take())
        };
        if report.ended.is_some() {
            self.stage = Stage::FinalCopy;
        }
        self.metrics.record_precopy_round(&report);
        self.round += 1;
        report
    }

    /// Pre-copy, which has ended, goes on for one more round, which ends it whatever the policy
    /// says: the application was just asked to flush (a database checkpoint), and what that
    /// wrote is best sent while it still runs.
    pub fn one_more_round(&mut self) {
        debug_assert!(self.stage == Stage::FinalCopy && self.current.is_none());
        self.closing = Some(self.metrics.end_reason);
        self.stage = Stage::PreCopy;
    }

    /// The application is stopped at `stop`: opens the final copy.
    pub fn begin_final(&mut self, stop: f64) {
        self.stage = Stage::FinalCopy;
        let mut report = RoundReport::empty(self.round, Phase::Final, stop, self.unsent);
        report.unsent_cost = self.unsent_cost();
        self.current = Some(Round {
            report,
            plan: None,
            next: 0,
            deadline: None,
        });
    }

    /// The files not cleanly at the destination, by id.
    pub fn pending(&self) -> impl Iterator<Item = u32> + '_ {
        self.pending.ids()
    }

    /// The final copy, begun at `stop`, is over at `end`.
    pub fn end_final(&mut self, stop: f64, end: f64) -> RoundReport {
        let mut report = self.current.take().expect("the final copy is open").report;
        report.end = end;
        report.unsent_bytes = self.unsent;
        report.unsent_cost = self.unsent_cost();
        self.round += 1;
        self.metrics.record_final_copy(&report, stop);
        self.stage = Stage::Done;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{build, PolicyKind, PolicyParams};

    /// One period with nothing sent: U stays what it was.
    fn idle_round(engine: &mut Engine, at: f64) -> RoundReport {
        engine.begin_round(at);
        engine.plan(Context::live(at, 1e6));
        engine.end_round(Context::live(at + 1.0, 1e6))
    }

    #[test]
    fn one_more_round_reopens_precopy_and_ends_it_even_if_its_test_would_not() {
        let params = PolicyParams {
            beta: 2,
            ..PolicyParams::default()
        };
        let files = alloc::vec![FileView::unsent(1000, Kind::ReadWrite)];
        let metrics = Metrics::new("proposed", "t", 1e6, 1, 1, 1000);
        let policy = build(PolicyKind::Proposed, &params, 1, 1);
        let mut engine = Engine::new(policy, files, 1.0, 100, metrics);
        assert_eq!(idle_round(&mut engine, 0.0).ended, None);
        // U was 1000 twice: the β test (β = 2) ends pre-copy.
        let ended = idle_round(&mut engine, 1.0).ended;
        assert!(matches!(ended, Some(EndReason::Beta { .. })), "{ended:?}");
        assert_eq!(engine.stage(), Stage::FinalCopy);

        engine.one_more_round();
        assert_eq!(engine.stage(), Stage::PreCopy);
        // A file joins: U 1000 → 1500, which the β test alone would not accept.
        engine.add_file(500, Kind::ReadWrite);
        let last = idle_round(&mut engine, 2.0);
        assert_eq!(last.ended, ended);
        assert_eq!(engine.stage(), Stage::FinalCopy);
        assert_eq!(engine.round(), 3);
    }

    /// Two files of 100 bytes in a baseline round begun at 0; file 0 was sent over [0, 1].
    fn engine() -> Engine {
        let files = alloc::vec![FileView::unsent(100, Kind::ReadWrite); 2];
        let policy = build(PolicyKind::Baseline, &PolicyParams::default(), 2, 1);
        let metrics = Metrics::new("baseline", "two", 1e6, 1, 2, 200);
        let mut engine = Engine::new(policy, files, 10.0, 100, metrics);
        engine.begin_round(0.0);
        engine.plan(Context::live(0.0, 1e6));
        engine.on_sent(0, 100, 100, 0.0, 1.0);
        engine
    }

    #[test]
    fn writes_told_at_once_or_one_by_one_agree() {
        let (mut once, mut apart) = (engine(), engine());
        once.on_writes(0, 3, 2.0, 5.0);
        apart.on_write(0, 1, 2.0);
        apart.on_write(0, 2, 5.0);
        let report = once.report().unwrap();
        assert_eq!(report, apart.report().unwrap());
        // The first write dirtied the copy sent at 0; the latest is the one the skip rule reads.
        assert_eq!((report.writes, report.bytes_dirtied), (3, 100));
        assert_eq!(report.dirtied, [Dirtied { file: 0, at: 2.0 }]);
        assert_eq!(once.last_write, [5.0, f64::NEG_INFINITY]);
        assert_eq!(once.last_write, apart.last_write);
        assert_eq!(
            (&once.counts, &once.written),
            (&apart.counts, &apart.written)
        );
        assert_eq!(once.files(), apart.files());
        assert_eq!(once.unsent_bytes(), apart.unsent_bytes());
    }
}
