//! The application's writes: per-file write processes and the clock that merges them.
//!
//! Each file owns an independent, seeded stream of write times, so a file's writes do not depend
//! on the order in which the engine looks at files, and a clairvoyant reference can replay any
//! file's future by cloning its stream.

use alloc::vec::Vec;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

use crate::dataset::{Dataset, Kind, RecordedExtent, Writes};
use crate::delta::Extent;

mod ziggurat;
pub use ziggurat::exp1;

/// How a data set's "accessed with probability p" becomes a Poisson write rate λ (writes/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum RateMapping {
    /// λ = intensity × p: p is a relative write intensity.
    Linear,
    /// λ = −intensity × ln(1 − p): p is the chance of at least one write in every
    /// 1/intensity seconds (p = 1 is capped at 0.999999).
    PerWindow,
}

impl RateMapping {
    /// Names accepted on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RateMapping::Linear => "linear",
            RateMapping::PerWindow => "per-window",
        }
    }

    /// Parses a mapping name.
    pub fn from_name(name: &str) -> Option<RateMapping> {
        [RateMapping::Linear, RateMapping::PerWindow]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// How many bytes one write dirties; where in the file is uniform. Only a delta resend's cost
/// depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case", tag = "kind"))]
pub enum WriteBytes {
    /// The whole file (the paper's model: a written file is stale from end to end).
    #[default]
    Whole,
    /// A fixed count.
    Constant {
        /// Bytes per write.
        bytes: u64,
    },
    /// Uniform from `min` to `max` bytes, both included.
    Uniform {
        /// Fewest bytes.
        min: u64,
        /// Most bytes.
        max: u64,
    },
    /// Exponential with this mean, rounded, at least 1 byte.
    Exponential {
        /// Mean bytes per write.
        mean: u64,
    },
}

impl WriteBytes {
    /// The model's default, the paper's.
    pub fn is_whole(&self) -> bool {
        *self == WriteBytes::Whole
    }

    /// At least 1 byte a write, and a range's minimum not above its maximum.
    pub fn is_valid(&self) -> bool {
        match *self {
            WriteBytes::Whole => true,
            WriteBytes::Constant { bytes } => bytes >= 1,
            WriteBytes::Uniform { min, max } => 1 <= min && min <= max,
            WriteBytes::Exponential { mean } => mean >= 1,
        }
    }

    /// One write to a file of `size` bytes: a length from the distribution (1 to `size`), then
    /// an offset uniform over where it fits.
    pub fn draw(&self, rng: &mut Pcg64Mcg, size: u64) -> Extent {
        let len = match *self {
            WriteBytes::Whole => return Extent::WHOLE,
            WriteBytes::Constant { bytes } => bytes,
            WriteBytes::Uniform { min, max } => min + below(rng, max - min),
            WriteBytes::Exponential { mean } => libm::round(exp1(rng) * mean as f64) as u64,
        }
        .clamp(1, size.max(1));
        Extent {
            offset: below(rng, size.saturating_sub(len)),
            len,
        }
    }
}

impl core::fmt::Display for WriteBytes {
    /// The form [`crate::units::parse_write_bytes`] reads back.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            WriteBytes::Whole => f.write_str("whole"),
            WriteBytes::Constant { bytes } => write!(f, "{bytes}"),
            WriteBytes::Uniform { min, max } => write!(f, "{min}..{max}"),
            WriteBytes::Exponential { mean } => write!(f, "exp:{mean}"),
        }
    }
}

/// Uniform on 0..=n from one draw (a widening multiply: integer only, the same on every platform).
fn below(rng: &mut Pcg64Mcg, n: u64) -> u64 {
    use rand::RngCore;
    if n == u64::MAX {
        return rng.next_u64();
    }
    ((u128::from(rng.next_u64()) * u128::from(n + 1)) >> 64) as u64
}

