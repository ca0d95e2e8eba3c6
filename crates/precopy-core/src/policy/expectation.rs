//! The paper's policy (SPEC §2) and its ablations: ReadOnly files first, then ReadWrite files that
//! are not cleanly at the destination in ascending order of a key computed from the previous
//! period's writes; pre-copy ends by the β test.

use alloc::collections::VecDeque;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

use super::{Candidates, Plan, Policy, Rounds, Scratch, View};
use crate::metrics::{EndReason, Phase, Planned, RoundReport};
use crate::monitor::{Estimator, UpdateEstimates};

/// What ReadWrite files are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    /// Update expectation E = p̂ × size (the paper).
    Expectation,
    /// p̂ alone.
    Probability,
    /// Size alone.
    Size,
    /// A fresh random order every period.
    Random,
}

/// The paper's end test (§3.3): keep the last β values of U; stop when the mean of the newest β/2
/// over the mean of the oldest β/2 is within [1 − tolerance, 1 + tolerance].
#[derive(Debug, Clone, PartialEq)]
pub struct BetaTest {
    beta: u32,
    tolerance: f64,
    history: VecDeque<u64>,
}

impl BetaTest {
    /// A test with an empty history. β must be even and ≥ 2 (the builder checks).
    pub fn new(beta: u32, tolerance: f64) -> BetaTest {
        BetaTest {
            beta,
            tolerance,
            history: VecDeque::with_capacity(beta as usize + 1),
        }
    }

    /// Records U at a period's end and runs the test.
    pub fn record(&mut self, unsent_bytes: u64) -> Option<EndReason> {
        self.push(unsent_bytes);
        let ratio = self.ratio()?;
        let band = 1.0 - self.tolerance..=1.0 + self.tolerance;
        band.contains(&ratio).then_some(EndReason::Beta {
            ratio,
            beta: self.beta,
            tolerance: self.tolerance,
        })
    }

    /// Records U without testing; the oldest value falls out after β.
    pub fn push(&mut self, unsent_bytes: u64) {
        self.history.push_back(unsent_bytes);
        if self.history.len() > self.beta as usize {
            self.history.pop_front();
        }
    }

    /// The accepted band's half-width.
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }

    /// Mean of the U values held.
    pub fn mean(&self) -> f64 {
        let n = self.history.len().max(1) as f64;
        self.history.iter().map(|&u| u as f64).sum::<f64>() / n
    }

    /// mean(newest β/2) / mean(oldest β/2), once β values exist and the older mean is positive.
    pub fn ratio(&self) -> Option<f64> {
        if self.history.len() < self.beta as usize {
            return None;
        }
        let half = self.beta as usize / 2;
        let sum = |values: &mut dyn Iterator<Item = &u64>| values.map(|&u| u as f64).sum::<f64>();
        let oldest = sum(&mut self.history.iter().take(half));
        let newest = sum(&mut self.history.iter().skip(half));
        (oldest > 0.0).then(|| newest / oldest)
    }

    /// The U values held, oldest first.
    pub fn history(&self) -> impl Iterator<Item = u64> + '_ {
        self.history.iter().copied()
    }
}

/// The proposed policy, or one of its ablations, depending on the key.
#[derive(Debug, Clone)]
pub struct ExpectationPolicy {
    key: OrderKey,
    estimates: UpdateEstimates,
    end_test: BetaTest,
    rng: Pcg64Mcg,
    scratch: Scratch,
}

impl ExpectationPolicy {
    /// A policy for `files` files.
    pub fn new(
        key: OrderKey,
        estimator: Estimator,
        end_test: BetaTest,
        files: usize,
        seed: u64,
    ) -> ExpectationPolicy {
        ExpectationPolicy {
            key,
            estimates: UpdateEstimates::new(estimator, files),
            end_test,
            rng: Pcg64Mcg::seed_from_u64(seed ^ 0x005E_ED0F_0DE5),
            scratch: Scratch::default(),
        }
    }
}

