//! The application's own cgroup (v2): its whole process tree is known without following forks
//! (every process it forks is born inside), and it is stopped for the final copy with the
//! cgroup freezer (`cgroup.freeze`), which neither the application nor its parent can observe:
//! no signal is delivered, `waitpid` reports no stop or continue, and the shell's job control
//! sees nothing. See `docs/tracer.md` ("Freezing").
//!
//! A cgroup we create is removed when we are done with it ([`Cgroup::release`], also on drop):
//! its processes go back to the cgroups they came from (those born inside go to the one the
//! tree came from), then the directory is removed. A cgroup that already held exactly the
//! application's tree is used as it is and left in place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Whether we made the cgroup, and so must undo it.
#[derive(Debug)]
enum Ownership {
    /// Made by us. On release, a process goes back to its `origins` entry (it was moved here),
    /// else to `home` (it was born here, or spawned into it).
    Created {
        home: PathBuf,
        origins: BTreeMap<u32, PathBuf>,
    },
    /// It held the tree, and only the tree, before we came: used as it is, left in place.
    Borrowed,
}

/// What a child needs to start in a cgroup, and where the cgroup is: shared with a tracing
/// session that spawns the application.
#[derive(Debug, Clone)]
pub struct Join {
    /// The cgroup's directory.
    pub dir: PathBuf,
    /// Its `cgroup.procs`, open for writing ([`join_in_child`]).
    pub procs: Arc<OwnedFd>,
}

/// A cgroup v2 holding the application's process tree.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    ownership: Ownership,
    frozen: bool,
    released: bool,
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid host). A v1-only host has none: the caller falls back to signals.
pub fn mount() -> io::Result<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    table
        .lines()
        .find_map(|line| {
            let (fields, rest) = line.split_once(" - ")?;
            (rest.split(' ').next()? == "cgroup2").then(|| fields.split(' ').nth(4))?
        })
        .map(|point| PathBuf::from(unescape(point)))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup v2 hierarchy is mounted (a cgroup v1-only host)",
            )
        })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 directory process `pid` is in.
pub fn of_pid(pid: u32) -> io::Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let relative = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in a cgroup v2 hierarchy"))?;
    Ok(mount()?.join(relative.trim_start_matches('/')))
}

/// The processes (thread group ids) in the cgroup at `dir`.
pub(crate) fn procs_of(dir: &Path) -> io::Result<BTreeSet<u32>> {
    Ok(std::fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect())
}