/// Turns access probabilities into write rates, and says how much a write dirties.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WriteModel {
    /// How p maps to a rate.
    pub mapping: RateMapping,
    /// Global write intensity in writes per second (for a file with p = 1 under `Linear`).
    pub intensity: f64,
    /// Bytes one write dirties (the paper: the whole file).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "WriteBytes::is_whole")
    )]
    pub write_bytes: WriteBytes,
}

impl Default for WriteModel {
    /// The defaults chosen by the sweep in `docs/model.md`.
    fn default() -> Self {
        WriteModel {
            mapping: RateMapping::Linear,
            intensity: 0.01,
            write_bytes: WriteBytes::Whole,
        }
    }
}

impl WriteModel {
    /// The Poisson write rate of a file with access probability `p`.
    pub fn rate(&self, p: f64) -> f64 {
        match self.mapping {
            RateMapping::Linear => self.intensity * p,
            RateMapping::PerWindow => -self.intensity * libm::log(1.0 - p.min(0.999_999)),
        }
    }
}

/// What a replayed trace's files do after the trace ends (a migration may outlast it).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum TraceAfter {
    /// Nothing more: the application falls quiet (no assumption about what it would do).
    #[default]
    Quiet,
    /// Each file's recorded writes repeat, one trace duration apart (the k-th copy shifted by
    /// D + D + … k times), for ever or, with `until_s`, while before it. Creations, unlinks,
    /// renames and sizes do not repeat.
    Loop {
        /// Copies stop here, seconds (the recording itself is always replayed whole).
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        until_s: Option<f64>,
    },
}

impl TraceAfter {
    /// The named choices, in the order the command line lists them.
    pub const ALL: [TraceAfter; 2] = [TraceAfter::Quiet, TraceAfter::Loop { until_s: None }];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TraceAfter::Quiet => "quiet",
            TraceAfter::Loop { .. } => "loop",
        }
    }

    /// Parses a name (a loop without end).
    pub fn from_name(name: &str) -> Option<TraceAfter> {
        TraceAfter::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether this is the default.
    pub fn is_quiet(&self) -> bool {
        *self == TraceAfter::Quiet
    }
}

/// One file's future writes.
#[derive(Debug, Clone)]
pub enum WriteStream {
    /// Never written.
    Never,
    /// Poisson writes at `rate` per second.
    Poisson {
        /// Writes per second.
        rate: f64,
        /// The file's own generator.
        rng: Pcg64Mcg,
        /// Time of the next write.
        next: f64,
    },
    /// Recorded write times, replayed.
    Recorded {
        /// Sorted times.
        times: alloc::sync::Arc<[f64]>,
        /// Index of the next write, counting repeats.
        index: usize,
        /// How the times repeat.
        repeat: Repeat,
    },
}

/// How recorded write times repeat ([`TraceAfter::Loop`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeat {
    /// Seconds between copies (0: no copies).
    pub every: f64,
    /// Copies' writes only before this.
    pub until: f64,
    /// The current copy's shift: `every` added once per copy, as a loop of copies would.
    pub shift: f64,
}

impl Repeat {
    /// The recording once.
    pub const ONCE: Repeat = Repeat {
        every: 0.0,
        until: f64::INFINITY,
        shift: 0.0,
    };
}