/// The key of a ReadWrite file: what the ablations vary.
fn key(order: OrderKey, estimates: &UpdateEstimates, id: u32, size: u64) -> f64 {
    match order {
        OrderKey::Expectation => expectation(estimates, id, size),
        OrderKey::Probability => estimates.probability(id),
        OrderKey::Size => size as f64,
        OrderKey::Random => f64::NAN,
    }
}

/// Update expectation E = p̂ × size.
pub(crate) fn expectation(estimates: &UpdateEstimates, id: u32, size: u64) -> f64 {
    estimates.probability(id) * size as f64
}

impl Policy for ExpectationPolicy {
    fn name(&self) -> &'static str {
        match self.key {
            OrderKey::Expectation => "proposed",
            OrderKey::Probability => "p-only",
            OrderKey::Size => "size-only",
            OrderKey::Random => "random",
        }
    }

    fn rounds(&self) -> Rounds {
        Rounds::Periods
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let (order_key, estimates) = (self.key, &self.estimates);
        let key = |id, size| key(order_key, estimates, id, size);
        let mut candidates = match order_key {
            // p̂ = 0 makes both keys +0: only files with p̂ > 0 need one.
            OrderKey::Expectation | OrderKey::Probability => {
                Candidates::gather_keyed(view, &mut self.scratch, estimates.nonzero(), key)
            }
            OrderKey::Size | OrderKey::Random => {
                Candidates::gather(view, &mut self.scratch, |id, size| Some(key(id, size)))
            }
        };
        let phase = candidates.phase();
        let keep = candidates.capacity;
        let order = if self.key == OrderKey::Random {
            // NaN keys are never +0: every candidate is in `read_write`, in id order.
            candidates.read_write.shuffle(&mut self.rng);
            candidates.read_write.truncate(keep);
            let mut order = candidates.read_only;
            order.extend(
                candidates
                    .read_write
                    .iter()
                    .map(|&(key, _, file)| Planned { file, key }),
            );
            order
        } else {
            candidates.into_order(keep)
        };
        Plan {
            phase,
            order,
            skip_redirtied: false,
            end_when_sent: false,
        }
    }

    fn end_of_round(&mut self, view: &View<'_>, report: &RoundReport) -> Option<EndReason> {
        self.estimates
            .observe(view.counts, view.written, report.end - report.start);
        // The β history covers the ReadWrite phase only (paper steps C–G).
        if report.phase == Phase::ReadWrite {
            self.end_test.record(report.unsent_cost)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_test_waits_for_beta_values() {
        let mut test = BetaTest::new(4, 0.01);
        assert_eq!(test.record(100), None);
        assert_eq!(test.record(100), None);
        assert_eq!(test.record(100), None);
        assert!(matches!(
            test.record(100),
            Some(EndReason::Beta { ratio, .. }) if ratio == 1.0
        ));
    }

    #[test]
    fn beta_test_ratio_is_newest_half_over_oldest_half() {
        let mut test = BetaTest::new(4, 0.01);
        for u in [1000, 1000, 900, 900] {
            assert_eq!(test.record(u), None);
        }
        assert_eq!(test.ratio(), Some(0.9));
        // Window slides: [1000, 900, 900, 905] -> (900 + 905) / (1000 + 900) = 0.95.
        assert_eq!(test.record(905), None);
        assert!((test.ratio().unwrap() - 1805.0 / 1900.0).abs() < 1e-12);
        // [900, 900, 905, 895] -> 1800 / 1800 = 1.0.
        assert!(test.record(895).is_some());
        assert_eq!(test.history().collect::<Vec<_>>(), [900, 900, 905, 895]);
    }

    #[test]
    fn beta_band_edges() {
        let mut test = BetaTest::new(2, 0.01);
        test.record(1000);
        assert!(test.record(1010).is_some(), "1.01 is inside");
        let mut test = BetaTest::new(2, 0.01);
        test.record(1000);
        assert!(test.record(1011).is_none(), "1.011 is outside");
    }
}
