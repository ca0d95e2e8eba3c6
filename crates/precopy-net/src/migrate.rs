//! The pre-copy loop of a real migration, driven by the core's policy exactly as the simulator
//! drives it (`precopy_core::sim`): each round the policy plans with last round's write counts,
//! transfers start in its order until the period ends, and its end test (or U = 0, or the safety
//! cap) ends pre-copy.
//!
//! What is migrated is a set of trees ([`Roots`]), walked again at every round: files created
//! meanwhile join the set as unsent ReadWrite files, deleted ones leave it, and every size is the
//! current one. At the stop the roots are walked once more, the files not cleanly at the
//! destination are sent, and the destination is made equal to that tree (directories, symlinks,
//! metadata, deletions) and checked against it, entry by entry, contents read again. Only then is
//! the application resumed, left stopped, or restarted at the destination — never restarted on a
//! copy known to differ.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use precopy_core::dataset::Writes;
use precopy_core::engine::{self, Engine, Stage};
use precopy_core::policy;
use precopy_core::{
    Dataset, FileSpec, Kind, Metrics, PolicyKind, PolicyParams, RoundReport, SimConfig, Status,
};
use precopy_proto::{Entry, Node, NodeKind, RelPath};
use serde::Serialize;

use super::app::Application;
use super::clock::{Clock, MonotonicClock};
use super::link::Link;
use super::monitor::Monitor;
use super::stamp::Stamp;
use super::store::hash_reader;
use super::transport::{Restarted, SendError, Sent, Transport, Verdict};
use super::tree::{shown, EntryKind, Roots, Scan};
use super::wire::WireError;

/// What to do with the application once its files are at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// Resume it at the source (for testing).
    Resume,
    /// Leave it stopped at the source.
    Stop,
    /// Kill it at the source and start the same command at the destination, paths mapped.
    Restart,
}

/// The migration's parameters.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    /// Policy.
    pub policy: PolicyKind,
    /// Its parameters.
    pub params: PolicyParams,
    /// Monitoring period, seconds.
    pub period_s: f64,
    /// Safety cap on pre-copy rounds.
    pub max_rounds: u32,
    /// Token-bucket limit, bits per second.
    pub bwlimit_bps: Option<f64>,
    /// How often the monitor is polled, seconds.
    pub poll_s: f64,
    /// How long to keep trying to reconnect.
    pub reconnect: Duration,
    /// What to do afterwards.
    pub then: Then,
    /// Leave FIFOs, sockets and device files out (named) instead of failing.
    pub skip_special: bool,
    /// Seed of the policy's own randomness (the random ablation), as in the simulator.
    pub seed: u64,
}

/// What was measured beyond the simulator's metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// From stopping the application until it runs again (resumed at the source or restarted
    /// at the destination), or, left stopped, until the destination was found equal; seconds.
    pub downtime_s: f64,
    /// Its parts.
    pub downtime: Downtime,
    /// Hashing the manifest and the receiver's check, seconds (the application stays stopped).
    pub verify_s: f64,
    /// How long the command run before the stop took, seconds (the application ran meanwhile).
    pub before_stop_s: f64,
    /// Files the manifest check read and hashed again at the source; the others had the stamps
    /// they were sent with and kept those hashes.
    pub reread: Reread,
    /// What the stop-time tree held.
    pub tree: TreeCount,
    /// The walks of the roots (one per round, one at the stop): what following a changing tree
    /// costs.
    pub walks: Walks,
    /// Bytes written to the network, framing included.
    pub wire_bytes: u64,
    /// Mean rate while sending, bits per second.
    pub send_rate_bps: f64,
    /// Reconnections.
    pub reconnects: u32,
    /// Transfers sent as deltas.
    pub deltas: u32,
    /// Deltas the receiver could not apply (its copy was not the base): resent whole.
    pub refused_deltas: u32,
    /// File bytes per second moved by whole sends (acknowledgement to acknowledgement), where
    /// measured. Once the application is stopped a resend goes the faster way.
    pub whole_rate_bytes_per_s: Option<f64>,
    /// The same for deltas.
    pub delta_rate_bytes_per_s: Option<f64>,
    /// Files the destination still lacked after the final copy, sent again before the check.
    pub repaired_files: u32,
    /// Entries left out (`--skip-special`): FIFOs, sockets, device files.
    pub skipped: Vec<String>,
    /// Directories the application wrote into that hold files it never opened (not migrated
    /// unless named with `--rw`), with how many.
    pub unopened: Vec<String>,
    /// The receiver's verdict.
    pub verdict: String,
    /// What happened to the application.
    pub then: Then,
    /// Its pid at the destination, after a restart.
    pub restarted_pid: Option<u32>,
}

/// The downtime's parts, seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Downtime {
    /// Walking the trees and sending what was not cleanly at the destination.
    pub final_copy_s: f64,
    /// Making the destination's trees equal and checking them.
    pub verify_s: f64,
    /// Resuming the application, or restarting it at the destination until it runs there.
    pub restart_s: f64,
    /// After a restart, how long the destination watched it run before answering (`receive
    /// --restart-grace`): a check, not downtime (the application was running).
    pub restart_check_s: f64,
}

/// Walks of the roots and their cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Walks {
    /// How many.
    pub count: u32,
    /// Entries the last one found.
    pub entries: u32,
    /// Seconds, all of them.
    pub total_s: f64,
    /// Seconds, the longest.
    pub max_s: f64,
}

