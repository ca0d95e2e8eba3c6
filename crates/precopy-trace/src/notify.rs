//! The fanotify write monitor: writes to the recorded files are observed without stopping the
//! application. See `docs/tracer.md` ("Write monitors") for what it sees and what it does not.
//!
//! Each recorded file gets an inode mark (`FAN_MARK_ADD` on `/proc/PID/fd/N`, made by the
//! ptrace loop at the open's exit stop, before the application can write through the new fd)
//! with `FAN_MODIFY | FAN_CLOSE_WRITE`. A reader thread turns `FAN_MODIFY` events into
//! [`WriteEvent`]s. After a file's first event it removes `FAN_MODIFY` from that file's mark for
//! one *window* (`FAN_CLOSE_WRITE` stays, so the mark survives), then puts it back: a file
//! written continuously yields one event per window instead of one per `write`, which keeps the
//! kernel's per-write work and the reader's CPU small. A count is therefore the number of
//! windows in which the file was written (per writing process), a lower bound of its write
//! calls.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

use crate::error::TraceError;
use crate::paths::PathFilter;

/// A recorded file written by some process, seen through fanotify.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteEvent {
    /// Seconds since tracing began, when the event was read (at most a scheduling delay after
    /// the window's first write).
    pub t: f64,
    /// The writing process (thread group id).
    pub pid: u32,
    /// The file's path when the event was read (renames are followed by the kernel).
    pub path: String,
}

/// Adds marks to the monitor's group: what the ptrace loop holds.
#[derive(Debug, Clone)]
pub struct Marks {
    group: Arc<Fanotify>,
    filter: PathFilter,
}

/// The events a mark asks for.
fn mask() -> MaskFlags {
    MaskFlags::FAN_MODIFY | MaskFlags::FAN_CLOSE_WRITE
}

impl Marks {
    /// Marks the file `link` refers to (a `/proc/PID/fd/N` link, or a path) if `path`, its
    /// name, is one the filter records. Failures are ignored: the file's writes go unseen.
    pub fn add(&self, link: &str, path: &str) {
        if self.filter.allows(path) {
            let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
            let _ = self
                .group
                .mark(MarkFlags::FAN_MARK_ADD, mask(), cwd, Some(Path::new(link)));
        }
    }
}

/// The running monitor: a fanotify group and its reader thread.
#[derive(Debug)]
pub struct Monitor {
    marks: Marks,
    /// Written once to stop the reader: it wakes at once instead of at its next timeout.
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
    events: Receiver<WriteEvent>,
}

impl Monitor {
    /// Creates the group and starts the reader. `start` is time zero of the trace; `window` is
    /// how long a file's further writes are left unreported after an event. Needs
    /// `CAP_SYS_ADMIN`.
    pub fn start(
        start: Instant,
        window: Duration,
        filter: PathFilter,
    ) -> Result<Monitor, TraceError> {
        let group = Arc::new(notification_group()?);
        let (tx, events) = channel();
        let mut reader = Reader {
            group: Arc::clone(&group),
            start,
            window,
            held: HashMap::new(),
            tx,
        };
        let (stop, thread) = spawn_reader("fanotify", move |stop| {
            read_until_stopped(&mut reader, stop)
        })?;
        Ok(Monitor {
            marks: Marks { group, filter },
            stop,
            thread: Some(thread),
            events,
        })
    }

    /// A handle for adding marks.
    pub fn marks(&self) -> Marks {
        self.marks.clone()
    }

    /// The events read so far and not yet taken.
    pub fn take(&self) -> Vec<WriteEvent> {
        self.events.try_iter().collect()
    }

    /// Stops the reader after a last read of the queue (call it once the application is gone:
    /// every event of its writes is queued by then), and returns the events not yet taken.
    pub fn finish(mut self) -> Vec<WriteEvent> {
        self.stop_reader();
        self.take()
    }

    fn stop_reader(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Only fails if the counter would overflow: it is written once.
            let _ = self.stop.write(1);
            let _ = thread.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop_reader();
    }
}

/// A file whose `FAN_MODIFY` is off until `until`.
struct Held {
    fd: OwnedFd,
    until: Instant,
}

struct Reader {
    group: Arc<Fanotify>,
    start: Instant,
    window: Duration,
    /// Files with `FAN_MODIFY` removed, by (device, inode).
    held: HashMap<(u64, u64), Held>,
    tx: Sender<WriteEvent>,
}

/// A fanotify group for notifications (no permission events), read without blocking.
pub(crate) fn notification_group() -> Result<Fanotify, TraceError> {
    let flags = InitFlags::FAN_CLASS_NOTIF
        | InitFlags::FAN_CLOEXEC
        | InitFlags::FAN_NONBLOCK
        | InitFlags::FAN_UNLIMITED_QUEUE
        | InitFlags::FAN_UNLIMITED_MARKS;
    Fanotify::init(flags, EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE)
        .map_err(TraceError::Fanotify)
}

