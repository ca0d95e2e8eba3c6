//! Ours, for real workloads: the proposed order, ended by a downtime target or by a lack of
//! progress measured over bytes sent rather than over periods.
//!
//! On real traces the β test fires early: while one large file is on the wire no other transfer
//! starts, so U stays flat for as many periods as that file takes, and a flat U reads as
//! convergence (issue 14: PostgreSQL at 5 Mbit/s stopped with 394 MB left). Time is the wrong
//! clock for progress; bytes sent are the right one. Converge plans as the proposed policy does
//! (and, like sweep, sends everything left at once when it fits a period, ending the round when
//! it is sent) and stops pre-copy
//! - when the predicted final copy, `unsent_cost × 8 / rate`, fits the downtime target (the
//!   [`PolicyParams::downtime_limit_s`](super::PolicyParams) QEMU uses; KubeVirt's
//!   "acceptable completion time" is the same idea), or
//! - after `stall_passes` passes in a row that did not cut U by [`SHRINK`], where a pass ends
//!   once the bytes sent since it began reach U at its start — what one iteration of memory
//!   pre-copy would send (Triton stops after three re-syncs without a significant drop) — at
//!   the first round end where U is back at its lowest since the last progress, or after one
//!   more pass: U of a real application wavers (a log rotates, a checkpoint ends), and the
//!   final copy is smallest at a low.
//!
//! A period in which a large file is still on the wire sends nothing, so it neither ends a pass
//! nor counts against progress. And pre-copy never ends while a transfer is on the wire, since
//! the rest of it would be downtime: once it has decided to stop, converge starts nothing new and
//! the engine stops the application at the first round end with the link idle (a round with
//! nothing to start ends when the link goes idle, or at its period's end if that is sooner).

use super::expectation::expectation;
use super::sweep::SHRINK;
use super::{Candidates, Plan, Policy, Rounds, Scratch, View};
use crate::metrics::{EndReason, Phase, RoundReport};
use crate::monitor::{Estimator, UpdateEstimates};
use alloc::vec::Vec;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Converge {
    estimates: UpdateEstimates,
    downtime_s: f64,
    stall_passes: u32,
    /// U when the current pass began (`None` before the first plan).
    pass_start: Option<u64>,
    /// Bytes sent since the current pass began.
    pass_sent: u64,
    /// Passes done, and how many of the last ones in a row did not shrink U.
    passes: u32,
    stalls: u32,
    /// The lowest U at a round's end since the last pass that shrank U.
    low: u64,
    /// Once passes stalled: the low it waits for before it stops.
    settling: Option<u64>,
    /// Set once it decided to stop: it then starts no transfer, and the engine ends pre-copy
    /// as soon as the link is idle.
    decided: Option<EndReason>,
    scratch: Scratch,
}

impl Converge {
    /// A policy for `files` files: stop when the final copy fits `downtime_s` of link time, or
    /// after `stall_passes` (≥ 1, [`crate::SimConfig::validate`] checks) passes in a row without
    /// progress.
    pub fn new(estimator: Estimator, downtime_s: f64, stall_passes: u32, files: usize) -> Converge {
        Converge {
            estimates: UpdateEstimates::new(estimator, files),
            downtime_s,
            stall_passes,
            pass_start: None,
            pass_sent: 0,
            passes: 0,
            stalls: 0,
            low: u64::MAX,
            settling: None,
            decided: None,
            scratch: Scratch::default(),
        }
    }

    /// Counts a round's bytes into the current pass; at a pass's end, whether U shrank enough.
    /// Once `stall_passes` passes in a row did not, U only wavers, so it stops at the first
    /// round end where U is back at the lowest seen since the last progress (the final copy is
    /// then smallest), or after one more pass if U never gets there.
    fn progress(&mut self, bytes_sent: u64, unsent_cost: u64) -> Option<EndReason> {
        let start = self.pass_start?;
        self.low = self.low.min(unsent_cost);
        self.pass_sent += bytes_sent;
        let stalled = EndReason::Stalled {
            passes: self.passes,
            stalled: self.stalls,
        };
        if self.settling.is_some_and(|low| unsent_cost <= low) {
            return Some(stalled);
        }
        if self.pass_sent < start {
            return None;
        }
        self.passes += 1;
        if (unsent_cost as f64) < SHRINK * start as f64 {
            self.stalls = 0;
            self.low = unsent_cost;
        } else {
            self.stalls += 1;
        }
        self.pass_start = Some(unsent_cost);
        self.pass_sent = 0;
        let stalled = EndReason::Stalled {
            passes: self.passes,
            stalled: self.stalls,
        };
        if self.settling.is_some() {
            return Some(stalled);
        }
        if self.stalls >= self.stall_passes {
            if unsent_cost <= self.low {
                return Some(stalled);
            }
            self.settling = Some(self.low);
        }
        None
    }
}