/// Entries of the stop-time tree, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TreeCount {
    /// Regular files.
    pub files: u32,
    /// Directories.
    pub dirs: u32,
    /// Symlinks.
    pub symlinks: u32,
    /// Bytes in the files.
    pub bytes: u64,
}

/// Files, and their bytes, read again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Reread {
    /// Files.
    pub files: u32,
    /// Their bytes.
    pub bytes: u64,
}

/// A finished migration.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The simulator's metrics, measured (downtime is the measured one).
    pub metrics: Metrics,
    /// The rest of what was measured.
    pub measured: Measured,
    /// The simulator's prediction for the same files and the writes the monitor saw.
    pub prediction: Option<Metrics>,
}

/// A file the migration knows, by id (ids are never reused for another path).
#[derive(Debug, Clone)]
struct Tracked {
    path: PathBuf,
    rel: Vec<u8>,
    /// Whether the last walk found it (a regular file at this path).
    present: bool,
    /// Its stamp when last sent or walked, whichever was later: a walk that finds another one
    /// knows the file changed, even where the write monitor saw nothing (a rename over it).
    stamp: Option<Stamp>,
    /// When the migration found it and found it gone, for the prediction.
    life: Life,
}

/// A file's life as the migration saw it, seconds (as the simulator's `SimBuilder::life`).
#[derive(Debug, Clone, Copy)]
struct Life {
    /// The start of the walk that found it (0: there from the start).
    appeared: f64,
    /// When a walk (its start) or a transfer found it gone; ∞ while present. A file that came
    /// back counts as never gone (the simulator gives a file one life).
    vanished: f64,
    /// Its size then.
    size: u64,
}

/// One migration in progress: the core's [`Engine`] driven by the clock, the write monitor, the
/// walks of the roots and the link to the destination. A real one reads the monotonic clock and
/// sends over TCP ([`Migration::new`]); under test the same loop runs in simulated time
/// ([`Migration::with`], `simulated`).
pub struct Migration<'m, L: Link = Transport, C: Clock = MonotonicClock> {
    config: MigrateConfig,
    monitor: &'m mut dyn Monitor,
    app: &'m mut dyn Application,
    transport: L,
    clock: C,
    engine: Engine,
    roots: Roots,
    tracked: Vec<Tracked>,
    by_rel: HashMap<Vec<u8>, usize>,
    sent: Vec<Option<Sent>>,
    write_times: Vec<Vec<f64>>,
    last_poll: f64,
    /// How long the last poll of the monitor took, seconds.
    poll_cost: f64,
    busy_s: f64,
    on_round: &'m mut dyn FnMut(&RoundReport, &Metrics),
    /// Files the application opened since last asked (live identification goes on all along).
    discover: Option<&'m mut dyn FnMut() -> Vec<(PathBuf, Kind)>>,
    before_stop: Option<&'m mut dyn FnMut() -> Result<()>>,
    before_stop_s: f64,
    walks: Walks,
    /// When the last walk of the roots started.
    walked_at: f64,
}

impl<'m> Migration<'m> {
    /// Lays out a migration of the files under `roots` as they are now, over `transport`, timed
    /// by the monotonic clock from now. FIFOs, sockets and device files under the roots are an
    /// error unless the configuration skips them.
    pub fn new(
        config: MigrateConfig,
        roots: Roots,
        monitor: &'m mut dyn Monitor,
        app: &'m mut dyn Application,
        transport: Transport,
        on_round: &'m mut dyn FnMut(&RoundReport, &Metrics),
    ) -> Result<Migration<'m>> {
        let clock = MonotonicClock::start();
        Migration::with(config, roots, monitor, app, transport, clock, on_round)
    }
}

