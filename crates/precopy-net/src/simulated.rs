//! A real [`Migration`](crate::migrate::Migration) in simulated time, turmoil-style: the same
//! sender loop, with its edges replaced.
//!
//! ```text
//!  SimClock ◄── waits ── Migration ── send_file ──► MemoryLink (destination in memory,
//!     ▲  │                 │   ▲                        a file takes size × 8 / B seconds)
//!     │  └ files appear,   │   └── counts ── ScriptedMonitor (a seeded workload's writes,
//!     │    vanish on disk  │                                  reported once they are due)
//!     └──── stop ──── SimulatedApp
//! ```
//!
//! The files are real (a temporary directory, walked by [`Roots`] as in a real migration); time
//! and the link are not: the clock moves only when the migration waits or a transfer takes
//! time, so nothing sleeps and a run is deterministic. The writes are those of a
//! [`precopy_core`] workload ([`WriteClock`]), so a run can be held side by side with
//! [`precopy_core::Simulation`] on the same data set and the same writes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use precopy_core::workload::WriteClock;
use precopy_core::{Dataset, Kind, WriteModel};
use precopy_proto::{Entry, Identity, Node, NodeKind, Reason, RelPath};

use super::app::Application;
use super::clock::Clock;
use super::delta::ResendRates;
use super::link::Link;
use super::monitor::Monitor;
use super::restart;
use super::store::hash_reader;
use super::transport::{source_error, Restarted, SendError, Sent, Source, Verdict};
use super::tree::Roots;
use super::wire::WireError;

/// Simulated seconds, shared by everything that reads them. Moving it forward creates and
/// deletes the files whose time has come, until the application stops.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    shared: Rc<RefCell<Timeline>>,
}

#[derive(Debug, Default)]
struct Timeline {
    now: f64,
    /// When the application stopped, if it has: nothing is written, created or deleted after.
    halted: Option<f64>,
    /// Files to create (with a size) or delete, by time; the next one first.
    changes: Vec<(f64, PathBuf, Option<u64>)>,
}

impl SimClock {
    /// Moves time to `at` (never back), applying the file changes due by then.
    pub fn advance_to(&self, at: f64) {
        let mut timeline = self.shared.borrow_mut();
        if at <= timeline.now {
            return;
        }
        timeline.now = at;
        if timeline.halted.is_some() {
            return;
        }
        while timeline.changes.first().is_some_and(|c| c.0 <= at) {
            let (_, path, size) = timeline.changes.remove(0);
            let done = match size {
                Some(size) => create(&path, size),
                None => std::fs::remove_file(&path),
            };
            done.unwrap_or_else(|e| panic!("simulated change of {}: {e}", path.display()));
        }
    }

    /// The application stops now.
    fn halt(&self) {
        let mut timeline = self.shared.borrow_mut();
        timeline.halted = Some(timeline.now);
    }

    fn halted(&self) -> Option<f64> {
        self.shared.borrow().halted
    }

    fn schedule(&self, at: f64, path: PathBuf, size: Option<u64>) {
        let mut timeline = self.shared.borrow_mut();
        let place = timeline.changes.partition_point(|c| c.0 <= at);
        timeline.changes.insert(place, (at, path, size));
    }
}

impl Clock for SimClock {
    fn now(&self) -> f64 {
        self.shared.borrow().now
    }

    fn wait_until(&mut self, at: f64) {
        self.advance_to(at);
    }
}

/// A file of `size` bytes (zeros: only sizes matter to the engine).
fn create(path: &Path, size: u64) -> io::Result<()> {
    std::fs::File::create(path)?.set_len(size)
}