/// What a reader thread does each time it wakes ([`read_until_stopped`]).
pub(crate) trait Wakes {
    /// The group it reads.
    fn group(&self) -> BorrowedFd<'_>;
    /// Whether some file's events are held back until a window ends (read again soon).
    fn holding(&self) -> bool;
    /// Lets the held files whose window is over report again (all of them if `all`).
    fn rearm(&mut self, all: bool);
    /// Reads every queued event; false when the events' receiver is gone.
    fn drain(&mut self) -> bool;
    /// Other descriptors whose input `drain` reads (fork notices).
    fn also(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }
}

/// How long the reader sleeps after reading, before it waits for events again. A reader asleep
/// in `poll` on the group is woken by every event, in the context of the process that made it:
/// on `tar -x` of small files, a wake-up (a cross-CPU interrupt) per event. Asleep on a timer
/// while events come, it is woken by none of them and reads them in batches.
const BATCH: Duration = Duration::from_millis(10);

/// Reads events until `stop` is signalled (then a last time, every held file let go) or the
/// events' receiver is gone: after each read, a batch's time asleep, then until there are
/// events, the next re-arm is due, or the stop.
pub(crate) fn read_until_stopped(reader: &mut impl Wakes, stop: &EventFd) {
    let until_stopped = |timeout| {
        let _ = poll(&mut [PollFd::new(stop.as_fd(), PollFlags::POLLIN)], timeout);
    };
    loop {
        let done = stop.read().is_ok();
        reader.rearm(done);
        if !reader.drain() || done {
            return;
        }
        until_stopped(PollTimeout::try_from(BATCH).unwrap_or(PollTimeout::MAX));
        // Held files are let go at the next read: no wait for events then.
        let wait = if reader.holding() {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        let mut fds = vec![
            PollFd::new(reader.group(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            reader
                .also()
                .into_iter()
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
        );
        let _ = poll(&mut fds, wait);
    }
}

/// Starts `run` on a thread named `name`; returns the eventfd that asks it to stop (write 1),
/// and the thread.
pub(crate) fn spawn_reader<T: Send + 'static>(
    name: &str,
    run: impl FnOnce(&EventFd) -> T + Send + 'static,
) -> Result<(Arc<EventFd>, JoinHandle<T>), TraceError> {
    let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(TraceError::Fanotify)?;
    let stop = Arc::new(stop);
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(&flag))
        .map_err(|e| TraceError::Fanotify(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    Ok((stop, thread))
}

impl Wakes for Reader {
    fn group(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }

    fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    fn rearm(&mut self, all: bool) {
        Reader::rearm(self, all)
    }

    fn drain(&mut self) -> bool {
        Reader::drain(self)
    }
}

impl Reader {
    /// Puts `FAN_MODIFY` back on the files whose window is over (all of them if `all`).
    fn rearm(&mut self, all: bool) {
        let now = Instant::now();
        let group = &self.group;
        self.held.retain(|_, held| {
            if all || held.until <= now {
                let _ = group.mark(MarkFlags::FAN_MARK_ADD, mask(), &held.fd, None::<&Path>);
                false
            } else {
                true
            }
        });
    }

    /// Reads every queued event; false when the receiver is gone.
    fn drain(&mut self) -> bool {
        loop {
            let events = match self.group.read_events() {
                Ok(events) if !events.is_empty() => events,
                Err(Errno::EINTR) => continue,
                _ => return true,
            };
            let now = Instant::now();
            let t = now.duration_since(self.start).as_secs_f64();
            for event in &events {
                let Some(fd) = event.fd() else { continue };
                if !event.mask().contains(MaskFlags::FAN_MODIFY) {
                    continue;
                }
                let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
                let Ok(path) = std::fs::read_link(&link) else {
                    continue;
                };
                self.hold(fd, now);
                let event = WriteEvent {
                    t,
                    pid: event.pid().max(0) as u32,
                    path: path.to_string_lossy().into_owned(),
                };
                if self.tx.send(event).is_err() {
                    return false;
                }
            }
        }
    }

    /// Removes `FAN_MODIFY` from the file's mark for one window (if we can keep an fd to put it
    /// back; otherwise the file keeps reporting every write).
    fn hold(&mut self, fd: BorrowedFd, now: Instant) {
        if self.window.is_zero() {
            return;
        }
        let Ok(stat) = nix::sys::stat::fstat(fd) else {
            return;
        };
        let key = (stat.st_dev, stat.st_ino);
        if self.held.contains_key(&key) {
            return;
        }
        // At the fd limit, the file keeps reporting every write.
        let Ok(owned) = fd.try_clone_to_owned() else {
            return;
        };
        let removed = self.group.mark(
            MarkFlags::FAN_MARK_REMOVE,
            MaskFlags::FAN_MODIFY,
            &owned,
            None::<&Path>,
        );
        if removed.is_ok() {
            let until = now + self.window;
            self.held.insert(key, Held { fd: owned, until });
        }
    }
}
