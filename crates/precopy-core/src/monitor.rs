//! What the write monitor lets a policy know: per-period write counts, turned into estimates.
//!
//! A real monitor (the tracer) sees write system calls per file and period, never the true rates;
//! policies get exactly that and nothing else.

use alloc::vec;
use alloc::vec::Vec;

/// How the update probability p̂ of a file is estimated from the monitor's counts.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case", tag = "kind"))]
pub enum Estimator {
    /// The paper's reading: the file's share of the previous period's writes.
    Share,
    /// Share, smoothed over periods: p̂ ← α·share + (1 − α)·p̂.
    Ewma {
        /// Weight of the newest period, in (0, 1].
        alpha: f64,
    },
    /// The file's share of all writes seen since monitoring began.
    Cumulative,
}

impl Estimator {
    /// Names accepted on the command line (`ewma` uses α = 0.5).
    pub fn from_name(name: &str) -> Option<Estimator> {
        match name {
            "share" => Some(Estimator::Share),
            "ewma" => Some(Estimator::Ewma { alpha: 0.5 }),
            "cumulative" => Some(Estimator::Cumulative),
            _ => None,
        }
    }

    /// The short name.
    pub fn name(&self) -> &'static str {
        match self {
            Estimator::Share => "share",
            Estimator::Ewma { .. } => "ewma",
            Estimator::Cumulative => "cumulative",
        }
    }
}

/// Running per-file estimates built from the monitor's per-period counts.
#[derive(Debug, Clone)]
pub struct UpdateEstimates {
    estimator: Estimator,
    probability: Vec<f64>,
    totals: Vec<u64>,
    /// The files whose p̂ is not +0, each once (flagged in `listed`): every other p̂ is +0 and
    /// stays so until the file is written, so a period costs the files written, not all files.
    nonzero: Vec<u32>,
    listed: Vec<bool>,
    total_writes: u64,
    observed_seconds: f64,
}

impl UpdateEstimates {
    /// No observations yet: every p̂ is 0.
    pub fn new(estimator: Estimator, files: usize) -> UpdateEstimates {
        UpdateEstimates {
            estimator,
            probability: vec![0.0; files],
            totals: vec![0; files],
            nonzero: Vec::new(),
            listed: vec![false; files],
            total_writes: 0,
            observed_seconds: 0.0,
        }
    }

    /// Takes one period's counts (`counts[file]`) that covered `seconds`; `written` names every
    /// file whose count is not 0 (others may be named too). Files beyond those known so far join
    /// with no history (a live migration's set grows).
    pub fn observe(&mut self, counts: &[u32], written: &[u32], seconds: f64) {
        if counts.len() > self.probability.len() {
            self.probability.resize(counts.len(), 0.0);
            self.totals.resize(counts.len(), 0);
            self.listed.resize(counts.len(), false);
        }
        for &file in written {
            if !core::mem::replace(&mut self.listed[file as usize], true) {
                self.nonzero.push(file);
            }
        }
        let count = |file: u32| u64::from(counts[file as usize]);
        let period_total: u64 = self.nonzero.iter().map(|&file| count(file)).sum();
        self.total_writes += period_total;
        self.observed_seconds += seconds;
        // A period without writes has every count 0: dividing by 1 keeps each share +0.
        let divisor = period_total.max(1) as f64;
        let share = |file: u32| count(file) as f64 / divisor;
        let all = self.total_writes.max(1) as f64;
        let (probability, totals) = (&mut self.probability, &mut self.totals);
        let (listed, estimator) = (&mut self.listed, self.estimator);
        // A file off the list has p̂ = +0 and count 0, which every estimator maps to +0 again;
        // one that reaches +0 leaves it.
        self.nonzero.retain(|&file| {
            let (p, total) = (&mut probability[file as usize], &mut totals[file as usize]);
            *total += count(file);
            *p = match estimator {
                Estimator::Share => share(file),
                Estimator::Ewma { alpha } => alpha * share(file) + (1.0 - alpha) * *p,
                Estimator::Cumulative => *total as f64 / all,
            };
            let keep = p.to_bits() != 0;
            listed[file as usize] = keep;
            keep
        });
    }

    /// The files whose p̂ may not be +0.
    pub fn nonzero(&self) -> impl Iterator<Item = u32> + '_ {
        self.nonzero.iter().copied()
    }

    /// The estimated update probability p̂ of a file (0 for one not observed yet).
    pub fn probability(&self, file: u32) -> f64 {
        self.probability.get(file as usize).copied().unwrap_or(0.0)
    }

    /// The file's estimated write rate (writes per second) over everything observed so far.
    pub fn rate(&self, file: u32) -> f64 {
        if self.observed_seconds > 0.0 {
            self.totals.get(file as usize).copied().unwrap_or(0) as f64 / self.observed_seconds
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_uses_only_the_previous_period() {
        let mut est = UpdateEstimates::new(Estimator::Share, 3);
        est.observe(&[3, 1, 0], &[0, 1], 1.0);
        assert_eq!(est.probability(0), 0.75);
        est.observe(&[0, 0, 2], &[2], 1.0);
        assert_eq!(est.probability(0), 0.0);
        assert_eq!(est.probability(2), 1.0);
        assert_eq!(est.rate(0), 1.5);
    }

    #[test]
    fn files_joining_later_start_with_no_history() {
        let mut est = UpdateEstimates::new(Estimator::Share, 1);
        assert_eq!(est.probability(3), 0.0);
        est.observe(&[1, 0, 0, 3], &[0, 3], 1.0);
        assert_eq!(est.probability(3), 0.75);
        assert_eq!(est.rate(3), 3.0);
    }

    #[test]
    fn ewma_and_cumulative_remember() {
        let mut ewma = UpdateEstimates::new(Estimator::Ewma { alpha: 0.5 }, 2);
        ewma.observe(&[1, 0], &[0], 1.0);
        ewma.observe(&[0, 1], &[1], 1.0);
        assert_eq!(ewma.probability(0), 0.25);
        assert_eq!(ewma.probability(1), 0.5);

        let mut cumulative = UpdateEstimates::new(Estimator::Cumulative, 2);
        cumulative.observe(&[3, 0], &[0], 1.0);
        cumulative.observe(&[0, 1], &[1], 1.0);
        assert_eq!(cumulative.probability(0), 0.75);
    }
}