/// Moves process `pid` (with all its threads) into the cgroup at `dir`; a process that is gone
/// is not an error.
fn move_to(dir: &Path, pid: u32) -> io::Result<()> {
    let result = OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .and_then(|mut procs| procs.write_all(pid.to_string().as_bytes()));
    match result {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}

/// Writes `value` to the control file `name` of `dir`.
fn write_control(dir: &Path, name: &str, value: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(dir.join(name))?
        .write_all(value.as_bytes())
}

/// The value of `key` in `cgroup.events` (`populated`, `frozen`).
fn event(dir: &Path, key: &str) -> io::Result<bool> {
    let text = std::fs::read_to_string(dir.join("cgroup.events"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .any(|(k, v)| k == key && v == "1"))
}

/// Waits until `cgroup.events` says `key` is `value`. The kernel reports every change of that
/// file as a modification, so this sleeps in `read` on an inotify watch, made before the first
/// look so no change is missed.
fn wait_event(dir: &Path, key: &str, value: bool) -> io::Result<()> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(io::Error::from)?;
    inotify
        .add_watch(&dir.join("cgroup.events"), AddWatchFlags::IN_MODIFY)
        .map_err(io::Error::from)?;
    while event(dir, key)? != value {
        inotify.read_events().map_err(io::Error::from)?;
    }
    Ok(())
}

/// Waits until the cgroup at `dir` holds no process.
pub fn wait_empty(dir: &Path) -> io::Result<()> {
    wait_event(dir, "populated", false)
}

impl Cgroup {
    /// Makes a new, empty cgroup under `parent` (named after our pid, so a leftover can be
    /// traced to the `send` or `trace` that made it).
    fn create_in(parent: &Path, home: PathBuf) -> io::Result<Cgroup> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "precopy-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        std::fs::create_dir(&dir)?;
        // A cgroup without the freezer (the root has none) is of no use to us.
        if !dir.join("cgroup.freeze").exists() {
            let _ = std::fs::remove_dir(&dir);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's cgroups have no freezer (cgroup.freeze, Linux 5.2)",
            ));
        }
        Ok(Cgroup {
            dir,
            ownership: Ownership::Created {
                home,
                origins: BTreeMap::new(),
            },
            frozen: false,
            released: false,
        })
    }

    /// A new cgroup, under our own, for an application we are about to start: the child joins
    /// it between fork and exec ([`Cgroup::join_fd`], [`join_in_child`]), so it and everything
    /// it forks are inside from their first instruction. When we are done, what is still
    /// running goes back to our own cgroup, where it would have been.
    pub fn for_spawn() -> io::Result<Cgroup> {
        let ours = of_pid(std::process::id())?;
        Cgroup::create_in(&ours, ours.clone())
    }

    /// The cgroup of a running tree (`root` and its descendants, `tree()` lists them as they
    /// are now): the one `root` is in if that holds exactly the tree, else a new one under it
    /// (so the tree stays under the same limits), into which every process of the tree is
    /// moved, with all its threads, until a walk finds none outside (a process may fork while
    /// we move its parent).
    pub fn for_tree(root: u32, tree: impl Fn() -> BTreeSet<u32>) -> io::Result<Cgroup> {
        let current = of_pid(root)?;
        let members = tree();
        if current != mount()?
            && current.join("cgroup.freeze").exists()
            && procs_of(&current)? == members
        {
            return Ok(Cgroup {
                dir: current,
                ownership: Ownership::Borrowed,
                frozen: false,
                released: false,
            });
        }
        let mut cgroup = Cgroup::create_in(&current, current.clone())?;
        let moved = cgroup.take_in(tree);
        if let Err(e) = moved {
            let _ = cgroup.release();
            return Err(e);
        }
        Ok(cgroup)
    }

    fn take_in(&mut self, tree: impl Fn() -> BTreeSet<u32>) -> io::Result<()> {
        loop {
            let inside = self.procs()?;
            let outside: Vec<u32> = tree().difference(&inside).copied().collect();
            if outside.is_empty() {
                return Ok(());
            }
            for pid in outside {
                let origin = of_pid(pid);
                move_to(&self.dir, pid)?;
                if let (Ownership::Created { origins, .. }, Ok(origin)) =
                    (&mut self.ownership, origin)
                {
                    origins.entry(pid).or_insert(origin);
                }
            }
        }
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether we made it (and will remove it).
    pub fn created(&self) -> bool {
        matches!(self.ownership, Ownership::Created { .. })
    }

    /// Its `cgroup.procs`, open for writing, for a child to join it before exec.
    pub fn join_fd(&self) -> io::Result<OwnedFd> {
        Ok(OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))?
            .into())
    }

    /// [`Cgroup::join_fd`] with the cgroup's directory, to hand to a tracing session.
    pub fn join(&self) -> io::Result<Join> {
        Ok(Join {
            dir: self.dir.clone(),
            procs: Arc::new(self.join_fd()?),
        })
    }

    /// The processes in it now.
    pub fn procs(&self) -> io::Result<BTreeSet<u32>> {
        procs_of(&self.dir)
    }

    /// Whether process `pid` is in it now.
    pub fn contains(&self, pid: u32) -> bool {
        of_pid(pid).is_ok_and(|dir| dir == self.dir)
    }

    /// Freezes every process in it and returns once the kernel says all are frozen (`frozen 1`
    /// in `cgroup.events`): none runs again until [`Cgroup::thaw`].
    pub fn freeze(&mut self) -> io::Result<()> {
        write_control(&self.dir, "cgroup.freeze", "1")?;
        self.frozen = true;
        wait_event(&self.dir, "frozen", true)
    }

    /// Lets them run on, and returns once the kernel says the cgroup is no longer frozen.
    pub fn thaw(&mut self) -> io::Result<()> {
        write_control(&self.dir, "cgroup.freeze", "0")?;
        self.frozen = false;
        wait_event(&self.dir, "frozen", false)
    }

    /// Whether [`Cgroup::freeze`] was the last of freeze and thaw.
    pub fn frozen(&self) -> bool {
        self.frozen
    }

    /// SIGKILLs every process in it (`cgroup.kill`, Linux 5.14, which also reaches a process
    /// forked meanwhile; before that, each listed process until none is left) and waits until
    /// it is empty (then, frozen or not, it can go).
    pub fn kill(&mut self) -> io::Result<()> {
        if write_control(&self.dir, "cgroup.kill", "1").is_err() {
            loop {
                let left = self.procs()?;
                if left.is_empty() {
                    break;
                }
                for pid in left {
                    // SAFETY: kill(2) with a pid read from the cgroup; no memory is involved.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
        wait_event(&self.dir, "populated", false)?;
        self.frozen = false;
        Ok(())
    }

    /// Undoes what we did: a cgroup we made is emptied (each process back where it came from)
    /// and removed; a borrowed one is left as it was. A frozen cgroup is left frozen and in
    /// place (moving a process out of it would let it run): thaw it first. Done once; also on
    /// drop.
    pub fn release(&mut self) -> io::Result<()> {
        if self.released || self.frozen {
            return Ok(());
        }
        self.released = true;
        let Ownership::Created { home, origins } = &self.ownership else {
            return Ok(());
        };
        // A process forked while we move its parent is born here: move until none is left.
        loop {
            let left = self.procs()?;
            if left.is_empty() {
                break;
            }
            for pid in left {
                let back = origins
                    .get(&pid)
                    .filter(|dir| dir.join("cgroup.procs").exists())
                    .unwrap_or(home);
                move_to(back, pid)?;
            }
        }
        std::fs::remove_dir(&self.dir)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// Joins the cgroup whose `cgroup.procs` is open as `fd` (writing `0` moves the writer): for a
/// freshly forked child, before exec. Returns whether it worked.
///
/// # Safety
/// Only async-signal-safe calls: fit for the child of a fork in a multithreaded process.
pub unsafe fn join_in_child(fd: RawFd) -> bool {
    unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) == 1 }
}

/// [`join_in_child`] for an owned descriptor, as a `pre_exec` hook would call it.
pub fn join_hook(fd: &OwnedFd) -> impl Fn() -> io::Result<()> + Send + Sync + 'static {
    let raw = fd.as_raw_fd();
    move || {
        // SAFETY: one write(2) on a descriptor the caller keeps open until after the spawn.
        if unsafe { join_in_child(raw) } {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
        assert_eq!(unescape(r"/odd\04"), r"/odd\04");
    }
}