impl<'m, L: Link, C: Clock> Migration<'m, L, C> {
    /// [`Migration::new`] over any link, timed by any clock (which reads 0 at the start).
    pub fn with(
        config: MigrateConfig,
        roots: Roots,
        monitor: &'m mut dyn Monitor,
        app: &'m mut dyn Application,
        transport: L,
        clock: C,
        on_round: &'m mut dyn FnMut(&RoundReport, &Metrics),
    ) -> Result<Migration<'m, L, C>> {
        let scan = roots.scan().context("walking the files to migrate")?;
        special_check(&scan, config.skip_special)?;
        let policy = policy::build(config.policy, &config.params, 0, config.seed);
        let metrics = Metrics::new(
            policy.name(),
            &format!("pid {}", app.pid()),
            config.bwlimit_bps.unwrap_or(0.0),
            config.seed,
            0,
            0,
        );
        let engine = Engine::new(
            policy,
            Vec::new(),
            config.period_s,
            config.max_rounds,
            metrics,
        );
        let mut migration = Migration {
            config,
            monitor,
            app,
            transport,
            clock,
            engine,
            roots,
            tracked: Vec::new(),
            by_rel: HashMap::new(),
            sent: Vec::new(),
            write_times: Vec::new(),
            last_poll: 0.0,
            poll_cost: 0.0,
            busy_s: 0.0,
            on_round,
            discover: None,
            before_stop: None,
            before_stop_s: 0.0,
            walks: Walks::default(),
            walked_at: 0.0,
        };
        migration.follow(&scan, true);
        if migration.tracked.is_empty() {
            bail!("no files to migrate: the roots hold no regular file");
        }
        let (files, total) = (migration.tracked.len(), migration.engine.unsent_bytes());
        let metrics = migration.engine.metrics_mut();
        metrics.files = files as u32;
        metrics.total_bytes = total;
        Ok(migration)
    }

    /// Files the application opens later join the migration (`discover` yields them).
    pub fn discovering(mut self, discover: &'m mut dyn FnMut() -> Vec<(PathBuf, Kind)>) -> Self {
        self.discover = Some(discover);
        self
    }

    /// `hook` runs once pre-copy has ended, followed by one more pre-copy round, then the stop (a
    /// database asked to checkpoint starts at the destination with little to recover, and what
    /// the checkpoint wrote is sent while it runs); if it fails, nothing is stopped and the
    /// migration ends there.
    pub fn before_stop(mut self, hook: &'m mut dyn FnMut() -> Result<()>) -> Self {
        self.before_stop = Some(hook);
        self
    }

    fn now(&self) -> f64 {
        self.clock.now()
    }

    /// Walks the roots, after adding the files the application opened since the last walk.
    fn scan(&mut self) -> Result<Scan> {
        if let Some(discover) = self.discover.as_mut() {
            for (path, kind) in discover() {
                if path.is_file() {
                    self.roots.add_file(path, kind);
                }
            }
        }
        let started = self.now();
        self.walked_at = started;
        let scan = self.roots.scan().context("walking the files to migrate")?;
        let took = self.now() - started;
        self.walks.count += 1;
        self.walks.entries = scan.entries.len() as u32;
        self.walks.total_s += took;
        self.walks.max_s = self.walks.max_s.max(took);
        Ok(scan)
    }

    /// The link rate the policy plans with: the limit, else what has been measured.
    fn bandwidth(&self) -> f64 {
        match self.config.bwlimit_bps {
            Some(bps) => bps,
            None if self.busy_s > 0.05 => self.transport.written() as f64 * 8.0 / self.busy_s,
            None => 1e9,
        }
    }

    /// Runs the whole migration.
    pub fn run(mut self) -> Result<Outcome> {
        self.precopy()?;
        if let Some(hook) = self.before_stop.as_mut() {
            let started = self.clock.now();
            hook()?;
            self.before_stop_s = self.clock.now() - started;
            // What the hook had the application write goes while it still runs.
            self.engine.one_more_round();
            self.precopy()?;
        }
        self.app.stop().context("stopping the application")?;
        let result = self.final_copy();
        if result.is_err() && self.config.then != Then::Stop {
            // Nothing is lost at the source: let the application go on there.
            let _ = self.app.resume();
        }
        result
    }

    /// Takes in what a walk found: new files join (ReadWrite, unsent, unless `initial`: then
    /// of their root's kind), vanished ones leave, every size is brought up to date, and a file
    /// whose stamp changed since it was sent is dirty even if the monitor saw no write.
    fn follow(&mut self, scan: &Scan, initial: bool) {
        let now = self.now();
        let walked = if initial { 0.0 } else { self.walked_at };
        let mut seen = vec![false; self.tracked.len()];
        // Files this walk did not find where they were, by inode: a new path may be one of them.
        let moved_from: HashMap<(u64, u64), usize> = (0..self.tracked.len())
            .filter(|&id| self.tracked[id].present)
            .filter(|&id| {
                scan.entries
                    .get(&self.tracked[id].rel)
                    .is_none_or(|e| e.kind != EntryKind::File)
            })
            .filter_map(|id| Some((self.sent[id]?.observed.inode(), id)))
            .collect();
        for (rel, entry) in &scan.entries {
            if entry.kind != EntryKind::File {
                continue;
            }
            let Some(&id) = self.by_rel.get(rel) else {
                let kind = if initial {
                    entry.access
                } else {
                    Kind::ReadWrite
                };
                let renamed = moved_from
                    .get(&entry.stamp.inode())
                    .copied()
                    .filter(|&old| self.is_clean_copy_of(old, &entry.stamp));
                let id = match renamed {
                    Some(old) => self.renamed(old, rel, entry.size(), kind, walked),
                    None => {
                        self.sent.push(None);
                        self.engine.add_file(entry.size(), kind) as usize
                    }
                };
                self.tracked.push(Tracked {
                    path: entry.path.clone(),
                    rel: rel.clone(),
                    present: true,
                    stamp: Some(entry.stamp),
                    life: Life {
                        appeared: walked,
                        vanished: f64::INFINITY,
                        size: 0,
                    },
                });
                self.by_rel.insert(rel.clone(), id);
                self.write_times.push(Vec::new());
                self.monitor.watch(id, &entry.path);
                continue;
            };
            seen[id] = true;
            let tracked = &mut self.tracked[id];
            if !tracked.present {
                tracked.present = true;
                tracked.stamp = Some(entry.stamp);
                tracked.life.vanished = f64::INFINITY;
                self.monitor.watch(id, &entry.path);
                self.engine.restore_file(id as u32, entry.size());
                continue;
            }
            if tracked.stamp != Some(entry.stamp) {
                tracked.stamp = Some(entry.stamp);
                self.engine.on_lost(id as u32, now);
            }
            self.engine.set_size(id as u32, entry.size());
        }
        for (id, was_seen) in seen.into_iter().enumerate() {
            if !was_seen && self.tracked[id].present {
                self.vanished(id, walked);
            }
        }
    }

    /// Whether the destination holds file `id` as it is now at `stamp` (renamed, not written).
    fn is_clean_copy_of(&self, id: usize, stamp: &Stamp) -> bool {
        self.engine.files()[id].status == Status::Clean
            && self.sent[id].is_some_and(|sent| sent.observed.same_content_moved(stamp))
    }

    /// File `old` was renamed to `rel`, its content unchanged: the destination renames its copy
    /// too, and the new file joins clean. Returns its id (its `Tracked` is the caller's).
    fn renamed(&mut self, old: usize, rel: &[u8], size: u64, kind: Kind, at: f64) -> usize {
        let from = RelPath::new(&self.tracked[old].rel).expect("checked by the walk");
        let to = RelPath::new(rel).expect("checked by the walk");
        // No answer is awaited: a broken link shows at the next transfer, and a copy that did
        // not follow at the stop-time check.
        let _ = self.transport.rename(from, to);
        let sent = self.sent[old].map(|sent| Sent {
            // The rename changed the ctime: the stop-time hash reads the file again.
            stamp: None,
            ..sent
        });
        self.vanished(old, at);
        self.sent.push(sent);
        self.engine.add_clean_file(size, kind) as usize
    }

    /// The file is gone, found so `at`: nothing of it is left to send (the destination's copy
    /// goes at the stop).
    fn vanished(&mut self, id: usize, at: f64) {
        self.tracked[id].life.vanished = at;
        self.tracked[id].life.size = self.engine.files()[id].size;
        self.tracked[id].present = false;
        self.tracked[id].stamp = None;
        self.sent[id] = None;
        self.engine.remove_file(id as u32);
    }

    fn precopy_round(&mut self) -> Result<RoundReport> {
        let start = self.now();
        self.engine.begin_round(start);
        let bandwidth = self.bandwidth();
        self.engine.plan(context(&*self.monitor, start, bandwidth));
        loop {
            self.observe(false)?;
            let now = self.now();
            let Some(file) = self.engine.candidate(now) else {
                break;
            };
            // Writes that came before the transfer must not make the new copy look stale.
            let seen = self
                .monitor
                .poll_file(file as usize)
                .context("polling the write monitor")?;
            self.write_hit(file as usize, seen, now);
            if self.engine.should_send(file) {
                self.send(file as usize)?;
            }
        }
        // As in the simulator, a period lasts its length even when nothing is left to send:
        // the writes it sees are the next plan's counts.
        let end = self.engine.round_end(self.now());
        while self.now() < end {
            let until = (self.now() + self.config.poll_s).min(end);
            self.clock.wait_until(until);
            self.observe(false)?;
        }
        self.observe(true)?;
        // The walk comes before the end test, as in the simulator: files made during the round
        // are pending for it.
        let scan = self.scan()?;
        self.follow(&scan, false);
        let (now, bandwidth) = (self.now(), self.bandwidth());
        Ok(self
            .engine
            .end_round(context(&*self.monitor, now, bandwidth)))
    }

    /// Pre-copy rounds until the engine ends pre-copy.
    fn precopy(&mut self) -> Result<()> {
        while self.engine.stage() == Stage::PreCopy {
            let report = self.precopy_round()?;
            (self.on_round)(&report, self.engine.metrics());
        }
        Ok(())
    }

    /// Polls the monitor (if due, or if `force`): counts writes and marks clean copies dirty.
    /// Also notices an application that has exited, and the receiver's errors.
    fn observe(&mut self, force: bool) -> Result<()> {
        let now = self.now();
        // Polling many files costs time the transfer needs: at most a twentieth of it.
        let interval = self.config.poll_s.max(20.0 * self.poll_cost);
        if !force && now - self.last_poll < interval {
            return Ok(());
        }
        self.last_poll = now;
        if let Some(status) = self.app.exited() {
            let (metrics, report) = (self.engine.metrics(), self.engine.report());
            bail!(
                "the application (pid {}) exited during pre-copy ({status}) after {:.1} s, in \
                 round {}: there is nothing left to migrate; {} files were pre-copied ({} bytes), \
                 the destination may hold a partial set of them",
                self.app.pid(),
                now,
                self.engine.round() + 1,
                metrics.precopy_files + report.map_or(0, |r| r.files_sent),
                metrics.precopy_bytes + report.map_or(0, |r| r.bytes_sent),
            );
        }
        let mut seen = vec![0; self.tracked.len()];
        self.monitor
            .poll(&mut seen)
            .context("polling the write monitor")?;
        self.poll_cost = self.now() - now;
        for (id, &count) in seen.iter().enumerate() {
            self.write_hit(id, count, now);
        }
        if let Err(e) = self.transport.drain() {
            self.recover(e)?;
        }
        self.take_refused();
        Ok(())
    }

    /// Files whose delta the receiver could not apply have to go again (whole).
    fn take_refused(&mut self) {
        let now = self.now();
        for id in self.transport.take_refused() {
            self.engine.on_lost(id as u32, now);
        }
    }

    /// `count` writes (if any) to a present file, seen at `at`.
    fn write_hit(&mut self, id: usize, count: u32, at: f64) {
        if count > 0 && self.tracked[id].present {
            self.engine.on_write(id as u32, count, at);
            // Each write once: the prediction's policy must see the counts this one sees.
            (self.write_times[id]).extend(std::iter::repeat_n(at, count as usize));
        }
    }

    /// Sends one file that needs it, reconnecting as often as the link drops. A file found
    /// gone (or no longer a regular file) leaves the set: the stop-time walk settles it.
    fn send(&mut self, id: usize) -> Result<()> {
        let begin = self.now();
        let (rel, path) = (self.tracked[id].rel.clone(), self.tracked[id].path.clone());
        let sent = loop {
            match self.transport.send_file(id, &rel, &path) {
                Ok(sent) => break sent,
                Err(SendError::Wire(e)) => self.recover(e)?,
                Err(e @ SendError::Source { .. }) => return Err(e.into()),
            }
        };
        let end = self.now();
        self.busy_s += end - begin;
        let Some(mut sent) = sent else {
            self.vanished(id, begin);
            return Ok(());
        };
        // Read while the application is stopped: no write of its can follow within the stamp's
        // tick, so the stamp vouches however recent the file's last write (the stop-time manifest
        // then need not read it again).
        if self.engine.stage() == Stage::FinalCopy && sent.observed.size() == sent.size {
            sent.stamp = Some(sent.observed);
        }
        self.engine
            .on_sent(id as u32, sent.size, sent.bytes, begin, end);
        self.sent[id] = Some(sent);
        self.tracked[id].stamp = Some(sent.observed);
        Ok(())
    }

    /// After a connection error: reconnect if it was the link, then ask the receiver which clean
    /// files it holds verified; the others are dirty again.
    fn recover(&mut self, error: WireError) -> Result<()> {
        let error = self.transport.explain(error);
        if !error.is_transient() {
            return Err(anyhow!(error).context("the receiver refused the migration"));
        }
        loop {
            self.transport
                .reconnect(self.config.reconnect)
                .with_context(|| format!("reconnecting after: {error}"))?;
            let files = self.engine.files();
            let clean: Vec<(usize, Sent)> = (0..files.len())
                .filter(|&id| files[id].status == Status::Clean)
                .filter_map(|id| self.sent[id].map(|sent| (id, sent)))
                .collect();
            let entries: Vec<Entry<'_>> = clean
                .iter()
                .map(|&(id, sent)| Entry {
                    path: RelPath::new(&self.tracked[id].rel).expect("checked by the walk"),
                    size: sent.size,
                    hash: sent.hash,
                })
                .collect();
            let have = match self.transport.query(&entries) {
                Ok(have) => have,
                Err(e) if e.is_transient() => continue,
                Err(e) => return Err(e.into()),
            };
            let now = self.now();
            for (&(id, _), ok) in clean.iter().zip(have) {
                if !ok {
                    self.engine.on_lost(id as u32, now);
                }
            }
            return Ok(());
        }
    }

    /// The application is stopped: walk the trees, send what is not cleanly at the destination,
    /// make the destination equal to the walk and check it, then `--then`.
    fn final_copy(&mut self) -> Result<Outcome> {
        let stop = self.now();
        self.engine.begin_final(stop);
        self.transport.minimise_time();
        self.observe(true)?;
        let scan = self.scan().context("at the stop")?;
        let skipped = special_check(&scan, self.config.skip_special)?;
        self.follow(&scan, false);
        self.send_all_pending()?;
        let copied = self.now();
        let mut reread = Reread::default();
        let hashes = self.hash_files(&scan, &mut reread)?;
        let nodes = nodes(&scan, &hashes);
        let roots: Vec<Vec<u8>> = self.roots.outermost().map(|r| r.rel.clone()).collect();
        let roots: Vec<RelPath<'_>> = roots
            .iter()
            .map(|r| RelPath::new(r).expect("checked by the walk"))
            .collect();
        let equal = self.with_link(|t| t.mirror(&roots, &nodes))?;
        // The destination lacks what a write the monitor could not see changed (same size and
        // timestamp tick), or what it lost: send those, from the stopped source.
        let mut repaired = 0;
        for (node, ok) in nodes.iter().zip(equal) {
            if !ok && matches!(node.kind, NodeKind::File { .. }) {
                let id = self.by_rel[node.path.as_bytes()];
                self.engine.on_lost(id as u32, self.now());
                repaired += 1;
            }
        }
        self.send_all_pending()?;
        let verdict = self.with_link(|t| t.verify(&roots, &nodes))?;
        let checked = self.now();
        let verify_s = checked - copied;
        let report = self.engine.end_final(stop, checked);
        let present = self.tracked.iter().filter(|t| t.present).count() as u32;
        let metrics = self.engine.metrics_mut();
        metrics.files = present;
        metrics.total_bytes = tree_count(&scan).bytes;
        let verdict_text = describe(&verdict, &scan);
        if verdict.differing > 0 {
            (self.on_round)(&report, self.engine.metrics());
            bail!("the destination differs from the source: {verdict_text}");
        }
        let restarted = match self.config.then {
            Then::Resume => {
                self.app.resume().context("resuming the application")?;
                None
            }
            Then::Stop => None,
            Then::Restart => Some(self.restart()?),
        };
        let restart_check_s = restarted.map_or(0.0, |r| r.running.as_secs_f64());
        let restarted_pid = restarted.map(|r| r.pid);
        // A restarted application ran from when it was started, before the destination's check.
        let back = (self.now() - restart_check_s).max(checked);
        let metrics = self.engine.metrics_mut();
        metrics.downtime_s = back - stop;
        metrics.total_time_s = back;
        (self.on_round)(&report, self.engine.metrics());
        let bandwidth = self.bandwidth();
        let resend_rates = self.transport.resend_rates().rates();
        let measured = Measured {
            downtime_s: back - stop,
            downtime: Downtime {
                final_copy_s: copied - stop,
                verify_s: checked - copied,
                restart_s: back - checked,
                restart_check_s,
            },
            verify_s,
            before_stop_s: self.before_stop_s,
            reread,
            tree: tree_count(&scan),
            walks: self.walks,
            wire_bytes: self.transport.written(),
            send_rate_bps: bandwidth,
            reconnects: self.transport.reconnects(),
            deltas: self.transport.deltas().0,
            refused_deltas: self.transport.deltas().1,
            whole_rate_bytes_per_s: resend_rates.0,
            delta_rate_bytes_per_s: resend_rates.1,
            repaired_files: repaired,
            skipped,
            unopened: self
                .roots
                .unopened_neighbours()
                .into_iter()
                .map(|(dir, n)| format!("{} ({n} files)", dir.display()))
                .collect(),
            verdict: verdict_text,
            then: self.config.then,
            restarted_pid,
        };
        self.transport.bye();
        let mut metrics = self.engine.metrics().clone();
        metrics.bandwidth_bps = bandwidth;
        // The link carried file bytes compressed: the simulator's link carries them as well.
        let content = (metrics.precopy_bytes + metrics.final_bytes) as f64;
        let compress_ratio = (content / measured.wire_bytes.max(1) as f64).max(1.0);
        let (rate, ratio) =
            prediction_link(measured.whole_rate_bytes_per_s, bandwidth, compress_ratio);
        let prediction = predict(
            &self.config,
            &metrics.dataset,
            &self.prediction_files(),
            &self.write_times,
            rate,
            ratio,
            stop,
        );
        Ok(Outcome {
            metrics,
            measured,
            prediction,
        })
    }

    /// Runs a request that needs the link, reconnecting while the link (not the peer) fails.
    fn with_link<T>(
        &mut self,
        mut request: impl FnMut(&mut L) -> Result<T, WireError>,
    ) -> Result<T> {
        loop {
            match request(&mut self.transport) {
                Ok(answer) => return Ok(answer),
                Err(e) if e.is_transient() => {
                    self.transport
                        .reconnect(self.config.reconnect)
                        .context("reconnecting for the stop-time check")?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends every file not cleanly at the destination, and waits for all acknowledgements.
    fn send_all_pending(&mut self) -> Result<()> {
        loop {
            let pending: Vec<u32> = self.engine.pending().collect();
            for id in pending {
                self.send(id as usize)?;
            }
            match self.transport.wait_acks() {
                Ok(()) => {}
                Err(e) => self.recover(e)?,
            }
            self.take_refused();
            if self.engine.pending().next().is_none() {
                return Ok(());
            }
        }
    }

    /// Size and hash of every file of the stop-time walk (the application is stopped). A file
    /// whose stamp is still the one that vouched for what was sent is not read again.
    fn hash_files(&self, scan: &Scan, read: &mut Reread) -> Result<HashMap<Vec<u8>, Sent>> {
        use rayon::prelude::*;
        let files: Vec<(&Vec<u8>, &PathBuf)> = scan
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .map(|(rel, e)| (rel, &e.path))
            .collect();
        let (by_rel, sent) = (&self.by_rel, &self.sent);
        // On every core: the application is stopped while this runs.
        let hashed: Vec<(Vec<u8>, Sent, bool)> = files
            .par_iter()
            .map(|&(rel, path)| {
                let sent = by_rel.get(rel).and_then(|&id| sent[id]);
                current(path, sent.as_ref())
                    .map(|(now, was_read)| (rel.clone(), now, was_read))
                    .with_context(|| format!("hashing {} at the stop", path.display()))
            })
            .collect::<Result<_>>()?;
        let mut hashes = HashMap::with_capacity(hashed.len());
        for (rel, now, was_read) in hashed {
            if was_read {
                read.files += 1;
                read.bytes += now.size;
            }
            hashes.insert(rel, now);
        }
        Ok(hashes)
    }

    /// Every file the migration knew, for the simulator's prediction: its size at the stop (or
    /// when it vanished) and its life.
    fn prediction_files(&self) -> Vec<(Vec<u8>, Kind, Life)> {
        self.tracked
            .iter()
            .zip(self.engine.files())
            .map(|(t, f)| {
                let size = if t.present { f.size } else { t.life.size };
                (t.rel.clone(), f.kind, Life { size, ..t.life })
            })
            .collect()
    }

    fn restart(&mut self) -> Result<Restarted> {
        let (argv, cwd) = self
            .app
            .command()
            .context("reading the application's command")?;
        let identity = self
            .app
            .identity()
            .context("reading the application's user and environment")?;
        let cwd = precopy_proto::path::relative_of_absolute(&cwd).map_err(|e| {
            anyhow!(
                "cannot restart from working directory {}: {e}",
                String::from_utf8_lossy(&cwd)
            )
        })?;
        self.app
            .kill()
            .context("killing the application at the source")?;
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let identity = precopy_proto::Identity {
            uid: identity.uid,
            gid: identity.gid,
            groups: identity.groups.clone(),
            env: identity.env.iter().map(Vec::as_slice).collect(),
        };
        let restarted = self
            .transport
            .restart(RelPath::new(&cwd).expect("normalised"), identity, &args)
            .context("restarting at the destination (the application is not running anywhere)")?;
        Ok(restarted)
    }
}

/// What the policy is told at `now`, with the monitor's foresight if it has any.
fn context(monitor: &dyn Monitor, now: f64, bandwidth_bps: f64) -> engine::Context<'_> {
    engine::Context {
        future: monitor.foresight(),
        ..engine::Context::live(now, bandwidth_bps)
    }
}

/// Fails on FIFOs, sockets and device files under the roots unless they are to be skipped;
/// returns the skipped ones' paths.
fn special_check(scan: &Scan, skip: bool) -> Result<Vec<String>> {
    let named: Vec<String> = scan
        .special
        .values()
        .map(|e| match e.kind {
            EntryKind::Special(what) => format!("{} ({what})", e.path.display()),
            _ => unreachable!("only specials are listed"),
        })
        .collect();
    if !named.is_empty() && !skip {
        bail!(
            "cannot migrate {}: only files, directories and symlinks can be; leave such entries \
             out with --skip-special",
            named.join(", ")
        );
    }
    Ok(named)
}

/// The stop-time tree as manifest nodes, files with the hashes just taken.
fn nodes<'s>(scan: &'s Scan, hashes: &HashMap<Vec<u8>, Sent>) -> Vec<Node<'s>> {
    scan.entries
        .iter()
        .map(|(rel, e)| Node {
            path: RelPath::new(rel).expect("checked by the walk"),
            meta: e.meta,
            kind: match &e.kind {
                EntryKind::File => {
                    let sent = hashes[rel];
                    NodeKind::File {
                        size: sent.size,
                        hash: sent.hash,
                    }
                }
                EntryKind::Dir => NodeKind::Dir,
                EntryKind::Symlink(target) => NodeKind::Symlink { target },
                EntryKind::Special(_) => unreachable!("specials are listed apart"),
            },
        })
        .collect()
}

