//! The clairvoyant reference (SPEC §4): it knows every future write. It fixes its stop time at
//! the first period end after one pass over all files could be done on the link, and only ever sends a file whose last write
//! before that stop is already past, so it never resends and nothing it sends goes stale.
//!
//! It is a yardstick, not a strategy: no real monitor can see the future.

use alloc::vec::Vec;

use super::{Candidates, Plan, Policy, Rounds, Scratch, View};
use crate::metrics::{EndReason, RoundReport};

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Clairvoyant {
    /// The stop time and each file's last write before it; set on the first plan.
    schedule: Option<(f64, Vec<f64>)>,
    scratch: Scratch,
}

impl Policy for Clairvoyant {
    fn name(&self) -> &'static str {
        "clairvoyant"
    }

    fn rounds(&self) -> Rounds {
        Rounds::Periods
    }

    fn clairvoyant(&self) -> bool {
        true
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let (_, last_write) = self.schedule.get_or_insert_with(|| {
            let one_pass: f64 = view.files.iter().map(|f| view.transfer_time(f.size)).sum();
            // Rounded up to a period end, where the engine can stop the application.
            let stop = view.now + libm::ceil(one_pass / view.period) * view.period;
            let last_write = (0..view.files.len() as u32)
                .map(|id| {
                    view.future_last_write(id, stop)
                        .flatten()
                        .unwrap_or(f64::NEG_INFINITY)
                })
                .collect();
            (stop, last_write)
        });
        // A file is safe once its last write before the stop is in the past.
        let candidates = Candidates::gather(view, &mut self.scratch, |id, _| {
            let last = last_write[id as usize];
            (last < view.now).then_some(last)
        });
        let keep = candidates.capacity;
        Plan {
            phase: candidates.phase(),
            order: candidates.into_order(keep),
            skip_redirtied: false,
            end_when_sent: false,
        }
    }

    fn end_of_round(&mut self, _view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        let (stop, _) = self.schedule.as_ref()?;
        (report.end >= *stop).then_some(EndReason::Horizon { at: *stop })
    }
}
