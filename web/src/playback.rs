//! Plays simulations back on a shared clock, so that policies can be watched side by side.
//!
//! The core steps a whole round at a time ([`Simulation::step`]); a [`Lane`] replays the round's
//! events (transfer starts and ends, writes that dirty a clean copy) in time order as the clock
//! passes them, which gives every file's state at any instant. Rounds of different policies need
//! not line up (the baseline's iterations are self-timed), hence one clock for all lanes.
//!
//! A replayed trace's files appear and vanish at the times the trace says (the application's
//! view): the map shows a file from its creation and marks it gone from its unlink or
//! replacement on, whenever the migration's walks notice. Events name data set files (the
//! engine's ids differ once files join mid-run).

use std::cell::RefCell;
use std::rc::Rc;

use precopy_core::dataset::Kind;
use precopy_core::{EndReason, Metrics, Phase, PolicyKind, RoundReport, SimBuilder, Simulation};

use crate::config::Config;
use crate::map::FileMap;
use crate::palette::CellState;

/// One point per finished round, for the charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Round end, simulated seconds.
    pub time: f64,
    /// U at the round's end.
    pub unsent_bytes: u64,
    /// Cumulative pre-copy bytes.
    pub precopy_bytes: u64,
    /// Cumulative resent bytes.
    pub resent_bytes: u64,
    /// The round's phase.
    pub phase: Phase,
}

/// A file about to be sent, with why it is where it is in the order.
#[derive(Debug, Clone, PartialEq)]
pub struct NextUp {
    /// Its path.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// ReadOnly or ReadWrite.
    pub kind: Kind,
    /// The ordering key (update expectation E = p̂ × size for the proposed policy; NaN when the
    /// policy has none).
    pub key: f64,
    /// Sent before: this is a resend.
    pub resend: bool,
    /// Bytes it puts on the link: its size, or for a delta resend the blocks written since.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum What {
    // Order at equal times: a file is there before anything happens to it, a write before a
    // transfer that starts then (the core applies writes due by a transfer's start first), an
    // end before the next start, and a file vanishes last.
    Appear = 0,
    Dirty = 1,
    End = 2,
    Start = 3,
    Vanish = 4,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    t: f64,
    what: What,
    /// Data set index.
    file: u32,
    /// Index of the transfer in its round (transfers only).
    transfer: u32,
}

impl Event {
    fn at(t: f64, what: What, file: u32) -> Event {
        Event {
            t,
            what,
            file,
            transfer: 0,
        }
    }

    fn order(a: &Event, b: &Event) -> std::cmp::Ordering {
        a.t.total_cmp(&b.t)
            .then((a.what as u8).cmp(&(b.what as u8)))
            .then(a.transfer.cmp(&b.transfer))
    }
}

/// The round being played back.
#[derive(Debug, Clone)]
struct Round {
    report: RoundReport,
    /// The ordering key of each transfer.
    keys: Vec<f64>,
    /// Transfers started so far.
    started: usize,
}

/// One policy's simulation, played back.
pub struct Lane {
    kind: PolicyKind,
    sim: Simulation,
    map: Rc<RefCell<FileMap>>,
    events: Vec<Event>,
    next_event: usize,
    /// Files appearing and vanishing, by time (the whole run's, from the data set).
    lives: Vec<Event>,
    next_life: usize,
    round: Option<Round>,
    points: Rc<Vec<Point>>,
    precopy_bytes: u64,
    resent_bytes: u64,
    ended: Option<EndReason>,
    stopped_at: Option<f64>,
    metrics: Option<Rc<Metrics>>,
}

impl Lane {
    fn new(kind: PolicyKind, sim: Simulation) -> Lane {
        let map = FileMap::new(sim.dataset());
        let mut lives = Vec::new();
        for (file, &(appears, vanishes)) in sim.dataset().lives.iter().enumerate() {
            let file = file as u32;
            if appears > 0.0 {
                lives.push(Event::at(appears, What::Appear, file));
            }
            if vanishes.is_finite() {
                lives.push(Event::at(vanishes, What::Vanish, file));
            }
        }
        lives.sort_by(Event::order);
        Lane {
            kind,
            sim,
            map: Rc::new(RefCell::new(map)),
            events: Vec::new(),
            next_event: 0,
            lives,
            next_life: 0,
            round: None,
            points: Rc::new(Vec::new()),
            precopy_bytes: 0,
            resent_bytes: 0,
            ended: None,
            stopped_at: None,
            metrics: None,
        }
    }

    /// Whether resends are deltas.
    pub fn delta(&self) -> bool {
        self.sim.config().delta
    }

    /// The policy.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The file map (shared with its canvas).
    pub fn map(&self) -> Rc<RefCell<FileMap>> {
        self.map.clone()
    }

    /// Finished rounds.
    pub fn points(&self) -> Rc<Vec<Point>> {
        self.points.clone()
    }