impl Policy for Converge {
    fn name(&self) -> &'static str {
        "converge"
    }

    fn rounds(&self) -> Rounds {
        Rounds::Periods
    }

    fn waits_for_the_wire(&self) -> bool {
        true
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        self.pass_start.get_or_insert(view.unsent_cost);
        let estimates = &self.estimates;
        let candidates =
            Candidates::gather_keyed(view, &mut self.scratch, estimates.nonzero(), |id, size| {
                expectation(estimates, id, size)
            });
        let phase = candidates.phase();
        // Once decided, the link only drains: what would start now would be downtime or resent.
        // Everything left fits in this period: send all of it, ending the round once it is
        // sent (as sweep does), so a wide link iterates instead of idling to the period's end.
        let sweep = candidates.all_fit_in_a_period();
        let order = if self.decided.is_some() {
            Vec::new()
        } else if sweep {
            let keep = candidates.read_write_len();
            candidates.into_order(keep)
        } else {
            let keep = candidates.capacity;
            candidates.into_order(keep)
        };
        // With nothing to start (decided, or nothing left but what is on the wire), the round
        // ends as soon as the link is idle if that comes before the period's end.
        let end_when_sent = sweep || order.is_empty();
        Plan {
            phase,
            order,
            skip_redirtied: false,
            end_when_sent,
        }
    }

    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        self.estimates
            .observe(view.counts, view.written, report.end - report.start);
        // The same byte budget as the QEMU-style test: what the link sends within the target.
        let limit_bytes = libm::floor(view.bandwidth_bps() * self.downtime_s / 8.0) as u64;
        let stalled = self.progress(report.bytes_sent, report.unsent_cost);
        let converged = (report.unsent_cost <= limit_bytes).then_some(EndReason::Converged {
            remaining_bytes: report.unsent_cost,
            limit_bytes,
        });
        // Every ReadOnly file goes before the stop, as in the paper's order: not while a round
        // still had ReadOnly files to send.
        if self.decided.is_none() && report.phase != Phase::ReadOnly {
            self.decided = converged.or(stalled);
        }
        self.decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Dataset, FileSpec, Kind, Writes};
    use crate::metrics::Metrics;
    use crate::policy::PolicyKind;
    use crate::policy::PolicyParams;
    use crate::sim::{SimBuilder, SimConfig};

    fn policy(stall_passes: u32) -> Converge {
        let mut p = Converge::new(Estimator::Share, 0.3, stall_passes, 0);
        p.pass_start = Some(1000);
        p
    }

    #[test]
    fn rounds_without_bytes_sent_never_end_a_pass() {
        // A large file on the wire: U flat, nothing sent, for many periods.
        let mut p = policy(1);
        for _ in 0..100 {
            assert_eq!(p.progress(0, 1000), None);
        }
        assert_eq!(p.passes, 0);
    }

    #[test]
    fn a_pass_ends_once_its_bytes_reach_u_at_its_start() {
        let mut p = policy(1);
        // 600 + 300 < 1000: still the first pass.
        assert_eq!(p.progress(600, 500), None);
        assert_eq!(p.progress(300, 400), None);
        // 1000 sent: the pass ends with U = 400 < 0.9 × 1000, progress; the next pass is 400.
        assert_eq!(p.progress(100, 400), None);
        assert_eq!((p.passes, p.stalls, p.pass_start), (1, 0, Some(400)));
        // 400 sent, U = 361 > 0.9 × 400 = 360: a stall, and one is enough here.
        assert_eq!(
            p.progress(400, 361),
            Some(EndReason::Stalled {
                passes: 2,
                stalled: 1
            })
        );
    }

    #[test]
    fn stalls_must_come_in_a_row() {
        let mut p = policy(2);
        assert_eq!(p.progress(1000, 950), None, "stall 1");
        assert_eq!(
            p.progress(950, 800),
            None,
            "800 < 855: progress, count reset"
        );
        assert_eq!(p.progress(800, 800), None, "stall 1");
        assert_eq!(
            p.progress(800, 790),
            Some(EndReason::Stalled {
                passes: 4,
                stalled: 2
            }),
            "790 > 720: stall 2"
        );
    }

    #[test]
    fn exactly_the_shrink_factor_counts_as_a_stall() {
        let mut p = policy(1);
        assert!(
            p.progress(1000, 900).is_some(),
            "900 is not below 0.9 × 1000"
        );
        let mut p = policy(1);
        assert_eq!(p.progress(1000, 899), None);
    }

    fn file(path: &str, size: u64, kind: Kind) -> FileSpec {
        FileSpec {
            path: path.into(),
            size,
            kind,
            access_probability: 0.0,
        }
    }

    /// A hot file's writes: every 0.5 s for 100 s.
    fn every_half_second() -> Vec<f64> {
        (1..=200).map(|i| f64::from(i) * 0.5).collect()
    }

    /// Runs `policy` on `files` written at `writes`, at 8000 bit/s (1000 B take 1 s) with a 2 s
    /// period, the policies' parameters set by `set`.
    fn run(
        policy: PolicyKind,
        files: Vec<FileSpec>,
        writes: Vec<Vec<f64>>,
        set: impl FnOnce(&mut PolicyParams),
    ) -> Metrics {
        let dataset = Dataset::new("case".into(), files, Writes::Recorded(writes)).unwrap();
        let mut config = SimConfig {
            bandwidth_bps: 8000.0,
            period_s: 2.0,
            ..SimConfig::default()
        };
        set(&mut config.params);
        SimBuilder::new(dataset, policy)
            .config(config)
            .build()
            .unwrap()
            .run()
    }

    /// /a is ReadOnly (1000 B), /big ReadWrite (10,000 B, never written), /h ReadWrite (1000 B,
    /// written every 0.5 s). β = 2.
    fn large_file_case(policy: PolicyKind, stall_passes: u32) -> Metrics {
        let files = alloc::vec![
            file("/a", 1000, Kind::ReadOnly),
            file("/big", 10_000, Kind::ReadWrite),
            file("/h", 1000, Kind::ReadWrite),
        ];
        let writes = alloc::vec![Vec::new(), Vec::new(), every_half_second()];
        run(policy, files, writes, |params| {
            params.beta = 2;
            params.stall_passes = stall_passes;
        })
    }

    #[test]
    fn the_beta_test_stops_while_a_large_file_is_on_the_wire() {
        // Period 0 [0, 2): /a 0–1, /h 1–2 (then written at 1.5). Period 1 [2, 4): p̂(/h) = 1,
        // so /big (E = 0) goes first, 2–12; U = 1000 (/h). Period 2 [4, 6): the link is busy,
        // U = 1000 again: ratio 1, stop at 6. /big ends at 12, then /h: downtime 7 s.
        let m = large_file_case(PolicyKind::Proposed, 2);
        assert!(matches!(m.end_reason, EndReason::Beta { .. }));
        assert_eq!((m.precopy_time_s, m.downtime_s), (6.0, 7.0));
        assert_eq!((m.precopy_bytes, m.final_bytes), (12_000, 1000));
    }

    #[test]
    fn converge_waits_for_bytes_sent_not_periods() {
        // Pass 1 starts at U = 12,000 and ends in period 1 when /big starts (2000 + 10,000
        // sent); U = 1000 < 0.9 × 12,000. Periods 2–5 send nothing (/big on the wire until 12).
        // At 12 all that is left (/h, 1 s) fits the period: a sweep, /h 12–13, written at
        // 12.5, and the round ends at 13. 1000 sent ends pass 2 with U = 1000 ≥ 900: a stall,
        // at U's low since the last progress: stop at 13, downtime 1 s (/h).
        let m = large_file_case(PolicyKind::Converge, 1);
        assert_eq!(
            m.end_reason,
            EndReason::Stalled {
                passes: 2,
                stalled: 1
            }
        );
        assert_eq!((m.precopy_time_s, m.downtime_s), (13.0, 1.0));
        assert_eq!((m.precopy_bytes, m.final_bytes), (13_000, 1000));
        // Two stalls in a row: one more sweep, /h 13–14: stop at 14.
        let m = large_file_case(PolicyKind::Converge, 2);
        assert_eq!(
            m.end_reason,
            EndReason::Stalled {
                passes: 3,
                stalled: 2
            }
        );
        assert_eq!((m.precopy_time_s, m.precopy_bytes), (14.0, 14_000));
    }

    #[test]
    fn converge_stops_once_the_final_copy_fits_the_downtime_limit() {
        // A limit of 1 s is 1000 B at 8000 bit/s: U = 1000 at the end of period 1 fits.
        let files = alloc::vec![file("/h", 1000, Kind::ReadWrite)];
        let m = run(
            PolicyKind::Converge,
            files,
            alloc::vec![every_half_second()],
            |params| params.downtime_limit_s = 1.0,
        );
        // Period 0 [0, 2): /h (1 s) fits, so a sweep: /h 0–1, and the round ends at 1; written
        // at 0.5, it is dirty: U = 1000 ≤ 1000.
        assert_eq!(
            m.end_reason,
            EndReason::Converged {
                remaining_bytes: 1000,
                limit_bytes: 1000
            }
        );
        assert_eq!((m.precopy_time_s, m.downtime_s), (1.0, 1.0));
    }

    #[test]
    fn converge_does_not_stop_while_a_transfer_is_on_the_wire() {
        // Period 0 [0, 2): /a (RO, 1000 B) 0–1; /big (10,000 B, never written) takes 10 s, so
        // the plan's capacity (⌊1 s / 10 s⌋ + 1 files, less /a) leaves it for period 1: 2–12.
        let idle = |policy| {
            let files = alloc::vec![
                file("/a", 1000, Kind::ReadOnly),
                file("/big", 10_000, Kind::ReadWrite),
            ];
            run(policy, files, alloc::vec![Vec::new(), Vec::new()], |_| {})
        };
        // U = 0 at 4: the proposed policy stops then, and /big's last 8 s are downtime.
        let m = idle(PolicyKind::Proposed);
        assert_eq!((m.precopy_time_s, m.downtime_s), (4.0, 8.0));
        // Converge waits for the link: rounds with nothing to start end when the link is idle
        // or at the period's end, whichever comes first: at 6, 8, 10 and 12, when it is idle.
        let m = idle(PolicyKind::Converge);
        assert_eq!(m.end_reason, EndReason::NothingLeft);
        assert_eq!((m.precopy_time_s, m.downtime_s, m.rounds), (12.0, 0.0, 6));
    }

    #[test]
    fn once_decided_converge_starts_nothing_and_stops_when_the_link_drains() {
        // /h (1000 B) and /g (2500 B), both written every 0.5 s. Period 0 [0, 2): /h 0–1,
        // /g 1–3.5; both written after their start: U = 3500. The pass (3500 B) is over and U
        // did not shrink: stop. The link is busy until 3.5, so round 1 starts nothing and ends
        // when the link is idle, at 3.5: pre-copy ends there.
        let files = alloc::vec![
            file("/g", 2500, Kind::ReadWrite),
            file("/h", 1000, Kind::ReadWrite)
        ];
        let writes = alloc::vec![every_half_second(), every_half_second()];
        let m = run(PolicyKind::Converge, files, writes, |params| {
            params.stall_passes = 1
        });
        assert_eq!(
            m.end_reason,
            EndReason::Stalled {
                passes: 1,
                stalled: 1
            }
        );
        assert_eq!(
            (m.rounds, m.precopy_time_s, m.precopy_bytes),
            (2, 3.5, 3500)
        );
        assert_eq!((m.final_bytes, m.downtime_s), (3500, 3.5));
    }

    #[test]
    fn after_the_stalls_it_stops_at_the_low_seen_since_the_last_progress() {
        let mut p = policy(1);
        // Pass 1 (1000 B): U 600 mid-pass, 950 at its end (not below 900): stalled, but U
        // was lower (600), so it waits for U ≤ 600.
        assert_eq!(p.progress(500, 600), None);
        assert_eq!(p.progress(500, 950), None);
        assert_eq!(p.settling, Some(600));
        assert_eq!(p.progress(300, 700), None);
        assert_eq!(
            p.progress(100, 580),
            Some(EndReason::Stalled {
                passes: 1,
                stalled: 1
            })
        );
    }

    #[test]
    fn if_u_never_gets_back_to_its_low_it_stops_after_one_more_pass() {
        let mut p = policy(1);
        assert_eq!(p.progress(500, 600), None);
        assert_eq!(p.progress(500, 950), None, "waits for 600");
        // Pass 2 is 950 B: 900 + 50 sent, U never ≤ 600.
        assert_eq!(p.progress(900, 940), None);
        assert_eq!(
            p.progress(50, 960),
            Some(EndReason::Stalled {
                passes: 2,
                stalled: 2
            })
        );
    }
}
