//! Ours: the proposed policy, ended by one sweep as soon as everything left fits in a period.
//!
//! The paper admits that on a wide link the proposed policy keeps pre-copying high-expectation
//! files, which are written again and resent, period after period, until the β test sees U flat
//! within ±1 %. Once the link can carry everything that is not cleanly at the destination within
//! one period, waiting only churns. Sweep plans exactly as the proposed policy does, but in the
//! first ReadWrite period where everything left (RO and RW, plus whatever is still on the wire)
//! fits, it sends all of it in ascending update expectation, hot files last, and stops the
//! application the moment the last transfer ends rather than at the period's end: the stale window
//! is one sweep, never more than a period. Where the link never catches up it is the proposed
//! policy, β test included.

use super::expectation::{period_phase, rw_by_expectation, rw_capacity};
use super::{unsent_read_only, BetaTest, Plan, Policy, Rounds, View};
use crate::metrics::{EndReason, Phase, RoundReport};
use crate::monitor::{Estimator, UpdateEstimates};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Sweep {
    estimates: UpdateEstimates,
    end_test: BetaTest,
    sweeping: bool,
}

impl Sweep {
    /// A policy for `files` files.
    pub fn new(estimator: Estimator, end_test: BetaTest, files: usize) -> Sweep {
        Sweep {
            estimates: UpdateEstimates::new(estimator, files),
            end_test,
            sweeping: false,
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
        let phase = period_phase(view);
        let busy = (view.link_free_at - view.now).max(0.0);
        let left: f64 = view
            .files
            .iter()
            .filter(|f| f.status.needs_send())
            .map(|f| view.transfer_time(f.size))
            .sum();
        self.sweeping = phase == Phase::ReadWrite && busy + left <= view.period;
        let mut order = unsent_read_only(view);
        let keep = if self.sweeping {
            view.files.len()
        } else {
            rw_capacity(view, order.len())
        };
        order.extend(rw_by_expectation(view, &self.estimates, keep));
        Plan {
            phase,
            order,
            skip_redirtied: false,
            end_when_sent: self.sweeping,
        }
    }

    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        self.estimates.observe(view.counts, report.end - report.start);
        if self.sweeping {
            Some(EndReason::Swept)
        } else if report.phase == Phase::ReadWrite {
            self.end_test.record(report.unsent_bytes)
        } else {
            None
        }
    }
}
