//! What a run produces: per-round reports, why pre-copy ended, and the run's metrics.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The stage of a migration a round belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Phase {
    /// Pre-copy of ReadOnly files (paper step B).
    ReadOnly,
    /// Pre-copy of ReadWrite files, one monitoring period per round (steps C–G).
    ReadWrite,
    /// An iteration of an iteration-based policy (baseline, QEMU-style).
    Iteration,
    /// The application is stopped and the rest is sent (steps H–J).
    Final,
}

impl Phase {
    /// A short label for tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Phase::ReadOnly => "RO pre-copy",
            Phase::ReadWrite => "RW pre-copy",
            Phase::Iteration => "iteration",
            Phase::Final => "final copy",
        }
    }
}

/// Why pre-copy ended.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case", tag = "kind"))]
pub enum EndReason {
    /// The paper's test: mean of the newest β/2 U values over the oldest β/2 within tolerance.
    Beta {
        /// mean(newest β/2) / mean(oldest β/2).
        ratio: f64,
        /// β.
        beta: u32,
        /// The accepted band is [1 − tolerance, 1 + tolerance].
        tolerance: f64,
    },
    /// Every file is cleanly at the destination.
    NothingLeft,
    /// The baseline's fixed number of iterations was reached.
    IterationLimit {
        /// Iterations done.
        iterations: u32,
    },
    /// QEMU-style: the dirty bytes left can be sent within the downtime limit.
    Converged {
        /// Bytes left to send.
        remaining_bytes: u64,
        /// Bytes the link sends within the downtime limit.
        limit_bytes: u64,
    },
    /// The clairvoyant reference reached the stop time it chose.
    Horizon {
        /// The stop time in seconds.
        at: f64,
    },
    /// Sweep: everything left fitted in one period; sweeps of it stopped shrinking U.
    Swept {
        /// Sweeps done.
        sweeps: u32,
    },
    /// Converge: passes (each sending as many bytes as U at its start) stopped cutting U by 10 %.
    Stalled {
        /// Passes done.
        passes: u32,
        /// How many of the last ones in a row did not cut U by 10 %.
        stalled: u32,
    },
    /// The safety cap on rounds was hit: pre-copy did not converge by itself.
    SafetyCap {
        /// Rounds done.
        rounds: u32,
    },
}

impl EndReason {
    /// A machine-friendly name.
    pub fn name(&self) -> &'static str {
        match self {
            EndReason::Beta { .. } => "beta",
            EndReason::NothingLeft => "nothing-left",
            EndReason::IterationLimit { .. } => "iteration-limit",
            EndReason::Converged { .. } => "converged",
            EndReason::Horizon { .. } => "horizon",
            EndReason::Swept { .. } => "swept",
            EndReason::Stalled { .. } => "stalled",
            EndReason::SafetyCap { .. } => "safety-cap",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EndReason::Beta {
                ratio,
                beta,
                tolerance,
            } => write!(
                f,
                "mean of last {h} / first {h} = {ratio:.4}, within [{:.2}, {:.2}]",
                1.0 - tolerance,
                1.0 + tolerance,
                h = beta / 2
            ),
            EndReason::NothingLeft => f.write_str("nothing left to send"),
            EndReason::IterationLimit { iterations } => {
                write!(f, "iteration limit reached ({iterations})")
            }
            EndReason::Converged {
                remaining_bytes,
                limit_bytes,
            } => write!(
                f,
                "dirty bytes {remaining_bytes} fit the downtime limit ({limit_bytes} bytes)"
            ),
            EndReason::Horizon { at } => write!(f, "clairvoyant stop time {at:.1} s reached"),
            EndReason::Swept { sweeps } => write!(
                f,
                "everything left fitted in one period: {sweeps} sweeps, until one no longer cut U by 10 %"
            ),
            EndReason::Stalled { passes, stalled } => write!(
                f,
                "{stalled} of {passes} passes in a row (each sending U bytes) did not cut U by 10 %"
            ),
            EndReason::SafetyCap { rounds } => {
                write!(
                    f,
                    "safety cap of {rounds} rounds hit: pre-copy did not converge"
                )
            }
        }
    }
}