/// A write monitor that reports a workload's writes: each file's writes due by now, none
/// before it watched the file (as a real monitor), none after the file vanished or the
/// application stopped.
#[derive(Debug)]
pub struct ScriptedMonitor {
    clock: SimClock,
    writes: WriteClock,
    /// The workload's files by path, with when they appear and vanish.
    files: HashMap<PathBuf, usize>,
    lives: Vec<(f64, f64)>,
    /// Workload file of each id the migration watches.
    watched: Vec<Option<usize>>,
    /// Whether the ids are the workload's own indices, so its streams can be lent as foresight.
    same_ids: bool,
}

impl ScriptedMonitor {
    /// The data set's index of the file the migration watches as `file`.
    pub fn workload_file(&self, file: usize) -> Option<usize> {
        self.watched.get(file).copied().flatten()
    }

    /// Writes to workload file `index` due by now, counted; those it cannot have made, dropped.
    fn take(&mut self, index: usize) -> u32 {
        let now = self.clock.now();
        let (_, vanishes) = self.lives[index];
        let until = now
            .min(vanishes)
            .min(self.clock.halted().unwrap_or(f64::INFINITY));
        let file = index as u32;
        let count = self.writes.take_until(file, until).map_or(0, |w| w.0);
        if now >= vanishes {
            self.writes.take_until(file, now);
        }
        count
    }
}

impl Monitor for ScriptedMonitor {
    fn watch(&mut self, file: usize, path: &Path) {
        let index = self.files.get(path).copied();
        self.same_ids &= index == Some(file);
        if self.watched.len() <= file {
            self.watched.resize(file + 1, None);
        }
        self.watched[file] = index;
        if let Some(index) = index {
            let (appears, _) = self.lives[index];
            // A file present from the start keeps its writes at time 0; one that appears later
            // is watched from the walk that found it (as `precopy_core::SimBuilder::life`).
            if appears > 0.0 {
                self.writes.take_until(index as u32, self.clock.now());
            }
        }
    }

    fn poll(&mut self, counts: &mut [u32]) -> io::Result<()> {
        for (file, count) in counts.iter_mut().enumerate() {
            *count += self.poll_file(file)?;
        }
        Ok(())
    }

    fn poll_file(&mut self, file: usize) -> io::Result<u32> {
        Ok(match self.watched.get(file).copied().flatten() {
            Some(index) => self.take(index),
            None => 0,
        })
    }

    fn foresight(&self) -> Option<&WriteClock> {
        self.same_ids.then_some(&self.writes)
    }
}

/// The destination in memory, over a link of fixed bandwidth: each file's transfer moves the
/// clock on by `size × 8 / bandwidth` seconds, as `precopy_core::sim` charges it; everything
/// else (acknowledgements, the manifest) takes no time.
#[derive(Debug)]
pub struct MemoryLink {
    clock: SimClock,
    bandwidth_bps: f64,
    /// The destination's files: size and hash, by wire path.
    held: BTreeMap<Vec<u8>, (u64, [u8; 32])>,
    written: u64,
}

impl MemoryLink {
    /// The destination's files: size and hash, by wire path.
    pub fn held(&self) -> &BTreeMap<Vec<u8>, (u64, [u8; 32])> {
        &self.held
    }

    fn equal(&self, node: &Node<'_>) -> Result<(), Reason> {
        let NodeKind::File { size, hash } = node.kind else {
            return Ok(());
        };
        match self.held.get(node.path.as_bytes()) {
            None => Err(Reason::Missing),
            Some(&(s, _)) if s != size => Err(Reason::Size),
            Some(&(_, h)) if h != hash => Err(Reason::Hash),
            Some(_) => Ok(()),
        }
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("a simulated migration cannot {what}"),
    )
}

