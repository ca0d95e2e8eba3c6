//! The application being migrated: a command we spawn or a process we attach to, and its whole
//! process tree. Where a cgroup v2 can be made, the tree lives in one of its own
//! (`precopy_trace::cgroup`) and is stopped for the final copy with the cgroup freezer, which
//! the application and its parent cannot observe; elsewhere every process of the tree (found
//! by walking `/proc/*/stat`) gets SIGSTOP, which its parent's `waitpid` and a shell's job
//! control do see.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use precopy_trace::cgroup::{self, Cgroup};
use rustix::process::{kill_process, Pid, Signal};

use super::restart::Identity;

/// What the sender does to the application it migrates: a real process tree ([`App`]), or,
/// under test, one whose writes are scripted (`simulated::SimulatedApp`).
pub trait Application {
    /// The root process id.
    fn pid(&self) -> u32;
    /// `Some(description)` once it has exited.
    fn exited(&mut self) -> Option<String>;
    /// Stops it; when this returns, it writes no more.
    fn stop(&mut self) -> io::Result<()>;
    /// Lets it run on.
    fn resume(&mut self) -> io::Result<()>;
    /// Ends it at the source.
    fn kill(&mut self) -> io::Result<()>;
    /// Its command line and working directory, for a restart at the destination.
    fn command(&self) -> io::Result<(Vec<Vec<u8>>, Vec<u8>)>;
    /// Who it runs as and its environment, for a restart at the destination.
    fn identity(&self) -> io::Result<Identity>;
}

impl Application for App {
    fn pid(&self) -> u32 {
        App::pid(self)
    }

    fn exited(&mut self) -> Option<String> {
        App::exited(self)
    }

    fn stop(&mut self) -> io::Result<()> {
        App::stop(self)
    }

    fn resume(&mut self) -> io::Result<()> {
        App::resume(self)
    }

    fn kill(&mut self) -> io::Result<()> {
        App::kill(self)
    }

    fn command(&self) -> io::Result<(Vec<Vec<u8>>, Vec<u8>)> {
        App::command(self)
    }

    fn identity(&self) -> io::Result<Identity> {
        App::identity(self)
    }
}

/// The application: its root process, and how it is stopped for the final copy.
#[derive(Debug)]
pub struct App {
    root: Root,
    stopper: Stopper,
}

/// The application's root process.
#[derive(Debug)]
enum Root {
    /// Spawned by us, in a session of its own.
    Spawned(Child),
    /// Attached by pid (or spawned by the tracer).
    Attached(u32),
}

/// How the application is stopped.
#[derive(Debug)]
enum Stopper {
    /// The cgroup freezer: invisible to the application and its parent.
    Freezer(Cgroup),
    /// SIGSTOP/SIGCONT to each process of the tree, where no cgroup could be made (`why`).
    Signals { why: String },
}

impl Stopper {
    fn from(cgroup: io::Result<Cgroup>) -> Stopper {
        match cgroup {
            Ok(cgroup) => Stopper::Freezer(cgroup),
            Err(e) => Stopper::Signals { why: e.to_string() },
        }
    }
}

impl App {
    /// Spawns `argv` in a session of its own, which also makes it a process-group leader (so a
    /// terminal's ^C reaches us, not it). Not only a group: when `send` exits and leaves a
    /// stopped application behind (`--then stop`), the kernel sends SIGHUP and SIGCONT to a
    /// stopped process group orphaned within its session, which would kill it or, under
    /// `nohup`, let it run on and write after its files were migrated. Its stdout and stderr go
    /// to `output`: not ours, which a long-lived application would hold open for whoever reads
    /// them (`send --json | jq` would wait for it). It starts in a cgroup of its own where one
    /// can be made ([`Cgroup::for_spawn`]), joined before exec.
    pub fn spawn(argv: &[String], output: std::os::fd::OwnedFd) -> io::Result<App> {
        App::spawn_in(argv, output, Cgroup::for_spawn())
    }