impl WriteStream {
    fn poisson(rate: f64, seed: u64, file: u32) -> WriteStream {
        if !(rate > 0.0 && rate.is_finite()) {
            return WriteStream::Never;
        }
        // One independent stream per file: the run seed and the file id, mixed.
        let mixed = seed ^ (u64::from(file).wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = Pcg64Mcg::seed_from_u64(mixed);
        let next = exponential(&mut rng, rate);
        WriteStream::Poisson { rate, rng, next }
    }

    /// The time of the next write, if any.
    pub fn peek(&self) -> Option<f64> {
        match self {
            WriteStream::Never => None,
            WriteStream::Poisson { next, .. } => Some(*next),
            WriteStream::Recorded {
                times,
                index,
                repeat,
            } => match times.len() {
                n if n > 0 && *index >= n && repeat.every > 0.0 => {
                    Some(times[index % n] + repeat.shift).filter(|&t| t < repeat.until)
                }
                _ => times.get(*index).copied(),
            },
        }
    }

    /// Moves past the next write.
    pub fn advance(&mut self) {
        match self {
            WriteStream::Never => {}
            WriteStream::Poisson { rate, rng, next } => *next += exponential(rng, *rate),
            WriteStream::Recorded {
                times,
                index,
                repeat,
            } => {
                *index += 1;
                if repeat.every > 0.0 && *index % times.len().max(1) == 0 {
                    repeat.shift += repeat.every;
                }
            }
        }
    }

    /// The last write strictly before `until`, looking ahead on a copy (the clairvoyant's view).
    pub fn last_before(&self, until: f64) -> Option<f64> {
        let mut ahead = self.clone();
        let mut last = None;
        while let Some(t) = ahead.peek() {
            if t >= until {
                break;
            }
            last = Some(t);
            ahead.advance();
        }
        last
    }
}

fn exponential(rng: &mut Pcg64Mcg, rate: f64) -> f64 {
    exp1(rng) / rate
}

/// Where each write lands: as a trace recorded it, else drawn, from one seeded generator per
/// file apart from the write times' (so the times are the same whatever the extents).
#[derive(Debug, Clone)]
pub struct ExtentDraws {
    bytes: WriteBytes,
    rngs: Vec<Pcg64Mcg>,
    recorded: Vec<Vec<RecordedExtent>>,
    taken: Vec<usize>,
}

impl ExtentDraws {
    /// Extents for `dataset`'s writes: its recorded ones, and otherwise drawn under `bytes` from
    /// the run's `seed`.
    pub fn new(dataset: &Dataset, bytes: WriteBytes, seed: u64) -> ExtentDraws {
        let files = dataset.files.len();
        let rngs = (0..files as u64)
            .map(|id| {
                let mixed = seed ^ 0xE87E_17D0 ^ (id + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                Pcg64Mcg::seed_from_u64(mixed)
            })
            .collect();
        ExtentDraws {
            bytes,
            rngs,
            recorded: dataset.extents.clone(),
            taken: alloc::vec![0; if dataset.extents.is_empty() { 0 } else { files }],
        }
    }

    /// The next write to `file`, now `size` bytes.
    pub fn next(&mut self, file: u32, size: u64) -> Extent {
        let id = file as usize;
        let rng = &mut self.rngs[id];
        // Modulo: a looped trace's writes land where they did the first time.
        let recorded = self.recorded.get(id).filter(|e| !e.is_empty());
        let Some(&recorded) = recorded.and_then(|e| e.get(self.taken[id] % e.len())) else {
            return self.bytes.draw(rng, size);
        };
        self.taken[id] += 1;
        match recorded {
            RecordedExtent { len: None, .. } => Extent::WHOLE,
            RecordedExtent {
                offset: Some(offset),
                len: Some(len),
            } => Extent { offset, len },
            // A plain write() at a position the tracer does not follow: somewhere it fits.
            RecordedExtent {
                offset: None,
                len: Some(len),
            } => Extent {
                offset: below(rng, size.saturating_sub(len)),
                len,
            },
        }
    }
}

/// Every file's write stream. The engine pulls each file's writes lazily, up to the time it needs
/// that file's state: before sending it, and at every round end. No global event queue is needed,
/// since a file's status only changes through its own writes and its own transfers.
#[derive(Debug, Clone, Default)]
pub struct WriteClock {
    streams: Vec<WriteStream>,
    /// Each stream's next write time (∞ if none), kept flat so scanning every file at a round's
    /// end is a tight loop over numbers rather than a walk through the streams.
    next: Vec<f64>,
}

impl WriteClock {
    /// Builds the streams of a data set: recorded writes are replayed, synthetic ones drawn.
    pub fn new(dataset: &Dataset, model: &WriteModel, seed: u64) -> WriteClock {
        let streams = match &dataset.writes {
            Writes::Synthetic => dataset
                .files
                .iter()
                .enumerate()
                .map(|(id, file)| match file.kind {
                    Kind::ReadOnly => WriteStream::Never,
                    Kind::ReadWrite => {
                        WriteStream::poisson(model.rate(file.access_probability), seed, id as u32)
                    }
                })
                .collect(),
            Writes::Recorded(times) => times
                .iter()
                .map(|t| WriteStream::Recorded {
                    times: t.as_slice().into(),
                    index: 0,
                    repeat: Repeat::ONCE,
                })
                .collect::<Vec<_>>(),
        };
        let next = streams
            .iter()
            .map(|s| s.peek().unwrap_or(f64::INFINITY))
            .collect();
        WriteClock { streams, next }
    }