/// One file transfer on the link.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Transfer {
    /// File id (index into the data set).
    pub file: u32,
    /// Start time, seconds.
    pub start: f64,
    /// End time, seconds.
    pub end: f64,
    /// The file had been sent before.
    pub resend: bool,
    /// Bytes that went over the link: the file's size, or less for a delta.
    pub bytes: u64,
}

/// A write that made a file's copy at the destination stale.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Dirtied {
    /// File id.
    pub file: u32,
    /// Time of the write, seconds.
    pub at: f64,
}

/// A file in a round's planned order, with the key it was ordered by (e.g. its update expectation).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Planned {
    /// File id.
    pub file: u32,
    /// The ordering key (NaN where the policy has none).
    pub key: f64,
}

/// What happened in one round.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RoundReport {
    /// 0-based round number (the final copy is the last).
    pub index: u32,
    /// Stage of the migration.
    pub phase: Phase,
    /// Round start, seconds.
    pub start: f64,
    /// Round end, seconds.
    pub end: f64,
    /// U at the round's end: bytes not cleanly at the destination.
    pub unsent_bytes: u64,
    /// What sending them all would put on the link then: U, or less under delta. End tests
    /// look at this, since it is what the final copy would send.
    pub unsent_cost: u64,
    /// Bytes whose transfer started in this round.
    pub bytes_sent: u64,
    /// Transfers started in this round.
    pub files_sent: u32,
    /// Of those, bytes of files sent before.
    pub resent_bytes: u64,
    /// Bytes of files that turned from clean to dirty in this round.
    pub bytes_dirtied: u64,
    /// Writes the monitor saw in this round.
    pub writes: u64,
    /// Files skipped because they were written again before their turn (baseline).
    pub skipped: u32,
    /// The transfers, in order.
    pub transfers: Vec<Transfer>,
    /// Clean copies made stale, in time order.
    pub dirtied: Vec<Dirtied>,
    /// The policy's order for this round, with keys.
    pub plan: Vec<Planned>,
    /// Set on the round after which pre-copy ended.
    pub ended: Option<EndReason>,
}

impl RoundReport {
    /// A round that has not sent anything yet.
    pub fn empty(index: u32, phase: Phase, start: f64, unsent_bytes: u64) -> RoundReport {
        RoundReport {
            index,
            phase,
            start,
            end: start,
            unsent_bytes,
            unsent_cost: unsent_bytes,
            bytes_sent: 0,
            files_sent: 0,
            resent_bytes: 0,
            bytes_dirtied: 0,
            writes: 0,
            skipped: 0,
            transfers: Vec::new(),
            dirtied: Vec::new(),
            plan: Vec::new(),
            ended: None,
        }
    }
}

/// Why pre-copy ends after a round, if it does: nothing left beats the policy's own test, which
/// beats the safety cap on rounds. Shared by the simulator and the real sender.
pub fn end_of_precopy(
    unsent_bytes: u64,
    policy_end: Option<EndReason>,
    rounds_done: u32,
    max_rounds: u32,
) -> Option<EndReason> {
    if unsent_bytes == 0 {
        Some(EndReason::NothingLeft)
    } else if policy_end.is_some() {
        policy_end
    } else if rounds_done >= max_rounds {
        Some(EndReason::SafetyCap {
            rounds: rounds_done,
        })
    } else {
        None
    }
}

/// One point of the per-round series (for charts and CSV).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RoundPoint {
    /// Round number.
    pub round: u32,
    /// Stage.
    pub phase: Phase,
    /// Round end time, seconds.
    pub time: f64,
    /// U at the round's end.
    pub unsent_bytes: u64,
    /// Bytes sent in the round.
    pub bytes_sent: u64,
    /// Bytes dirtied in the round.
    pub bytes_dirtied: u64,
    /// Files sent in the round.
    pub files_sent: u32,
}