    /// [`App::spawn`] into `cgroup`, made by the caller (a stop-free watch is armed for it
    /// before the application starts); if it could not be made, stopped with signals.
    pub fn spawn_in(
        argv: &[String],
        output: std::os::fd::OwnedFd,
        cgroup: io::Result<Cgroup>,
    ) -> io::Result<App> {
        let cgroup = cgroup.and_then(|c| Ok((c.join_fd()?, c)));
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output);
        // SAFETY: between fork and exec the child only makes the setsid and write system
        // calls, which are async-signal-safe and touch no memory shared with the parent.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
            if let Ok((procs, _)) = &cgroup {
                command.pre_exec(cgroup::join_hook(procs));
            }
        }
        let child = command.spawn()?;
        Ok(App {
            root: Root::Spawned(child),
            stopper: Stopper::from(cgroup.map(|(_, c)| c)),
        })
    }

    /// A running process tree: moved into a cgroup of its own (or the one it has, if that holds
    /// only the tree) where permitted ([`Cgroup::for_tree`]), else stopped with signals.
    pub fn attach(pid: u32) -> App {
        App::traced(pid, Cgroup::for_tree(pid, || tree(pid)))
    }

    /// A process tree started by someone else (the tracer) into `cgroup`, or, if that failed,
    /// stopped with signals.
    pub fn traced(pid: u32, cgroup: io::Result<Cgroup>) -> App {
        App {
            root: Root::Attached(pid),
            stopper: Stopper::from(cgroup),
        }
    }

    /// Whether we spawned it (it is our child).
    pub fn spawned(&self) -> bool {
        matches!(self.root, Root::Spawned(_))
    }

    /// Its cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        match &self.stopper {
            Stopper::Freezer(cgroup) => Some(cgroup),
            Stopper::Signals { .. } => None,
        }
    }

    /// How it is stopped for the final copy, in words.
    pub fn stopping(&self) -> String {
        match &self.stopper {
            Stopper::Freezer(cgroup) => {
                format!("the cgroup freezer ({})", cgroup.path().display())
            }
            Stopper::Signals { why } => {
                format!("SIGSTOP to each process, which its parent can see (no cgroup: {why})")
            }
        }
    }

    /// The root process id.
    pub fn pid(&self) -> u32 {
        match &self.root {
            Root::Spawned(child) => child.id(),
            Root::Attached(pid) => *pid,
        }
    }

    /// `Some(description)` once the root process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match &mut self.root {
            Root::Spawned(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(e) => Some(format!("unknown ({e})")),
            },
            Root::Attached(pid) => match state(*pid) {
                None | Some('Z') | Some('X') => Some("exited".into()),
                Some(_) => None,
            },
        }
    }

    /// The command line and working directory, for a restart at the destination.
    pub fn command(&self) -> io::Result<(Vec<Vec<u8>>, Vec<u8>)> {
        use std::os::unix::ffi::OsStrExt;
        let pid = self.pid();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
        let argv = cmdline
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))?;
        Ok((argv, cwd.as_os_str().as_bytes().to_vec()))
    }

    /// Who the root process runs as and its environment, for a restart at the destination.
    pub fn identity(&self) -> io::Result<Identity> {
        Identity::of_process(self.pid())
    }

    /// Stops the whole tree, so no write is in flight when the final copy starts: freezes its
    /// cgroup (returns once the kernel says every process is frozen), or SIGSTOPs every process.
    pub fn stop(&mut self) -> io::Result<()> {
        match &mut self.stopper {
            Stopper::Freezer(cgroup) => cgroup.freeze(),
            Stopper::Signals { .. } => stop_with_signals(self.pid()),
        }
    }

    /// Lets the whole tree run on.
    pub fn resume(&mut self) -> io::Result<()> {
        match &mut self.stopper {
            Stopper::Freezer(cgroup) => cgroup.thaw(),
            Stopper::Signals { .. } => signal_tree(self.pid(), Signal::CONT),
        }
    }

    /// SIGKILLs the whole tree (and reaps the root if we spawned it).
    pub fn kill(&mut self) -> io::Result<()> {
        match &mut self.stopper {
            Stopper::Freezer(cgroup) => cgroup.kill()?,
            Stopper::Signals { .. } => signal_tree(self.pid(), Signal::KILL)?,
        }
        if let Root::Spawned(child) = &mut self.root {
            child.wait()?;
        }
        Ok(())
    }

    /// Leaves it as it is and removes what we made: a cgroup of ours goes (its processes back
    /// where they came from). Left frozen (`send --then stop`), it stays stopped, by SIGSTOP
    /// taken before the thaw lets it run (a frozen process takes its pending signals before it
    /// returns to user code), so no cgroup is left behind. Also on drop.
    pub fn release(&mut self) -> io::Result<()> {
        let pid = self.pid();
        let Stopper::Freezer(cgroup) = &mut self.stopper else {
            return Ok(());
        };
        if cgroup.frozen() {
            signal_tree(pid, Signal::STOP)?;
            cgroup.thaw()?;
        }
        cgroup.release()?;
        self.stopper = Stopper::Signals {
            why: "its cgroup is released".into(),
        };
        Ok(())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// SIGSTOPs the tree of `root` and waits until every process in it is stopped.
fn stop_with_signals(root: u32) -> io::Result<()> {
    let mut stopped = BTreeSet::new();
    // A process may fork while we walk: walk again until no new one appears.
    loop {
        let tree = tree(root);
        let fresh: Vec<u32> = tree.difference(&stopped).copied().collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            signal(pid, Signal::STOP)?;
            stopped.insert(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for &pid in &stopped {
        while !has_stopped(pid) {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("process {pid} did not stop")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

fn signal_tree(root: u32, sig: Signal) -> io::Result<()> {
    for pid in tree(root) {
        signal(pid, sig)?;
    }
    Ok(())
}

fn signal(pid: u32, sig: Signal) -> io::Result<()> {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(());
    };
    match kill_process(pid, sig) {
        // Gone since we looked: nothing to signal.
        Err(rustix::io::Errno::SRCH) => Ok(()),
        other => other.map_err(io::Error::from),
    }
}

/// `(ppid, state)` from `/proc/PID/stat` (the name may hold spaces and parentheses).
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Every thread of `pid` has taken its SIGSTOP (or the process is gone). The state letter alone
/// is not enough under ptrace: a traced thread shows `t` in a system-call stop too, from which
/// its tracer lets it run on (and finish that call) before the signal is delivered; until then
/// the signal is still pending.
fn has_stopped(pid: u32) -> bool {
    const SIGSTOP_BIT: u64 = 1 << (Signal::STOP.as_raw() - 1);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            return true;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let pending = |name: &str| {
            field(name)
                .and_then(|mask| u64::from_str_radix(mask, 16).ok())
                .is_some_and(|mask| mask & SIGSTOP_BIT != 0)
        };
        let state = field("State:").and_then(|s| s.chars().next());
        matches!(state, Some('T' | 't' | 'Z' | 'X')) && !pending("SigPnd:") && !pending("ShdPnd:")
    })
}

fn state(pid: u32) -> Option<char> {
    stat(pid).map(|(_, s)| s)
}

/// `root` and all its descendants that exist now.
fn tree(root: u32) -> BTreeSet<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                if let Some((ppid, _)) = stat(pid) {
                    parents.push((pid, ppid));
                }
            }
        }
    }
    let mut tree = BTreeSet::new();
    if state(root).is_some() {
        tree.insert(root);
    }
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, ppid) in &parents {
            if tree.contains(&ppid) && tree.insert(pid) {
                grew = true;
            }
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    fn null() -> std::os::fd::OwnedFd {
        std::fs::File::create("/dev/null").unwrap().into()
    }

    #[test]
    fn stop_and_resume_reach_grandchildren() {
        let mut app = App::spawn(
            &["sh".into(), "-c".into(), "sleep 30 & sleep 30; wait".into()],
            null(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let members = tree(app.pid());
        assert!(members.len() >= 3, "{members:?}");
        app.stop().unwrap();
        match app.cgroup() {
            // Frozen tasks keep their state letter: the cgroup is what says they are stopped.
            Some(cgroup) => {
                assert!(cgroup.procs().unwrap().is_superset(&members));
                let events = std::fs::read_to_string(cgroup.path().join("cgroup.events"));
                assert!(events.unwrap().contains("frozen 1"));
            }
            None => assert!(members.iter().all(|&p| state(p) == Some('T'))),
        }
        app.resume().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(members.iter().all(|&p| state(p) == Some('S')));
        let dir = app.cgroup().map(|c| c.path().to_path_buf());
        app.kill().unwrap();
        assert!(app.exited().is_some());
        drop(app);
        assert!(dir.is_none_or(|d| !d.exists()), "the cgroup is removed");
    }

    #[test]
    fn identity_is_the_spawned_process_user() {
        let mut app = App::spawn(&["sleep".into(), "30".into()], null()).unwrap();
        let identity = app.identity().unwrap();
        app.kill().unwrap();
        assert_eq!(identity.uid, rustix::process::geteuid().as_raw());
        assert_eq!(identity.gid, rustix::process::getegid().as_raw());
        assert!(identity.env.iter().any(|entry| entry.starts_with(b"PATH=")));
    }
}
