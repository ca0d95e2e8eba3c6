//! The paper's evaluation (§4, SPEC §6): its figures and claims, and how ours compare.
//!
//! A claim is a range of reductions (proposed vs baseline) over a band of bandwidths. Ours "holds"
//! when the proposed policy is ahead at every bandwidth of the band and our range overlaps the
//! paper's; "about equal" holds when every reduction in the band is within ±[`ABOUT_EQUAL_PCT`].

use alloc::vec::Vec;

use crate::dataset::Preset;

/// "About equal" means within this many percent.
pub const ABOUT_EQUAL_PCT: f64 = 15.0;

/// The paper's bandwidths: 5 to 100 Mbps in steps of 5.
pub fn bandwidths_mbps() -> Vec<f64> {
    (1..=20).map(|i| f64::from(i) * 5.0).collect()
}

/// Which transfer volume a figure or claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Quantity {
    /// Bytes sent while the application runs (network load).
    PrecopyBytes,
    /// Bytes sent while it is stopped (downtime).
    FinalBytes,
}

impl Quantity {
    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Quantity::PrecopyBytes => "pre-copy bytes",
            Quantity::FinalBytes => "final-copy bytes",
        }
    }
}

/// A range of bandwidths a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Band {
    /// 5–30 Mbps.
    Narrow,
    /// 40 Mbps and up.
    Wide,
    /// Every bandwidth.
    All,
}

impl Band {
    /// Whether a bandwidth belongs to the band.
    pub fn contains(self, mbps: f64) -> bool {
        match self {
            Band::Narrow => mbps <= 30.0,
            Band::Wide => mbps >= 40.0,
            Band::All => true,
        }
    }

    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Band::Narrow => "5–30 Mbps",
            Band::Wide => "≥ 40 Mbps",
            Band::All => "all bandwidths",
        }
    }
}

/// What the paper reports.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case", tag = "kind"))]
pub enum Reported {
    /// Proposed reduces the quantity by `min_pct`–`max_pct` percent.
    Reduction {
        /// Smallest reduction, percent.
        min_pct: f64,
        /// Largest reduction, percent.
        max_pct: f64,
    },
    /// Proposed and baseline are about equal.
    AboutEqual,
}

/// One of the paper's claims.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Claim {
    /// Data set.
    pub dataset: Preset,
    /// Quantity.
    pub quantity: Quantity,
    /// Bandwidths.
    pub band: Band,
    /// What the paper reports.
    pub reported: Reported,
}

const fn claim(dataset: Preset, quantity: Quantity, band: Band, reported: Reported) -> Claim {
    Claim {
        dataset,
        quantity,
        band,
        reported,
    }
}

const fn cut(min_pct: f64, max_pct: f64) -> Reported {
    Reported::Reduction { min_pct, max_pct }
}

/// The claims of the paper's §4.2–4.3.
pub const CLAIMS: [Claim; 5] = [
    claim(
        Preset::Fixed,
        Quantity::PrecopyBytes,
        Band::Narrow,
        cut(43.0, 94.0),
    ),
    claim(
        Preset::Fixed,
        Quantity::PrecopyBytes,
        Band::Wide,
        Reported::AboutEqual,
    ),
    claim(
        Preset::Fixed,
        Quantity::FinalBytes,
        Band::All,
        cut(6.0, 65.0),
    ),
    claim(
        Preset::Variable,
        Quantity::PrecopyBytes,
        Band::All,
        cut(71.0, 93.0),
    ),
    claim(
        Preset::Variable,
        Quantity::FinalBytes,
        Band::All,
        cut(3.0, 10.0),
    ),
];

/// How our numbers compare with one claim.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Assessment {
    /// The claim.
    pub claim: Claim,
    /// Our smallest reduction in the band, percent (negative: proposed is worse).
    pub ours_min_pct: f64,
    /// Our largest reduction in the band, percent.
    pub ours_max_pct: f64,
    /// Whether the claim holds under our model (see the module docs).
    pub holds: bool,
}

/// Reduction of `proposed` relative to `baseline`, percent.
pub fn reduction_pct(baseline: f64, proposed: f64) -> f64 {
    if baseline > 0.0 {
        100.0 * (1.0 - proposed / baseline)
    } else if proposed > 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    }
}

impl Claim {
    /// Compares with our (bandwidth in Mbps, baseline mean, proposed mean) points for the claim's
    /// data set and quantity. `None` if no point falls in the band.
    pub fn assess(&self, points: &[(f64, f64, f64)]) -> Option<Assessment> {
        let reductions: Vec<f64> = points
            .iter()
            .filter(|p| self.band.contains(p.0))
            .map(|&(_, baseline, proposed)| reduction_pct(baseline, proposed))
            .collect();
        let min = reductions.iter().copied().fold(f64::INFINITY, f64::min);
        let max = reductions.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if reductions.is_empty() {
            return None;
        }
        let holds = match self.reported {
            Reported::Reduction { min_pct, max_pct } => {
                min > 0.0 && min <= max_pct && max >= min_pct
            }
            Reported::AboutEqual => min >= -ABOUT_EQUAL_PCT && max <= ABOUT_EQUAL_PCT,
        };
        Some(Assessment {
            claim: *self,
            ours_min_pct: min,
            ours_max_pct: max,
            holds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assessment_of_a_reduction_claim() {
        let claim = CLAIMS[0];
        let points = [
            (5.0, 100.0, 10.0),
            (30.0, 100.0, 50.0),
            (40.0, 100.0, 200.0),
        ];
        let a = claim.assess(&points).unwrap();
        assert_eq!((a.ours_min_pct, a.ours_max_pct), (50.0, 90.0));
        assert!(a.holds);
        let worse = [(5.0, 100.0, 120.0), (10.0, 100.0, 10.0)];
        assert!(!claim.assess(&worse).unwrap().holds);
    }

    #[test]
    fn about_equal_and_empty_bands() {
        let claim = CLAIMS[1];
        assert!(claim.assess(&[(40.0, 100.0, 110.0)]).unwrap().holds);
        assert!(!claim.assess(&[(40.0, 100.0, 130.0)]).unwrap().holds);
        assert_eq!(claim.assess(&[(5.0, 1.0, 1.0)]), None);
        assert_eq!(bandwidths_mbps().len(), 20);
    }
}