impl RoundPoint {
    /// The CSV header of [`RoundPoint::csv_row`].
    pub const CSV_HEADER: &'static str =
        "round,phase,time_s,unsent_bytes,bytes_sent,bytes_dirtied,files_sent";

    /// One CSV row (no newline); `simulate --csv` and the web app's export share it.
    pub fn csv_row(&self) -> String {
        alloc::format!(
            "{},{},{},{},{},{},{}",
            self.round,
            self.phase.label(),
            self.time,
            self.unsent_bytes,
            self.bytes_sent,
            self.bytes_dirtied,
            self.files_sent
        )
    }
}

impl From<&RoundReport> for RoundPoint {
    fn from(r: &RoundReport) -> RoundPoint {
        RoundPoint {
            round: r.index,
            phase: r.phase,
            time: r.end,
            unsent_bytes: r.unsent_bytes,
            bytes_sent: r.bytes_sent,
            bytes_dirtied: r.bytes_dirtied,
            files_sent: r.files_sent,
        }
    }
}

/// The figures of one finished run (SPEC §5).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Metrics {
    /// Policy name.
    pub policy: String,
    /// Data-set name.
    pub dataset: String,
    /// Link rate, bits per second.
    pub bandwidth_bps: f64,
    /// Seed of the write processes.
    pub seed: u64,
    /// Files in the data set.
    pub files: u32,
    /// Bytes in the data set.
    pub total_bytes: u64,
    /// Bytes sent while the application ran, resends included (network load).
    pub precopy_bytes: u64,
    /// Transfers made while the application ran.
    pub precopy_files: u32,
    /// Bytes sent while the application was stopped.
    pub final_bytes: u64,
    /// Files sent while the application was stopped.
    pub final_files: u32,
    /// Pre-copy bytes of files that had been sent before.
    pub resent_bytes: u64,
    /// Pre-copy transfers of files that had been sent before.
    pub resent_files: u32,
    /// Time the application was stopped, seconds.
    pub downtime_s: f64,
    /// Time from the start to the application's stop, seconds.
    pub precopy_time_s: f64,
    /// Time from the start to the end of the final copy, seconds.
    pub total_time_s: f64,
    /// Pre-copy rounds (periods or iterations).
    pub rounds: u32,
    /// Why pre-copy ended.
    pub end_reason: EndReason,
    /// Per-round series, pre-copy rounds then the final copy.
    pub series: Vec<RoundPoint>,
}

impl Metrics {
    /// Nothing sent yet.
    pub fn new(
        policy: &str,
        dataset: &str,
        bandwidth_bps: f64,
        seed: u64,
        files: u32,
        total_bytes: u64,
    ) -> Metrics {
        Metrics {
            policy: String::from(policy),
            dataset: String::from(dataset),
            bandwidth_bps,
            seed,
            files,
            total_bytes,
            precopy_bytes: 0,
            precopy_files: 0,
            final_bytes: 0,
            final_files: 0,
            resent_bytes: 0,
            resent_files: 0,
            downtime_s: 0.0,
            precopy_time_s: 0.0,
            total_time_s: 0.0,
            rounds: 0,
            end_reason: EndReason::NothingLeft,
            series: Vec::new(),
        }
    }

    /// Adds a finished pre-copy round (its `ended` already decided).
    pub fn record_precopy_round(&mut self, report: &RoundReport) {
        self.precopy_bytes += report.bytes_sent;
        self.precopy_files += report.files_sent;
        self.resent_bytes += report.resent_bytes;
        self.resent_files += report.transfers.iter().filter(|t| t.resend).count() as u32;
        self.rounds = report.index + 1;
        if let Some(reason) = report.ended {
            self.end_reason = reason;
            self.precopy_time_s = report.end;
        }
        self.series.push(RoundPoint::from(report));
    }

    /// Adds the final copy, which started when the application was stopped at `stop`.
    pub fn record_final_copy(&mut self, report: &RoundReport, stop: f64) {
        self.final_bytes = report.bytes_sent;
        self.final_files = report.files_sent;
        self.downtime_s = report.end - stop;
        self.total_time_s = report.end;
        self.series.push(RoundPoint::from(report));
    }
}