fn tree_count(scan: &Scan) -> TreeCount {
    let mut count = TreeCount::default();
    for entry in scan.entries.values() {
        match entry.kind {
            EntryKind::File => {
                count.files += 1;
                count.bytes += entry.size();
            }
            EntryKind::Dir => count.dirs += 1,
            EntryKind::Symlink(_) => count.symlinks += 1,
            EntryKind::Special(_) => {}
        }
    }
    count
}

/// Writes replayed beyond this many, the prediction is given up.
const MAX_REPLAYED_WRITES: usize = 1 << 24;

/// Replays the writes the monitor saw through the simulator with the same policy, period and
/// (measured or limited) bandwidth, files appearing and vanishing when the walks found them so.
/// The recording ends at the stop (`stop_s`), but a simulated pre-copy may last longer; a replay
/// that fell silent then would let U drain to 0 and predict no downtime at all. So the recording
/// is repeated (the application taken to write on as it did) until it covers the simulated
/// pre-copy.
fn predict(
    config: &MigrateConfig,
    name: &str,
    files: &[(Vec<u8>, Kind, Life)],
    writes: &[Vec<f64>],
    bandwidth_bps: f64,
    compress_ratio: f64,
    stop_s: f64,
) -> Option<Metrics> {
    let specs: Vec<FileSpec> = files
        .iter()
        .map(|(rel, kind, life)| FileSpec {
            path: shown(rel).into_owned(),
            size: life.size.max(1),
            kind: *kind,
            access_probability: 0.0,
        })
        .collect();
    // The data set's index of each file: it sorts them by path.
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by(|&a, &b| specs[a].path.cmp(&specs[b].path));
    let lives: Vec<(usize, f64, f64)> = (order.iter().enumerate())
        .map(|(index, &i)| (index, files[i].2.appeared, files[i].2.vanished))
        .filter(|&(_, appeared, vanished)| appeared > 0.0 || vanished.is_finite())
        .collect();
    let sim_config = SimConfig {
        bandwidth_bps,
        compress_ratio,
        period_s: config.period_s,
        max_rounds: config.max_rounds,
        params: config.params,
        // The random ablation's order; the writes are the recorded ones, not drawn.
        seed: config.seed,
        ..SimConfig::default()
    };
    // Nothing to repeat without writes, or without a recording span to repeat them over.
    let repeats = stop_s > 0.0 && writes.iter().any(|w| !w.is_empty());
    let mut horizon = 2.0 * stop_s;
    loop {
        let replayed = if repeats {
            repeated(writes, stop_s, horizon)?
        } else {
            writes.to_vec()
        };
        let dataset =
            Dataset::new(name.to_string(), specs.clone(), Writes::Recorded(replayed)).ok()?;
        let builder = precopy_core::SimBuilder::new(dataset, config.policy).config(sim_config);
        let builder = (lives.iter()).fold(builder, |b, &(index, appeared, vanished)| {
            b.life(index, appeared, vanished)
        });
        let metrics = builder.build().ok()?.run();
        if !repeats || metrics.precopy_time_s <= horizon {
            return Some(metrics);
        }
        horizon *= 4.0;
    }
}