    /// Why pre-copy ended, once the playback got there.
    pub fn ended(&self) -> Option<EndReason> {
        self.ended
    }

    /// When the application was stopped, once the playback got there.
    pub fn stopped_at(&self) -> Option<f64> {
        self.stopped_at
    }

    /// The run's metrics, once the final copy has been played back.
    pub fn metrics(&self) -> Option<Rc<Metrics>> {
        self.metrics.clone()
    }

    /// Whether everything has been played back.
    pub fn is_finished(&self) -> bool {
        self.metrics.is_some()
    }

    /// The β of the policy's end test, if it has one.
    pub fn beta(&self) -> Option<u32> {
        let uses_beta = matches!(
            self.kind,
            PolicyKind::Proposed
                | PolicyKind::Sweep
                | PolicyKind::ProbabilityOnly
                | PolicyKind::SizeOnly
                | PolicyKind::Random
        );
        uses_beta.then_some(self.sim.config().params.beta)
    }

    /// The round being played: (index, phase, start, end).
    pub fn round(&self) -> Option<(u32, Phase, f64, f64)> {
        self.round
            .as_ref()
            .map(|r| (r.report.index, r.report.phase, r.report.start, r.report.end))
    }

    /// The next `n` files of the current round, in order.
    pub fn next_up(&self, n: usize) -> Vec<NextUp> {
        let Some(round) = &self.round else {
            return Vec::new();
        };
        let files = &self.sim.dataset().files;
        round
            .report
            .transfers
            .iter()
            .zip(&round.keys)
            .skip(round.started)
            .take(n)
            .map(|(t, &key)| {
                let f = &files[self.sim.dataset_index(t.file)];
                NextUp {
                    path: f.path.clone(),
                    size: f.size,
                    kind: f.kind,
                    key,
                    resend: t.resend,
                    bytes: t.bytes,
                }
            })
            .collect()
    }

    /// Transfers still to start in the current round.
    pub fn remaining_in_round(&self) -> usize {
        self.round
            .as_ref()
            .map_or(0, |r| r.report.transfers.len() - r.started)
    }

    /// The end of the round being played (loading the first one if needed), or `None` when
    /// everything is played.
    fn boundary(&mut self) -> Option<f64> {
        if self.round.is_none() && !self.load_next() {
            return None;
        }
        self.round.as_ref().map(|r| r.report.end)
    }

    /// Steps the simulation and queues the new round's events; false when there is none.
    fn load_next(&mut self) -> bool {
        let Some(report) = self.sim.step() else {
            return false;
        };
        // Each transfer appears in the plan, in the same order (the engine walks the plan).
        let mut keys = Vec::with_capacity(report.transfers.len());
        let mut plan = report.plan.iter();
        for t in &report.transfers {
            let key = plan.find(|p| p.file == t.file).map_or(f64::NAN, |p| p.key);
            keys.push(key);
        }
        self.events.drain(..self.next_event);
        self.next_event = 0;
        let index = |file: u32| self.sim.dataset_index(file) as u32;
        for (i, t) in report.transfers.iter().enumerate() {
            let file = index(t.file);
            let transfer = i as u32;
            self.events.push(Event {
                transfer,
                ..Event::at(t.start, What::Start, file)
            });
            self.events.push(Event {
                transfer,
                ..Event::at(t.end, What::End, file)
            });
        }
        for d in &report.dirtied {
            self.events
                .push(Event::at(d.at, What::Dirty, index(d.file)));
        }
        self.events.sort_by(Event::order);
        self.round = Some(Round {
            report,
            keys,
            started: 0,
        });
        true
    }

    /// Applies the events due by `t`, the round's and the files' lives in time order.
    fn apply_until(&mut self, t: f64) {
        let mut map = self.map.borrow_mut();
        loop {
            let round = self.events.get(self.next_event).filter(|e| e.t <= t);
            let life = self.lives.get(self.next_life).filter(|e| e.t <= t);
            let e = match (round, life) {
                (Some(r), Some(l)) if Event::order(l, r).is_le() => *l,
                (Some(r), _) => *r,
                (None, Some(l)) => *l,
                (None, None) => break,
            };
            if matches!(e.what, What::Appear | What::Vanish) {
                self.next_life += 1;
            } else {
                self.next_event += 1;
            }
            // Nothing more happens to a file once it is gone.
            if map.state(e.file) == CellState::Gone {
                continue;
            }
            match e.what {
                What::Appear => map.set(e.file, CellState::Unsent),
                What::Vanish => map.set(e.file, CellState::Gone),
                What::Start => {
                    map.set(e.file, CellState::InFlight);
                    if let Some(round) = &mut self.round {
                        round.started = round.started.max(e.transfer as usize + 1);
                    }
                }
                // A copy written during its transfer stays dirty.
                What::End if map.state(e.file) == CellState::InFlight => {
                    map.set(e.file, CellState::Clean)
                }
                What::End => {}
                What::Dirty => map.set(e.file, CellState::Dirty),
            }
        }
    }