impl Link for MemoryLink {
    fn send_file(
        &mut self,
        _file: usize,
        rel: &[u8],
        path: &Path,
    ) -> Result<Option<Sent>, SendError> {
        let source = |why| source_error(path, why);
        let Some(Source {
            handle,
            meta,
            stamp,
        }) = Source::open(path)?
        else {
            return Ok(None);
        };
        let mut content = Vec::new();
        handle
            .take(meta.len())
            .read_to_end(&mut content)
            .map_err(source)?;
        let size = content.len() as u64;
        let hash = hash_reader(content.as_slice()).map_err(source)?;
        self.clock
            .advance_to(self.clock.now() + size as f64 * 8.0 / self.bandwidth_bps);
        self.held.insert(rel.to_vec(), (size, hash));
        self.written += size;
        Ok(Some(Sent::of_read(size, size, hash, &meta, stamp)))
    }

    fn drain(&mut self) -> Result<(), WireError> {
        Ok(())
    }

    fn wait_acks(&mut self) -> Result<(), WireError> {
        Ok(())
    }

    fn rename(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<(), WireError> {
        if let Some(held) = self.held.remove(from.as_bytes()) {
            self.held.insert(to.as_bytes().to_vec(), held);
        }
        Ok(())
    }

    fn query(&mut self, entries: &[Entry<'_>]) -> Result<Vec<bool>, WireError> {
        Ok(entries
            .iter()
            .map(|e| self.held.get(e.path.as_bytes()) == Some(&(e.size, e.hash)))
            .collect())
    }

    fn mirror(
        &mut self,
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
    ) -> Result<Vec<bool>, WireError> {
        // Files under the roots that the tree no longer has go, as the receiver's mirror does.
        let named: std::collections::BTreeSet<&[u8]> =
            nodes.iter().map(|n| n.path.as_bytes()).collect();
        self.held.retain(|rel, _| {
            named.contains(rel.as_slice())
                || !roots
                    .iter()
                    .any(|r| super::tree::is_within(rel, r.as_bytes()))
        });
        Ok(nodes.iter().map(|n| self.equal(n).is_ok()).collect())
    }

    fn verify(&mut self, _roots: &[RelPath<'_>], nodes: &[Node<'_>]) -> Result<Verdict, WireError> {
        let list: Vec<(Vec<u8>, Reason)> = nodes
            .iter()
            .filter_map(|n| {
                let reason = self.equal(n).err()?;
                Some((n.path.as_bytes().to_vec(), reason))
            })
            .collect();
        Ok(Verdict {
            files: nodes.len() as u32,
            differing: list.len() as u32,
            list,
        })
    }

    fn restart(
        &mut self,
        _cwd: RelPath<'_>,
        _identity: Identity<'_>,
        _argv: &[&[u8]],
    ) -> Result<Restarted, WireError> {
        Err(unsupported("restart an application").into())
    }

    fn reconnect(&mut self, _patience: Duration) -> Result<(), WireError> {
        Ok(())
    }

    fn explain(&mut self, error: WireError) -> WireError {
        error
    }

    fn bye(&mut self) {}

    fn written(&self) -> u64 {
        self.written
    }

    fn reconnects(&self) -> u32 {
        0
    }

    /// The memory destination applies no deltas: every transfer is whole.
    fn take_refused(&mut self) -> Vec<usize> {
        Vec::new()
    }

    fn deltas(&self) -> (u32, u32) {
        (0, 0)
    }

    /// Every transfer is whole already.
    fn minimise_time(&mut self) {}

    fn resend_rates(&self) -> ResendRates {
        ResendRates::default()
    }
}

/// The application whose writes the [`ScriptedMonitor`] reports: stopping it ends them (its
/// workload does not go on after the stop, resumed or not). It has no process to restart.
#[derive(Debug)]
pub struct SimulatedApp {
    clock: SimClock,
}

impl Application for SimulatedApp {
    fn pid(&self) -> u32 {
        0
    }

    fn exited(&mut self) -> Option<String> {
        None
    }

    fn stop(&mut self) -> io::Result<()> {
        self.clock.halt();
        Ok(())
    }

    fn resume(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn kill(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn command(&self) -> io::Result<(Vec<Vec<u8>>, Vec<u8>)> {
        Err(unsupported("read a command line"))
    }

    fn identity(&self) -> io::Result<restart::Identity> {
        Err(unsupported("read a process identity"))
    }
}

/// Describes a simulated world: a data set's files under a temporary directory, its writes,
/// and the link; [`WorldBuilder::build`] lays it out.
#[derive(Debug, Clone)]
pub struct WorldBuilder {
    dataset: Dataset,
    model: WriteModel,
    seed: u64,
    bandwidth_bps: f64,
    /// When each file appears and vanishes (from 0, never, unless told).
    lives: Vec<(f64, f64)>,
}

impl WorldBuilder {
    /// The data set's files (each file's path under the world's directory), written as
    /// `model` and `seed` make [`precopy_core::Simulation`] write them, over a link of
    /// `bandwidth_bps`. Each top-level directory of the paths is a root, of its files' kind.
    pub fn new(dataset: Dataset, model: WriteModel, seed: u64, bandwidth_bps: f64) -> Self {
        let lives = vec![(0.0, f64::INFINITY); dataset.files.len()];
        WorldBuilder {
            dataset,
            model,
            seed,
            bandwidth_bps,
            lives,
        }
    }

    /// File `index` of the data set is created at `appears` (> 0: while the application runs)
    /// and deleted at `vanishes` (∞: never).
    pub fn life(mut self, index: usize, appears: f64, vanishes: f64) -> Self {
        self.lives[index] = (appears, vanishes);
        self
    }

    /// Creates the directory and the files present at time 0.
    pub fn build(self) -> io::Result<World> {
        let dir = tempfile::tempdir()?;
        let base = dir.path().canonicalize()?;
        let clock = SimClock::default();
        let mut roots: BTreeMap<PathBuf, Kind> = BTreeMap::new();
        let mut files = HashMap::new();
        for (index, (spec, &(appears, vanishes))) in
            self.dataset.files.iter().zip(&self.lives).enumerate()
        {
            let path = base.join(spec.path.trim_start_matches('/'));
            let top = path
                .ancestors()
                .find(|a| a.parent() == Some(base.as_path()))
                .ok_or_else(|| io::Error::other(format!("{}: not under a directory", spec.path)))?;
            if *roots.entry(top.to_path_buf()).or_insert(spec.kind) != spec.kind {
                return Err(io::Error::other(format!(
                    "{}: a root's files must be of one kind",
                    top.display()
                )));
            }
            std::fs::create_dir_all(path.parent().expect("under the base"))?;
            if appears <= 0.0 {
                create(&path, spec.size)?;
            } else {
                clock.schedule(appears, path.clone(), Some(spec.size));
            }
            if vanishes.is_finite() {
                clock.schedule(vanishes, path.clone(), None);
            }
            files.insert(path, index);
        }
        let roots = Roots::new(roots.into_iter().collect()).map_err(|e| e.source)?;
        Ok(World {
            roots,
            monitor: ScriptedMonitor {
                clock: clock.clone(),
                writes: WriteClock::new(&self.dataset, &self.model, self.seed),
                files,
                lives: self.lives,
                watched: Vec::new(),
                same_ids: true,
            },
            app: SimulatedApp {
                clock: clock.clone(),
            },
            link: MemoryLink {
                clock: clock.clone(),
                bandwidth_bps: self.bandwidth_bps,
                held: BTreeMap::new(),
                written: 0,
            },
            clock,
            dir,
        })
    }
}

/// The edges of a simulated migration, for [`Migration::with`](crate::migrate::Migration::with).
#[derive(Debug)]
pub struct World {
    /// The roots: the data set's top-level directories.
    pub roots: Roots,
    /// The workload's writes.
    pub monitor: ScriptedMonitor,
    /// The application.
    pub app: SimulatedApp,
    /// The destination.
    pub link: MemoryLink,
    /// Simulated time.
    pub clock: SimClock,
    /// Holds the files; removed when dropped.
    pub dir: tempfile::TempDir,
}