/// The prediction's link: the rate (bits per second) and compression ratio it carries file
/// bytes at. Whole sends timed from acknowledgement to acknowledgement measured the rate,
/// compression included. Where they moved too little to be trusted: the rate the policy planned
/// with (bytes written over the time spent in sends, which misses what drains from the socket's
/// buffers while the sender waits: too high where rounds idle) and the compression seen.
fn prediction_link(
    whole_bytes_per_s: Option<f64>,
    planned_bps: f64,
    compress_ratio: f64,
) -> (f64, f64) {
    match whole_bytes_per_s {
        Some(rate) => (rate * 8.0, 1.0),
        None => (planned_bps, compress_ratio),
    }
}

/// Each file's write times in [0, `span`) and again shifted by `span`, 2 × `span`… up to
/// `horizon`, sorted; `None` if that would exceed [`MAX_REPLAYED_WRITES`].
fn repeated(writes: &[Vec<f64>], span: f64, horizon: f64) -> Option<Vec<Vec<f64>>> {
    let copies = (horizon / span).ceil() as usize;
    let total = writes.iter().map(Vec::len).sum::<usize>();
    if total.saturating_mul(copies) > MAX_REPLAYED_WRITES {
        return None;
    }
    let repeated = writes
        .iter()
        .map(|times| {
            let mut all: Vec<f64> = (0..copies)
                .flat_map(|k| times.iter().map(move |t| t + k as f64 * span))
                .filter(|&t| t < horizon)
                .collect();
            all.sort_by(f64::total_cmp);
            all
        })
        .collect();
    Some(repeated)
}

