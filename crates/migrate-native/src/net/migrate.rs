//! The pre-copy loop of a real migration, driven by the core's policy exactly as the simulator
//! drives it (`precopy_core::sim`): each round the policy plans with last round's write counts,
//! transfers start in its order until the period ends, and its end test (or U = 0, or the safety
//! cap) ends pre-copy. Then the application's tree is stopped, every file not cleanly at the
//! destination is sent, the destination's tree is checked against a manifest hashed at stop time,
//! and the application is resumed, left stopped, or restarted at the destination.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use precopy_core::dataset::Writes;
use precopy_core::metrics::{end_of_precopy, Dirtied, Transfer};
use precopy_core::policy::{self, FileView, Policy, Rounds, View};
use precopy_core::{
    Dataset, FileSpec, Metrics, Phase, PolicyKind, PolicyParams, RoundReport, SimConfig, Status,
};
use precopy_proto::{Entry, Reason, RelPath};
use serde::Serialize;

use super::app::App;
use super::monitor::{Monitor, WatchedFile};
use super::stamp::Stamp;
use super::store::hash_reader;
use super::transport::{SendError, Sent, Transport, Verdict};
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
}

/// What was measured beyond the simulator's metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// From stopping the application to the last file confirmed by the receiver, seconds.
    pub downtime_s: f64,
    /// Hashing the manifest and the receiver's check, seconds (the application stays stopped).
    pub verify_s: f64,
    /// Files the manifest check read and hashed again at the source; the others had the stamps
    /// they were sent with and kept those hashes.
    pub reread: Reread,
    /// Bytes written to the network, framing included.
    pub wire_bytes: u64,
    /// Mean rate while sending, bits per second.
    pub send_rate_bps: f64,
    /// Reconnections.
    pub reconnects: u32,
    /// Files the manifest check found different and that were sent again (then checked again).
    pub repaired_files: u32,
    /// The receiver's verdict.
    pub verdict: String,
    /// What happened to the application.
    pub then: Then,
    /// Its pid at the destination, after a restart.
    pub restarted_pid: Option<u32>,
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

/// One migration in progress.
pub struct Migration<'m> {
    config: MigrateConfig,
    monitor: &'m mut dyn Monitor,
    app: &'m mut App,
    transport: Transport,
    policy: Box<dyn Policy>,
    files: Vec<FileView>,
    sent: Vec<Option<Sent>>,
    counts: Vec<u32>,
    last_write: Vec<f64>,
    write_times: Vec<Vec<f64>>,
    unsent: u64,
    start: Instant,
    last_poll: f64,
    /// How long the last poll of the monitor took, seconds.
    poll_cost: f64,
    busy_s: f64,
    metrics: Metrics,
    on_round: &'m mut dyn FnMut(&RoundReport, &Metrics),
}