    /// Plays back to time `t`.
    fn advance_to(&mut self, t: f64) {
        while !self.is_finished() {
            let Some(end) = self.boundary() else {
                // The final copy was the last round: whatever is left is on the wire.
                self.apply_until(f64::INFINITY);
                self.metrics = Some(Rc::new(self.sim.metrics().clone()));
                break;
            };
            self.apply_until(t.min(end));
            if t < end {
                break;
            }
            self.finish_round();
        }
    }

    fn finish_round(&mut self) {
        let Some(round) = self.round.take() else {
            return;
        };
        let r = &round.report;
        if r.phase != Phase::Final {
            self.precopy_bytes += r.bytes_sent;
            self.resent_bytes += r.resent_bytes;
        }
        if let Some(reason) = r.ended {
            self.ended = Some(reason);
            self.stopped_at = Some(r.end);
            // The application is stopped: no file appears or vanishes any more.
            let due = self.lives.partition_point(|e| e.t <= r.end);
            self.lives.truncate(due);
        }
        Rc::make_mut(&mut self.points).push(Point {
            time: r.end,
            unsent_bytes: r.unsent_bytes,
            precopy_bytes: self.precopy_bytes,
            resent_bytes: self.resent_bytes,
            phase: r.phase,
        });
    }
}

/// Several policies on the same data set and configuration, on one clock.
pub struct Comparison {
    lanes: Vec<Lane>,
    clock: f64,
    dataset_name: String,
    files: usize,
    total_bytes: u64,
}

