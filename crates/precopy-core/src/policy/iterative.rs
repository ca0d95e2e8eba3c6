//! Memory-style iterative pre-copy applied to files (SPEC §3, §4): the first iteration sends every
//! file in a fixed (path) order, each later one the files dirtied since they were last sent.
//!
//! Xen skips a file written again during the current iteration before its turn and stops after a
//! fixed number of iterations; QEMU sends every dirty file and stops once the dirty bytes left fit
//! in its downtime limit.

use alloc::vec::Vec;

use super::{Plan, Policy, Rounds, View};
use crate::metrics::{EndReason, Phase, Planned, RoundReport};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// Xen: a fixed number of iterations, with the skip rule.
    Iterations(u32),
    /// QEMU: dirty bytes within `downtime_s` of link time, or an iteration cap.
    Downtime {
        downtime_s: f64,
        max_iterations: u32,
    },
}

/// The baseline (Xen-style) or the QEMU-style comparator.
#[derive(Debug, Clone)]
pub struct Iterative {
    stop: Stop,
}

impl Iterative {
    /// Xen-style: fixed order, skip rule, `iterations` iterations (the paper uses 10).
    pub fn xen(iterations: u32) -> Iterative {
        Iterative {
            stop: Stop::Iterations(iterations),
        }
    }

    /// QEMU-style: no skip rule; stop when dirty bytes ≤ bandwidth × `downtime_s`.
    pub fn qemu(downtime_s: f64, max_iterations: u32) -> Iterative {
        Iterative {
            stop: Stop::Downtime {
                downtime_s,
                max_iterations,
            },
        }
    }
}

impl Policy for Iterative {
    fn name(&self) -> &'static str {
        match self.stop {
            Stop::Iterations(_) => "baseline",
            Stop::Downtime { .. } => "qemu",
        }
    }

    fn rounds(&self) -> Rounds {
        Rounds::Iterations
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        // Iteration 1 finds every file unsent; later ones find the dirty set taken now.
        let mut order = Vec::with_capacity(view.pending.len());
        order.extend(view.pending.ids().map(|file| Planned {
            file,
            key: f64::NAN,
        }));
        Plan {
            phase: Phase::Iteration,
            order,
            skip_redirtied: matches!(self.stop, Stop::Iterations(_)) && view.round > 0,
            end_when_sent: false,
        }
    }

    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        let iterations = report.index + 1;
        match self.stop {
            Stop::Iterations(limit) => {
                (iterations >= limit).then_some(EndReason::IterationLimit { iterations })
            }
            Stop::Downtime {
                downtime_s,
                max_iterations,
            } => {
                let limit_bytes = libm::floor(view.bandwidth_bps() * downtime_s / 8.0) as u64;
                if report.unsent_cost <= limit_bytes {
                    Some(EndReason::Converged {
                        remaining_bytes: report.unsent_cost,
                        limit_bytes,
                    })
                } else {
                    (iterations >= max_iterations)
                        .then_some(EndReason::IterationLimit { iterations })
                }
            }
        }
    }
}