impl<'m> Migration<'m> {
    /// Lays out a migration of the monitor's files.
    pub fn new(
        config: MigrateConfig,
        monitor: &'m mut dyn Monitor,
        app: &'m mut App,
        transport: Transport,
        on_round: &'m mut dyn FnMut(&RoundReport, &Metrics),
    ) -> Migration<'m> {
        let files: Vec<FileView> = monitor
            .files()
            .iter()
            .map(|f| FileView::unsent(f.size, f.kind))
            .collect();
        let n = files.len();
        let unsent = files.iter().map(|f| f.size).sum();
        let policy = policy::build(config.policy, &config.params, n, 1);
        let metrics = Metrics::new(
            policy.name(),
            &format!("pid {}", app.pid()),
            config.bwlimit_bps.unwrap_or(0.0),
            0,
            n as u32,
            unsent,
        );
        Migration {
            config,
            monitor,
            app,
            transport,
            policy,
            files,
            sent: vec![None; n],
            counts: vec![0; n],
            last_write: vec![f64::NEG_INFINITY; n],
            write_times: vec![Vec::new(); n],
            unsent,
            start: Instant::now(),
            last_poll: 0.0,
            poll_cost: 0.0,
            busy_s: 0.0,
            metrics,
            on_round,
        }
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
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
        let mut round = 0;
        loop {
            let report = self.precopy_round(round)?;
            round += 1;
            let ended = report.ended;
            (self.on_round)(&report, &self.metrics);
            if ended.is_some() {
                break;
            }
        }
        self.app.stop().context("stopping the application")?;
        let result = self.final_copy();
        if result.is_err() && self.config.then != Then::Stop {
            // Nothing is lost at the source: let the application go on there.
            let _ = self.app.resume();
        }
        result
    }

    fn empty_report(&self, index: u32, phase: Phase, start: f64) -> RoundReport {
        RoundReport::empty(index, phase, start, self.unsent)
    }

    fn precopy_round(&mut self, round: u32) -> Result<RoundReport> {
        let start = self.now();
        let (now, bandwidth) = (self.now(), self.bandwidth());
        let view = View::live(
            now,
            round,
            self.config.period_s,
            now,
            &self.files,
            &self.counts,
            self.unsent,
            bandwidth,
        );
        let plan = self.policy.plan(&view);
        self.counts.iter_mut().for_each(|c| *c = 0);
        let deadline = match self.policy.rounds() {
            Rounds::Periods => Some(start + self.config.period_s),
            Rounds::Iterations => None,
        };
        let mut report = self.empty_report(round, plan.phase, start);
        for planned in &plan.order {
            self.observe(&mut report, false)?;
            if deadline.is_some_and(|d| self.now() >= d) {
                break;
            }
            let id = planned.file as usize;
            if !self.files[id].status.needs_send() {
                continue;
            }
            if plan.skip_redirtied && self.last_write[id] > start {
                report.skipped += 1;
                continue;
            }
            self.send(id, &mut report)?;
        }
        if let Some(deadline) = deadline.filter(|_| !plan.end_when_sent) {
            // Nothing left to send (U = 0): the period's rest would only be waited out.
            while self.now() < deadline && self.unsent > 0 {
                let nap = (deadline - self.now()).clamp(0.0, self.config.poll_s);
                std::thread::sleep(Duration::from_secs_f64(nap));
                self.observe(&mut report, false)?;
            }
        }
        self.observe(&mut report, true)?;
        let end = self.now();
        report.end = end;
        report.unsent_bytes = self.unsent;
        report.plan = plan.order;

        let bandwidth = self.bandwidth();
        let view = View::live(
            end,
            round,
            self.config.period_s,
            end,
            &self.files,
            &self.counts,
            self.unsent,
            bandwidth,
        );
        let policy_end = self.policy.end_of_round(&view, &report);
        report.ended = end_of_precopy(self.unsent, policy_end, round + 1, self.config.max_rounds);
        self.metrics.record_precopy_round(&report);
        Ok(report)
    }

    /// Polls the monitor (if due, or if `force`): counts writes and marks clean copies dirty.
    /// Also notices an application that has exited, and the receiver's errors.
    fn observe(&mut self, report: &mut RoundReport, force: bool) -> Result<()> {
        let now = self.now();
        // Polling many files costs time the transfer needs: at most a twentieth of it.
        let interval = self.config.poll_s.max(20.0 * self.poll_cost);
        if !force && now - self.last_poll < interval {
            return Ok(());
        }
        self.last_poll = now;
        if let Some(status) = self.app.exited() {
            bail!(
                "the application (pid {}) exited during pre-copy ({status}) after {:.1} s, in \
                 round {}: there is nothing left to migrate; {} files were pre-copied ({} bytes), \
                 the destination may hold a partial set of them",
                self.app.pid(),
                now,
                report.index + 1,
                self.metrics.precopy_files + report.files_sent,
                self.metrics.precopy_bytes + report.bytes_sent,
            );
        }
        let mut seen = vec![0; self.files.len()];
        self.monitor
            .poll(&mut seen)
            .context("polling the write monitor")?;
        self.poll_cost = self.now() - now;
        for (id, &count) in seen.iter().enumerate().filter(|(_, &c)| c > 0) {
            self.write_hit(id, count, now, report);
        }
        if let Err(e) = self.transport.drain() {
            self.recover(e)?;
        }
        Ok(())
    }

    fn write_hit(&mut self, id: usize, count: u32, at: f64, report: &mut RoundReport) {
        self.counts[id] = self.counts[id].saturating_add(count);
        self.last_write[id] = at;
        self.write_times[id].push(at);
        report.writes += u64::from(count);
        let view = &mut self.files[id];
        if view.status == Status::Clean {
            view.status = Status::Dirty;
            self.unsent += view.size;
            report.bytes_dirtied += view.size;
            report.dirtied.push(Dirtied {
                file: id as u32,
                at,
            });
        }
    }

    /// Sends one file that needs it, reconnecting as often as the link drops.
    fn send(&mut self, id: usize, report: &mut RoundReport) -> Result<()> {
        let seen = self
            .monitor
            .poll_file(id)
            .context("polling the write monitor")?;
        if seen > 0 {
            self.write_hit(id, seen, self.now(), report);
        }
        let begin = self.now();
        let watched = &self.monitor.files()[id];
        let (rel, path) = (watched.rel.clone(), watched.path.clone());
        let sent = loop {
            match self.transport.send_file(id, &rel, &path) {
                Ok(sent) => break sent,
                Err(SendError::Wire(e)) => self.recover(e)?,
                Err(e @ SendError::Source { .. }) => return Err(e.into()),
            }
        };
        let end = self.now();
        self.busy_s += end - begin;
        let view = &mut self.files[id];
        if view.status.needs_send() {
            self.unsent -= view.size;
        }
        view.size = sent.size;
        let resend = view.sends > 0;
        view.status = Status::Clean;
        view.sends += 1;
        self.sent[id] = Some(sent);
        report.bytes_sent += sent.size;
        report.files_sent += 1;
        if resend {
            report.resent_bytes += sent.size;
        }
        report.transfers.push(Transfer {
            file: id as u32,
            start: begin,
            end,
            resend,
        });
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
            let ids: Vec<usize> = (0..self.files.len())
                .filter(|&id| self.files[id].status == Status::Clean)
                .collect();
            let rels: Vec<Vec<u8>> = ids
                .iter()
                .map(|&id| self.monitor.files()[id].rel.clone())
                .collect();
            let entries: Vec<Entry<'_>> = ids
                .iter()
                .zip(&rels)
                .map(|(&id, rel)| {
                    let sent = self.sent[id].expect("a clean file was sent");
                    Entry {
                        path: RelPath::new(rel).expect("checked at start"),
                        size: sent.size,
                        hash: sent.hash,
                    }
                })
                .collect();
            let have = match self.transport.query(&entries) {
                Ok(have) => have,
                Err(e) if e.is_transient() => continue,
                Err(e) => return Err(e.into()),
            };
            for (&id, ok) in ids.iter().zip(have) {
                if !ok {
                    self.files[id].status = Status::Dirty;
                    self.unsent += self.files[id].size;
                }
            }
            return Ok(());
        }
    }

    /// The application is stopped: send the rest, check the destination, then `--then`.
    fn final_copy(&mut self) -> Result<Outcome> {
        let stop = self.now();
        let round = self.metrics.rounds;
        let mut report = self.empty_report(round, Phase::Final, stop);
        self.observe(&mut report, true)?;
        self.send_all_dirty(&mut report)?;
        let mut verify_s = 0.0;
        let mut repaired = 0;
        let mut reread = Reread::default();
        let verdict = loop {
            let confirmed = self.now();
            let started = Instant::now();
            let verdict = self.check(&mut reread)?;
            verify_s += started.elapsed().as_secs_f64();
            report.end = confirmed;
            if verdict.differing == 0 || repaired > 0 {
                break verdict;
            }
            // A write the monitor could not see (same size and timestamp tick): send again.
            let by_rel: std::collections::HashMap<&[u8], usize> = self
                .monitor
                .files()
                .iter()
                .enumerate()
                .map(|(i, f)| (f.rel.as_slice(), i))
                .collect();
            let ids: Vec<usize> = verdict
                .list
                .iter()
                .filter_map(|(rel, _)| by_rel.get(rel.as_slice()).copied())
                .collect();
            for &id in &ids {
                if self.files[id].status == Status::Clean {
                    self.files[id].status = Status::Dirty;
                    self.unsent += self.files[id].size;
                }
            }
            repaired = ids.len() as u32;
            self.send_all_dirty(&mut report)?;
        };
        let downtime = report.end - stop;
        report.unsent_bytes = self.unsent;
        self.metrics.record_final_copy(&report, stop);
        (self.on_round)(&report, &self.metrics);

        let restarted_pid = match self.config.then {
            Then::Resume => {
                self.app.resume().context("resuming the application")?;
                None
            }
            Then::Stop => None,
            Then::Restart => Some(self.restart()?),
        };
        let verdict_text = describe(&verdict);
        if verdict.differing > 0 {
            bail!("the destination differs from the source after a repair pass: {verdict_text}");
        }
        let bandwidth = self.bandwidth();
        let measured = Measured {
            downtime_s: downtime,
            verify_s,
            reread,
            wire_bytes: self.transport.written(),
            send_rate_bps: bandwidth,
            reconnects: self.transport.reconnects,
            repaired_files: repaired,
            verdict: verdict_text,
            then: self.config.then,
            restarted_pid,
        };
        self.transport.bye();
        let mut metrics = self.metrics.clone();
        metrics.bandwidth_bps = bandwidth;
        let prediction = predict(
            &self.config,
            &self.metrics.dataset,
            self.monitor.files(),
            &self.write_times,
            bandwidth,
            stop,
        );
        Ok(Outcome {
            metrics,
            measured,
            prediction,
        })
    }

    /// Sends every file not cleanly at the destination, and waits for all acknowledgements.
    fn send_all_dirty(&mut self, report: &mut RoundReport) -> Result<()> {
        loop {
            let ids: Vec<usize> = (0..self.files.len())
                .filter(|&id| self.files[id].status.needs_send())
                .collect();
            for id in ids {
                self.send(id, report)?;
            }
            match self.transport.wait_acks() {
                Ok(()) => {}
                Err(e) => self.recover(e)?,
            }
            if self.files.iter().all(|f| !f.status.needs_send()) {
                return Ok(());
            }
        }
    }

    /// Hashes every file now (the application is stopped) and has the receiver compare. A file
    /// whose stamp is still the one that vouched for what was sent is not read again.
    fn check(&mut self, read: &mut Reread) -> Result<Verdict> {
        use rayon::prelude::*;
        // On every core: the application is stopped while this runs.
        let current: Vec<(Sent, bool)> = self
            .monitor
            .files()
            .par_iter()
            .zip(&self.sent)
            .map(|(f, sent)| {
                current(&f.path, sent.as_ref())
                    .with_context(|| format!("hashing {}", f.path.display()))
            })
            .collect::<Result<_>>()?;
        for (now, _) in current.iter().filter(|(_, was_read)| *was_read) {
            read.files += 1;
            read.bytes += now.size;
        }
        let entries: Vec<Entry<'_>> = self
            .monitor
            .files()
            .iter()
            .zip(&current)
            .map(|(f, (now, _))| Entry {
                path: RelPath::new(&f.rel).expect("checked at start"),
                size: now.size,
                hash: now.hash,
            })
            .collect();
        loop {
            match self.transport.verify(&entries) {
                Ok(verdict) => return Ok(verdict),
                Err(e) if e.is_transient() => {
                    self.transport
                        .reconnect(self.config.reconnect)
                        .context("reconnecting for the manifest check")?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn restart(&mut self) -> Result<u32> {
        let (argv, cwd) = self
            .app
            .command()
            .context("reading the application's command")?;
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
        let pid = self
            .transport
            .restart(RelPath::new(&cwd).expect("normalised"), &args)
            .context("restarting at the destination")?;
        Ok(pid)
    }
}

/// Writes replayed beyond this many, the prediction is given up.
const MAX_REPLAYED_WRITES: usize = 1 << 24;

/// Replays the writes the monitor saw through the simulator with the same policy, period and
/// (measured or limited) bandwidth. The recording ends at the stop (`stop_s`), but a simulated
/// pre-copy may last longer; a replay that fell silent then would let U drain to 0 and predict no
/// downtime at all. So the recording is repeated (the application taken to write on as it did)
/// until it covers the simulated pre-copy.
fn predict(
    config: &MigrateConfig,
    name: &str,
    files: &[WatchedFile],
    writes: &[Vec<f64>],
    bandwidth_bps: f64,
    stop_s: f64,
) -> Option<Metrics> {
    let specs: Vec<FileSpec> = files
        .iter()
        .map(|f| FileSpec {
            path: String::from_utf8_lossy(&f.rel).into_owned(),
            size: f.size.max(1),
            kind: f.kind,
            access_probability: 0.0,
        })
        .collect();
    let sim_config = SimConfig {
        bandwidth_bps,
        period_s: config.period_s,
        max_rounds: config.max_rounds,
        params: config.params,
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
        let metrics = precopy_core::SimBuilder::new(dataset, config.policy)
            .config(sim_config)
            .build()
            .ok()?
            .run();
        if !repeats || metrics.precopy_time_s <= horizon {
            return Some(metrics);
        }
        horizon *= 4.0;
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
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let hash = hash_reader(file)?;
    Ok((
        Sent {
            size,
            hash,
            stamp: None,
        },
        true,
    ))
}

/// One line for a verdict.
pub fn describe(v: &Verdict) -> String {
    if v.differing == 0 {
        return format!("all {} files equal the source, byte for byte", v.files);
    }
    let listed: Vec<String> = v
        .list
        .iter()
        .take(5)
        .map(|(p, r)| {
            let why = match r {
                Reason::Missing => "missing",
                Reason::Size => "size",
                Reason::Hash => "content",
                Reason::Refused => "refused",
                _ => "other",
            };
            format!("{} ({why})", OsStr::from_bytes(p).to_string_lossy())
        })
        .collect();
    format!(
        "{} of {} files differ: {}",
        v.differing,
        v.files,
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::stamp::RACY;
    use precopy_core::Kind;

    /// What `Transport::send_file` records: the stamp before reading, then the hash.
    fn sent(path: &Path) -> Sent {
        let file = std::fs::File::open(path).unwrap();
        let (meta, stamp) = Stamp::before_read(&file).unwrap();
        Sent {
            size: meta.len(),
            hash: hash_reader(file).unwrap(),
            stamp,
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
        let files = [WatchedFile {
            path: "/hot".into(),
            rel: b"hot".to_vec(),
            kind: Kind::ReadWrite,
            size: 1_000_000,
        }];
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
        };
        let m = predict(&config, "test", &files, &writes, 8e6, 3.0).unwrap();
        assert!(m.precopy_time_s > 3.0, "{}", m.precopy_time_s);
        assert_eq!(m.final_bytes, 1_000_000);
        assert!((m.downtime_s - 1.0).abs() < 1e-9, "{}", m.downtime_s);
    }
}
