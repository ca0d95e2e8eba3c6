//! Ours: the proposed policy, ended by one sweep as soon as everything left fits in a period.
//!
//! The paper admits that on a wide link the proposed policy keeps pre-copying high-expectation
//! files, which are written again and resent, period after period, until the β test sees U flat
//! within ±1 %. Once the link can carry everything that is not cleanly at the destination within
//! one period, waiting only churns. Sweep plans exactly as the proposed policy does, but in the
//! first ReadWrite period where everything left (RO and RW, plus whatever is still on the wire)
//! fits, it sends all of it in ascending update expectation, hot files last, ending the round the
//! moment the last transfer ends rather than at the period's end. Like the iterations of memory
//! pre-copy, each further sweep sends only what the previous one left dirty, so sweeps shrink;
//! it stops the application after the first sweep that did not cut U by [`SHRINK`] (or after
//! [`MAX_SWEEPS`]). Where the link never catches up it is the proposed policy, β test included.

use super::expectation::expectation;
use super::{BetaTest, Candidates, Plan, Policy, Rounds, Scratch, View};
use crate::metrics::{EndReason, Phase, RoundReport};
use crate::monitor::{Estimator, UpdateEstimates};

/// Sweeps at most this many times (the paper's baseline iteration count).
pub const MAX_SWEEPS: u32 = 10;

/// Another sweep follows only if the last one cut U by at least 10 %.
pub const SHRINK: f64 = 0.9;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Sweep {
    estimates: UpdateEstimates,
    end_test: BetaTest,
    /// Sweeps done so far, and U when the current one started.
    sweeps: u32,
    sweep_start_bytes: u64,
    sweeping: bool,
    scratch: Scratch,
}

impl Sweep {
    /// A policy for `files` files.
    pub fn new(estimator: Estimator, end_test: BetaTest, files: usize) -> Sweep {
        Sweep {
            estimates: UpdateEstimates::new(estimator, files),
            end_test,
            sweeps: 0,
            sweep_start_bytes: 0,
            sweeping: false,
            scratch: Scratch::default(),
        }
    }
}

impl Policy for Sweep {
    fn name(&self) -> &'static str {
        "sweep"
    }

    fn rounds(&self) -> Rounds {
        Rounds::Periods
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let estimates = &self.estimates;
        let candidates =
            Candidates::gather_keyed(view, &mut self.scratch, estimates.nonzero(), |id, size| {
                expectation(estimates, id, size)
            });
        let phase = candidates.phase();
        self.sweeping = self.sweeps > 0 || candidates.all_fit_in_a_period();
        self.sweep_start_bytes = view.unsent_cost;
        let keep = if self.sweeping {
            candidates.read_write_len()
        } else {
            candidates.capacity
        };
        Plan {
            phase,
            order: candidates.into_order(keep),
            skip_redirtied: false,
            end_when_sent: self.sweeping,
        }
    }

    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        self.estimates
            .observe(view.counts, view.written, report.end - report.start);
        if self.sweeping {
            self.sweeps += 1;
            let shrunk = (report.unsent_cost as f64) < SHRINK * self.sweep_start_bytes as f64;
            (!shrunk || self.sweeps >= MAX_SWEEPS).then_some(EndReason::Swept {
                sweeps: self.sweeps,
            })
        } else if report.phase == Phase::ReadWrite {
            self.end_test.record(report.unsent_cost)
        } else {
            None
        }
    }
}
