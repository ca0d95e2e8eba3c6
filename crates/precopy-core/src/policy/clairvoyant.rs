//! The clairvoyant reference (SPEC §4): it knows every future write. It fixes its stop time at
//! the first period end after one pass over all files could be done on the link, and only ever
//! sends a file whose last write before that stop is already past, so it never resends and
//! nothing it sends goes stale (unless the writes to a file that joined later are not known).
//!
//! It is a yardstick, not a strategy: no real monitor can see the future.

use alloc::vec::Vec;

use super::{Candidates, Plan, Policy, Rounds, Scratch, View};
use crate::metrics::{EndReason, RoundReport};

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Clairvoyant {
    /// The stop time, fixed by the first plan, and each file's last write before it, by id.
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
        let (stop, last_write) = self.schedule.get_or_insert_with(|| {
            let one_pass: f64 = view.files.iter().map(|f| view.transfer_time(f.size)).sum();
            // Rounded up to a period end, where the engine can stop the application.
            let stop = view.now + libm::ceil(one_pass / view.period) * view.period;
            (stop, Vec::new())
        });
        // Files that joined since the first plan (created while the application runs) keep its
        // stop: the horizon is fixed once. Their last writes before it are looked up as the
        // first files' were; without look-ahead (a live sender whose ids left the workload's)
        // none is known, and a file with no known write is taken as never written again.
        for id in last_write.len() as u32..view.files.len() as u32 {
            let last = view.future_last_write(id, *stop).flatten();
            last_write.push(last.unwrap_or(f64::NEG_INFINITY));
        }
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

#[cfg(test)]
mod tests {
    use alloc::vec;

    use crate::dataset::{Dataset, FileSpec, Kind, Writes};
    use crate::engine::{Context, Engine};
    use crate::metrics::Metrics;
    use crate::policy::{self, FileView, PolicyKind, PolicyParams};
    use crate::workload::{WriteClock, WriteModel};

    /// Files joining after the first plan are planned by the same rule: /b's one write comes
    /// after the stop, so it goes at once; /c's last write before it is at 1.5, so it waits.
    #[test]
    fn files_joining_after_the_first_plan_are_planned_by_their_last_write() {
        let file = |path: &str| FileSpec {
            path: path.into(),
            size: 1000,
            kind: Kind::ReadWrite,
            access_probability: 0.0,
        };
        let writes = Writes::Recorded(vec![vec![], vec![3.0], vec![1.5]]);
        let specs = vec![file("/a"), file("/b"), file("/c")];
        let dataset = Dataset::new("hand".into(), specs, writes).unwrap();
        let future = WriteClock::new(&dataset, &WriteModel::default(), 1);
        let policy = policy::build(PolicyKind::Clairvoyant, &PolicyParams::default(), 1, 1);
        let metrics = Metrics::new("clairvoyant", "hand", 8000.0, 1, 1, 1000);
        let only_a = vec![FileView::unsent(1000, Kind::ReadWrite)];
        let mut engine = Engine::new(policy, only_a, 2.0, 10, metrics);
        // 8000 bit/s: a file takes 1 s, so one pass over /a alone fixes the stop at 2.
        let context = |now| Context {
            future: Some(&future),
            ..Context::live(now, 8000.0)
        };
        let plan = |engine: &mut Engine, now: f64| {
            engine.begin_round(now);
            engine.plan(context(now));
            let report = engine.end_round(context(now));
            report.plan.iter().map(|p| p.file).collect::<vec::Vec<_>>()
        };
        assert_eq!(plan(&mut engine, 0.0), [0]);
        engine.add_file(1000, Kind::ReadWrite);
        engine.add_file(1000, Kind::ReadWrite);
        assert_eq!(plan(&mut engine, 1.0), [0, 1]);
        assert_eq!(plan(&mut engine, 1.6), [0, 1, 2]);
    }
}
