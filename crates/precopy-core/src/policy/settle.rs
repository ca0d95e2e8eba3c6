//! Ours: the proposed order, ended by a final sweep instead of waiting for U to flatten.
//!
//! The paper admits that on a wide link the proposed policy pre-copies high-expectation files in
//! every period and resends them until the β test finally sees U flatten. Sweep notices instead
//! the first period in which everything not cleanly at the destination fits on the link; it sends
//! all of it in ascending update expectation (hot files last) and stops the application the moment
//! the last transfer ends, not at the period's end. So the stale window is one sweep, never longer
//! than a period, and no period of pure resending is spent waiting for the β test.
//!
//! Before that, it holds back files likely to be written again before the sweep: the rate λ̂ of
//! each file is estimated from every period seen, the rest of pre-copy is planned backwards (the
//! last file in order is exposed only for its own transfer, the one before it for both, …), and a
//! file is sent only if 1 − exp(−λ̂ · exposure) ≤ `risk`. The β test stays as the fallback for links
//! that never catch up, where the policy is the proposed one.

use alloc::vec::Vec;

use super::expectation::{period_phase, rw_by_expectation};
use super::{unsent_read_only, BetaTest, Plan, Policy, Rounds, View};
use crate::metrics::{EndReason, Phase, Planned, RoundReport};
use crate::monitor::{Estimator, UpdateEstimates};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Sweep {
    risk: f64,
    /// p̂ for the order (as the proposed policy).
    estimates: UpdateEstimates,
    /// λ̂ for the hold-back: needs every period seen, not just the last one.
    rates: UpdateEstimates,
    end_test: BetaTest,
    sweeping: bool,
}

impl Sweep {
    /// `risk` is the largest accepted chance that a file sent before the sweep is written again.
    pub fn new(risk: f64, estimator: Estimator, end_test: BetaTest, files: usize) -> Sweep {
        Sweep {
            risk,
            estimates: UpdateEstimates::new(estimator, files),
            rates: UpdateEstimates::new(Estimator::Cumulative, files),
            end_test,
            sweeping: false,
        }
    }

    /// Drops the files whose exposure until the sweep is too risky; keeps the order.
    fn hold_back(&self, view: &View<'_>, order: Vec<Planned>) -> Vec<Planned> {
        let mut kept = Vec::with_capacity(order.len());
        let mut exposure = 0.0;
        for planned in order.into_iter().rev() {
            let duration = view.transfer_time(view.files[planned.file as usize].size);
            exposure += duration;
            let p_write = 1.0 - libm::exp(-self.rates.rate(planned.file) * exposure);
            if p_write <= self.risk {
                kept.push(planned);
            }
        }
        kept.reverse();
        kept
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
        let mut order = unsent_read_only(view);
        let rw = rw_by_expectation(view, &self.estimates, view.files.len());
        let busy = (view.link_free_at - view.now).max(0.0);
        let left: f64 = order
            .iter()
            .chain(&rw)
            .map(|p| view.transfer_time(view.files[p.file as usize].size))
            .sum();
        self.sweeping = phase == Phase::ReadWrite && busy + left <= view.period;
        if self.sweeping {
            order.extend(rw);
        } else {
            order.extend(self.hold_back(view, rw));
        }
        Plan {
            phase,
            order,
            skip_redirtied: false,
            end_when_sent: self.sweeping,
        }
    }

    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        let seconds = report.end - report.start;
        self.estimates.observe(view.counts, seconds);
        self.rates.observe(view.counts, seconds);
        if self.sweeping {
            return Some(EndReason::Swept);
        }
        if report.phase == Phase::ReadWrite {
            self.end_test.record(report.unsent_bytes)
        } else {
            None
        }
    }
}