/// Size and hash of the file at `path` now: `sent`'s if the file still has the stamp that
/// vouched for what was sent, else read again (then `true`).
fn current(path: &Path, sent: Option<&Sent>) -> std::io::Result<(Sent, bool)> {
    if let Some(sent) = sent.filter(|s| s.stamp.is_some()) {
        if Stamp::of_path(path).ok() == sent.stamp {
            return Ok((*sent, false));
        }
    }
    // The walk found a file here and the application is stopped: anything else is an error.
    let file = super::tree::open_file(path)?.ok_or_else(|| {
        std::io::Error::other("no longer a regular file reachable without symlinks")
    })?;
    let meta = file.metadata()?;
    let hash = hash_reader(file)?;
    Ok((
        Sent {
            size: meta.len(),
            bytes: 0,
            hash,
            stamp: None,
            observed: Stamp::of(&meta),
        },
        true,
    ))
}

/// One line for a verdict.
fn describe(v: &Verdict, scan: &Scan) -> String {
    if v.differing == 0 {
        let count = tree_count(scan);
        return format!(
            "all {} entries equal the source ({} files, byte for byte; {} directories; {} \
             symlinks; mode, owner and modification time included)",
            v.files, count.files, count.dirs, count.symlinks
        );
    }
    let listed: Vec<String> = v
        .list
        .iter()
        .take(5)
        .map(|(p, r)| format!("{} ({})", OsStr::from_bytes(p).to_string_lossy(), r.name()))
        .collect();
    format!(
        "{} of {} entries differ: {}",
        v.differing,
        v.files,
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::RACY;

    /// What `Transport::send_file` records: the stamp before reading, then the hash.
    fn sent(path: &Path) -> Sent {
        let file = std::fs::File::open(path).unwrap();
        let (meta, stamp) = Stamp::before_read(&file).unwrap();
        Sent {
            size: meta.len(),
            bytes: meta.len(),
            hash: hash_reader(file).unwrap(),
            stamp,
            observed: Stamp::of(&meta),
        }
    }

    #[test]
    fn the_manifest_reads_only_files_whose_stamp_changed_since_sent() {
        let dir = tempfile::tempdir().unwrap();
        let same = dir.path().join("same");
        let rewritten = dir.path().join("rewritten");
        std::fs::write(&same, b"unchanged").unwrap();
        std::fs::write(&rewritten, b"old bytes").unwrap();
        std::thread::sleep(RACY + Duration::from_millis(50));
        let (same_sent, rewritten_sent) = (sent(&same), sent(&rewritten));
        std::fs::write(&rewritten, b"new bytes").unwrap();

        let (now, read) = current(&same, Some(&same_sent)).unwrap();
        assert_eq!(now.hash, same_sent.hash);
        // Not read where the stamp vouches (ext4, XFS…; `stamp` tests when it does).
        assert_eq!(read, same_sent.stamp.is_none());
        // Same size, written after it was sent: read again, the new hash.
        let (now, read) = current(&rewritten, Some(&rewritten_sent)).unwrap();
        assert!(read);
        assert_eq!(now.size, 9);
        assert_eq!(&now.hash, blake3::hash(b"new bytes").as_bytes());
        // Never sent: read.
        assert!(current(&same, None).unwrap().1);
    }

    #[test]
    fn the_prediction_carries_file_bytes_at_the_rate_whole_sends_were_acknowledged() {
        // 10 MB/s of file bytes acknowledged, compressed or not: 80 Mbit/s of file bytes.
        assert_eq!(prediction_link(Some(10e6), 120e6, 2.5), (80e6, 1.0));
        assert_eq!(prediction_link(None, 120e6, 2.5), (120e6, 2.5));
    }

    #[test]
    fn a_recording_is_repeated_up_to_the_horizon() {
        let writes = vec![vec![0.5, 1.5], vec![]];
        let replayed = repeated(&writes, 2.0, 7.0).unwrap();
        assert_eq!(replayed[0], [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]);
        assert!(replayed[1].is_empty());
        assert_eq!(repeated(&[vec![0.0; 1 << 20]], 1.0, 1e3), None);
    }

    /// The baseline's ten iterations outlast a recording of 3 s of a file written every 50 ms:
    /// replayed as recorded, the writes would stop, the file go clean and the downtime be 0 s.
    #[test]
    fn a_prediction_outlasting_the_recording_keeps_the_writes_going() {
        let life = Life {
            appeared: 0.0,
            vanished: f64::INFINITY,
            size: 1_000_000,
        };
        let files = [(b"hot".to_vec(), Kind::ReadWrite, life)];
        let writes = vec![(0..60).map(|i| f64::from(i) * 0.05).collect::<Vec<_>>()];
        let config = MigrateConfig {
            policy: PolicyKind::Baseline,
            params: PolicyParams::default(),
            period_s: 1.0,
            max_rounds: 1000,
            bwlimit_bps: Some(8e6),
            poll_s: 0.1,
            reconnect: Duration::from_secs(1),
            then: Then::Stop,
            skip_special: false,
            seed: 1,
        };
        let m = predict(&config, "test", &files, &writes, 8e6, 1.0, 3.0).unwrap();
        assert!(m.precopy_time_s > 3.0, "{}", m.precopy_time_s);
        assert_eq!(m.final_bytes, 1_000_000);
        assert!((m.downtime_s - 1.0).abs() < 1e-9, "{}", m.downtime_s);
    }
}