    /// Recorded writes repeat every `every` seconds (> 0), copies before `until`
    /// ([`TraceAfter::Loop`]). Call it before taking any write.
    pub fn repeat_recorded(&mut self, every: f64, until: f64) {
        for stream in &mut self.streams {
            if let WriteStream::Recorded { repeat, .. } = stream {
                *repeat = Repeat {
                    every,
                    until,
                    shift: 0.0,
                };
            }
        }
    }

    /// Pops every write of `file` due at or before `until`: how many, the first and the last.
    /// One call per file and catch-up rather than per write keeps a Poisson stream's loop tight.
    #[inline]
    pub fn take_until(&mut self, file: u32, until: f64) -> Option<(u32, f64, f64)> {
        (self.next[file as usize] <= until).then(|| self.take_due(file, until))
    }

    /// [`WriteClock::take_until`] for a file with a write due by `until`.
    fn take_due(&mut self, file: u32, until: f64) -> (u32, f64, f64) {
        let id = file as usize;
        let first = self.next[id];
        let (mut count, mut last) = (0u32, first);
        let stream = &mut self.streams[id];
        if let WriteStream::Poisson { rate, rng, next } = stream {
            // On copies, which stay in registers across the draws.
            let (rate, mut draws, mut at) = (*rate, rng.clone(), *next);
            while at <= until {
                (count, last) = (count + 1, at);
                at += exponential(&mut draws, rate);
            }
            (*rng, *next) = (draws, at);
        } else {
            while let Some(at) = stream.peek().filter(|&at| at <= until) {
                (count, last) = (count + 1, at);
                stream.advance();
            }
        }
        self.next[id] = stream.peek().unwrap_or(f64::INFINITY);
        (count, first, last)
    }

    /// [`WriteClock::take_until`] for every file with a write due, in id order, each reported
    /// to `wrote(file, count, first, last)`.
    pub fn take_all_until(&mut self, until: f64, mut wrote: impl FnMut(u32, u32, f64, f64)) {
        // A bit per file and 64 files at a time: a period's end finds few files due, and visits
        // only those.
        for lo in (0..self.next.len()).step_by(64) {
            let times = &self.next[lo..(lo + 64).min(self.next.len())];
            let mut due = (times.iter().enumerate())
                .fold(0u64, |due, (i, &t)| due | u64::from(t <= until) << i);
            while due != 0 {
                let file = (lo + due.trailing_zeros() as usize) as u32;
                due &= due - 1;
                let (count, first, last) = self.take_due(file, until);
                wrote(file, count, first, last);
            }
        }
    }

    /// A file's stream, for look-ahead.
    pub fn stream(&self, file: u32) -> &WriteStream {
        &self.streams[file as usize]
    }