impl Comparison {
    /// Builds one simulation per policy of the configuration.
    pub fn new(config: &Config) -> Result<Comparison, String> {
        let dataset = config.dataset().map_err(|e| e.to_string())?;
        let (dataset_name, files, total_bytes) = (
            dataset.name.clone(),
            dataset.files.len(),
            dataset.total_bytes(),
        );
        let lanes = config
            .policies
            .iter()
            .map(|&kind| {
                SimBuilder::new(dataset.clone(), kind)
                    .config(config.sim)
                    .build()
                    .map(|sim| Lane::new(kind, sim))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<Lane>, _>>()?;
        let mut comparison = Comparison {
            lanes,
            clock: 0.0,
            dataset_name,
            files,
            total_bytes,
        };
        // Load each first round, so the order of what goes first shows before playing.
        for lane in &mut comparison.lanes {
            lane.boundary();
        }
        Ok(comparison)
    }

    /// The lanes, in the configuration's order.
    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The shared clock, simulated seconds.
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// The data set's name, file count and bytes.
    pub fn dataset(&self) -> (&str, usize, u64) {
        (&self.dataset_name, self.files, self.total_bytes)
    }

    /// Whether every lane has played to its end.
    pub fn is_done(&self) -> bool {
        self.lanes.iter().all(Lane::is_finished)
    }

    /// Moves the clock forward by `seconds` of simulated time.
    pub fn advance_by(&mut self, seconds: f64) {
        self.advance_to(self.clock + seconds);
    }

    fn advance_to(&mut self, t: f64) {
        for lane in &mut self.lanes {
            lane.advance_to(t);
        }
        self.clock = t;
        if self.is_done() {
            // Park the clock at the last lane's end rather than wherever the tick left it.
            self.clock = self
                .lanes
                .iter()
                .filter_map(|l| l.points.last().map(|p| p.time))
                .fold(0.0, f64::max);
        }
    }

    /// Moves the clock to the next round end of any lane.
    pub fn step_round(&mut self) {
        let next = self
            .lanes
            .iter_mut()
            .filter(|l| !l.is_finished())
            .filter_map(Lane::boundary)
            .fold(f64::INFINITY, f64::min);
        let target = if next.is_finite() {
            next.max(self.clock)
        } else {
            self.clock
        };
        self.advance_to(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Draft;
    use precopy_core::Status;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn small() -> Config {
        Draft {
            scale: "0.05".into(),
            policies: vec![PolicyKind::Baseline, PolicyKind::Proposed],
            ..Draft::default()
        }
        .validate()
        .unwrap()
    }

    /// Plays `config` round by round: at every round end the map agrees with the core (clean
    /// or in flight iff clean, for every file not gone), and the figures are the core's.
    fn plays_back_as_the_core_runs(config: &Config) -> Comparison {
        let mut cmp = Comparison::new(config).unwrap();
        let mut steps = 0;
        while !cmp.is_done() {
            cmp.step_round();
            steps += 1;
            assert!(steps < 10_000);
            for lane in &cmp.lanes {
                let map = lane.map.borrow();
                if let (false, Some(p)) = (map.has_lives(), lane.points.last()) {
                    if lane.round.is_none() || lane.is_finished() {
                        assert_eq!(map.unsent_bytes(), p.unsent_bytes);
                    }
                }
                for (id, f) in lane.sim.files().iter().enumerate() {
                    let shown = map.state(lane.sim.dataset_index(id as u32) as u32);
                    if lane.round.is_none() && shown != CellState::Gone {
                        let clean = matches!(shown, CellState::Clean | CellState::InFlight);
                        assert_eq!(clean, f.status == Status::Clean, "file {id}");
                    }
                }
            }
        }
        for lane in &cmp.lanes {
            let m = lane.metrics().unwrap();
            let again = SimBuilder::new(config.dataset().unwrap(), lane.kind)
                .config(config.sim)
                .build()
                .unwrap()
                .run();
            assert_eq!(*m, again);
            assert_eq!(lane.points.last().unwrap().precopy_bytes, m.precopy_bytes);
        }
        cmp
    }

    #[wasm_bindgen_test]
    fn playback_matches_the_core_at_round_ends() {
        let cmp = plays_back_as_the_core_runs(&small());
        for lane in cmp.lanes() {
            assert_eq!(lane.map.borrow().counts()[CellState::Clean as usize], 550);
        }
    }

    /// The hand-written version-2 trace of docs/trace-format.md at 2000 bit/s (a 1000-byte
    /// file takes 4 s): `/d/data.tmp` is created at 0.5 s, `/d/log` unlinked at 3.8 s, and
    /// `/d/data` replaced by the rename of `/d/data.tmp` over it at 6.5 s.
    fn lifetimes() -> Config {
        let mut draft = Draft {
            after: "quiet".into(),
            policies: vec![PolicyKind::Baseline, PolicyKind::Proposed],
            ..Draft::default()
        };
        let text = include_str!("../../crates/precopy-core/tests/golden/lifetimes.jsonl");
        draft.import("lifetimes.jsonl", text).unwrap();
        let mut config = draft.validate().unwrap();
        config.sim.bandwidth_bps = 2000.0;
        config.sim.period_s = 2.0;
        config
    }

    #[wasm_bindgen_test]
    fn files_appear_and_vanish_in_the_lanes() {
        let config = lifetimes();
        let dataset = config.dataset().unwrap();
        let index = |path: &str| dataset.files.iter().position(|f| f.path == path).unwrap() as u32;
        let (data, tmp, log) = (index("/d/data"), index("/d/data.tmp"), index("/d/log"));
        let mut cmp = Comparison::new(&config).unwrap();
        let states = |cmp: &Comparison, file: u32| -> Vec<CellState> {
            cmp.lanes()
                .iter()
                .map(|l| l.map.borrow().state(file))
                .collect()
        };
        assert_eq!(states(&cmp, tmp), [CellState::Absent; 2]);
        cmp.advance_by(0.55);
        assert_eq!(states(&cmp, tmp), [CellState::Unsent; 2]);
        assert!(!states(&cmp, log).contains(&CellState::Gone));
        cmp.advance_by(3.5);
        assert_eq!(states(&cmp, log), [CellState::Gone; 2]);
        assert!(!states(&cmp, data).contains(&CellState::Gone));
        cmp.advance_by(3.0);
        assert_eq!(states(&cmp, data), [CellState::Gone; 2]);
        for lane in cmp.lanes() {
            let map = lane.map.borrow();
            assert!(map.has_lives());
            assert_eq!(map.counts()[CellState::Gone as usize], 2);
            assert_eq!(map.counts()[CellState::Absent as usize], 0);
        }

        let cmp = plays_back_as_the_core_runs(&config);
        for lane in cmp.lanes() {
            // The renamed file and the ReadOnly one arrive; the two that went never come back.
            let counts = lane.map.borrow().counts();
            assert_eq!(counts[CellState::Clean as usize], 2, "{:?}", lane.kind());
            assert_eq!(counts[CellState::Gone as usize], 2, "{:?}", lane.kind());
        }
    }

    #[wasm_bindgen_test]
    fn the_clock_moves_lanes_independently() {
        let mut cmp = Comparison::new(&small()).unwrap();
        cmp.advance_by(1.99);
        assert_eq!(cmp.clock(), 1.99);
        // 200 KB take 0.08 s at 20 Mbps: 25 transfers started by 1.99 s, 24 of them done.
        let proposed = &cmp.lanes[1];
        let counts = proposed.map.borrow().counts();
        assert_eq!(counts[CellState::InFlight as usize], 1);
        assert_eq!(counts[CellState::Clean as usize], 24);
        assert_eq!(proposed.round().unwrap().1, Phase::ReadOnly);
        assert!(proposed.next_up(3).iter().all(|n| n.kind == Kind::ReadOnly));
    }
}