    /// Appends a copy of `other`'s stream of `file` as it is now, as this clock's next file: a
    /// look-ahead by the ids of a run whose files join in another order than `other`'s.
    pub fn push_stream_of(&mut self, other: &WriteClock, file: u32) {
        self.streams.push(other.stream(file).clone());
        self.next.push(other.next[file as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Preset;

    #[test]
    fn poisson_rate_is_respected() {
        let mut stream = WriteStream::poisson(2.0, 7, 3);
        let mut count = 0;
        while stream.peek().unwrap() < 10_000.0 {
            stream.advance();
            count += 1;
        }
        // 20,000 expected; five standard deviations is about 700.
        assert!((19_300..20_700).contains(&count), "{count}");
    }

    #[test]
    fn clock_yields_each_files_writes_in_time_order() {
        let data = Preset::Fixed.dataset(0.01).unwrap();
        let model = WriteModel {
            mapping: RateMapping::Linear,
            intensity: 1.0,
            ..WriteModel::default()
        };
        let mut clock = WriteClock::new(&data, &model, 1);
        let mut n = 0;
        for (id, file) in data.files.iter().enumerate() {
            let mut last = 0.0;
            for until in [10.0, 25.0, 25.0, 50.0] {
                if let Some((count, first, latest)) = clock.take_until(id as u32, until) {
                    assert!(first >= last && first <= latest && latest <= until);
                    assert_eq!(file.kind, Kind::ReadWrite);
                    last = latest;
                    n += count;
                }
            }
        }
        // 50 files at 0.2/s and 50 at 0.8/s over 50 s: 2,500 expected.
        assert!((2200..2800).contains(&n), "{n}");
    }

    #[test]
    fn look_ahead_does_not_consume() {
        let stream = WriteStream::poisson(1.0, 1, 1);
        let last = stream.last_before(5.0);
        let first = stream.peek().unwrap();
        assert!(last.is_none_or(|l| l >= first && l < 5.0));
        assert_eq!(stream.peek(), Some(first));
    }

    fn recorded(times: &[f64], every: f64, until: f64) -> Vec<f64> {
        let data = Dataset::new(
            "t".into(),
            alloc::vec![crate::dataset::FileSpec {
                path: "/a".into(),
                size: 10,
                kind: Kind::ReadWrite,
                access_probability: 0.0,
            }],
            Writes::Recorded(alloc::vec![times.to_vec()]),
        )
        .unwrap();
        let mut clock = WriteClock::new(&data, &WriteModel::default(), 1);
        if every > 0.0 {
            clock.repeat_recorded(every, until);
        }
        let mut seen = Vec::new();
        let mut stream = clock.stream(0).clone();
        while let Some(t) = stream.peek().filter(|&t| t < 100.0) {
            seen.push(t);
            stream.advance();
        }
        seen
    }

    #[test]
    fn a_looped_recording_repeats_shifted_by_its_duration_up_to_the_limit() {
        // A 4 s recording with writes at 1 and 3: copies at +4 and +8 give 5, 7, 9; 11 is past
        // the limit of 10, and nothing comes after it.
        assert_eq!(recorded(&[1.0, 3.0], 4.0, 10.0), [1.0, 3.0, 5.0, 7.0, 9.0]);
        // A limit within the recording leaves it whole, with no copy.
        assert_eq!(recorded(&[1.0, 3.0], 4.0, 2.0), [1.0, 3.0]);
        // No end: copies go on (here up to the 100 s the test looks at).
        assert_eq!(recorded(&[1.0], 40.0, f64::INFINITY), [1.0, 41.0, 81.0]);
        assert!(recorded(&[], 4.0, f64::INFINITY).is_empty());
        // Shifts are added up copy by copy, as a loop over copies would: 0.1 + 0.1 + 0.1.
        let shifted = recorded(&[0.0], 0.1, 0.35);
        assert_eq!(shifted, [0.0, 0.1, 0.1 + 0.1, 0.1 + 0.1 + 0.1]);
    }

    #[test]
    fn per_window_mapping() {
        let model = WriteModel {
            mapping: RateMapping::PerWindow,
            intensity: 1.0,
            ..WriteModel::default()
        };
        // P(at least one write in 1 s) = 1 - exp(-rate) = p.
        let p = 0.8;
        assert!((1.0 - libm::exp(-model.rate(p)) - p).abs() < 1e-12);
        assert!(model.rate(1.0).is_finite());
    }
}
