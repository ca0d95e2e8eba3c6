//! What watching costs the writer, without any tracer: `notify_cost DIR MODE [DRAIN_MS]` makes
//! 300,000 16-byte writes round-robin over 100 files while MODE watches them (`none`,
//! `fanotify`, `rearm` (fanotify with FAN_MODIFY removed for one tick after an event, as the
//! tracer's monitor does), `inotify`), with a reader thread that drains the queue every DRAIN_MS
//! (0: a blocking reader woken by every event). Prints the writer's time and the events read.
//! Used to choose the write monitor (docs/tracer.md).

use std::fs::File;
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags as InFlags, Inotify};

fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid as a dirfd for the whole program.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

fn fanotify(nonblock: bool, mask: MaskFlags, paths: &[PathBuf]) -> Fanotify {
    let mut flags = InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC;
    if nonblock {
        flags |= InitFlags::FAN_NONBLOCK;
    }
    let fan = Fanotify::init(flags, EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE).unwrap();
    for p in paths {
        fan.mark(MarkFlags::FAN_MARK_ADD, mask, cwd(), Some(p.as_path()))
            .unwrap();
    }
    fan
}

/// A reader thread: `read` takes what is queued and returns how many events it read (0 when
/// the queue is empty). Non-blocking readers drain the queue each tick, and once more after the
/// stop; a blocking one reads once per wake-up and sees the stop after the wake-up the writer's
/// last write causes. `tick` runs before each drain.
fn reader(
    stop: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
    drain_ms: u64,
    mut tick: impl FnMut() + Send + 'static,
    mut read: impl FnMut() -> u64 + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || loop {
        let done = stop.load(Ordering::SeqCst);
        tick();
        loop {
            let n = read();
            events.fetch_add(n, Ordering::Relaxed);
            if n == 0 || drain_ms == 0 {
                break;
            }
        }
        if done || (drain_ms == 0 && stop.load(Ordering::SeqCst)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(drain_ms));
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(&args[0]);
    let mode = args[1].as_str();
    let drain_ms: u64 = args.get(2).map_or(10, |a| a.parse().unwrap());
    let paths: Vec<_> = (0..100).map(|i| dir.join(format!("n{i:03}"))).collect();
    let mut files: Vec<File> = paths.iter().map(|p| File::create(p).unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let nonblock = drain_ms > 0;
    let spawn = |tick, read| Some(reader(stop.clone(), events.clone(), drain_ms, tick, read));
    let reader = match mode {
        "fanotify" => {
            let fan = fanotify(nonblock, MaskFlags::FAN_MODIFY, &paths);
            spawn(
                Box::new(|| {}) as Box<dyn FnMut() + Send>,
                Box::new(move || {
                    let evs = fan.read_events().unwrap_or_default();
                    // What the tracer's reader does with each event's fd.
                    for fd in evs.iter().filter_map(|e| e.fd()) {
                        let _ = nix::sys::stat::fstat(fd);
                    }
                    evs.len() as u64
                }) as Box<dyn FnMut() -> u64 + Send>,
            )
        }
        "rearm" => {
            let mask = MaskFlags::FAN_MODIFY | MaskFlags::FAN_CLOSE_WRITE;
            let fan = Arc::new(fanotify(true, mask, &paths));
            let held = Arc::new(std::sync::Mutex::new(Vec::<OwnedFd>::new()));
            let (rearm_fan, rearm_held) = (fan.clone(), held.clone());
            spawn(
                Box::new(move || {
                    for fd in rearm_held.lock().unwrap().drain(..) {
                        let add = MarkFlags::FAN_MARK_ADD;
                        let _ = rearm_fan.mark(add, MaskFlags::FAN_MODIFY, &fd, None::<&Path>);
                    }
                }),
                Box::new(move || {
                    let evs = fan.read_events().unwrap_or_default();
                    for e in evs
                        .iter()
                        .filter(|e| e.mask().contains(MaskFlags::FAN_MODIFY))
                    {
                        if let Some(fd) = e.fd() {
                            let remove = MarkFlags::FAN_MARK_REMOVE;
                            let _ = fan.mark(remove, MaskFlags::FAN_MODIFY, fd, None::<&Path>);
                            held.lock().unwrap().push(fd.try_clone_to_owned().unwrap());
                        }
                    }
                    evs.len() as u64
                }),
            )
        }
        "inotify" => {
            let mut flags = InFlags::IN_CLOEXEC;
            if nonblock {
                flags |= InFlags::IN_NONBLOCK;
            }
            let ino = Inotify::init(flags).unwrap();
            for p in &paths {
                ino.add_watch(p.as_path(), AddWatchFlags::IN_MODIFY)
                    .unwrap();
            }
            spawn(
                Box::new(|| {}),
                Box::new(move || ino.read_events().map_or(0, |evs| evs.len() as u64)),
            )
        }
        _ => None,
    };
    let start = Instant::now();
    for i in 0..300_000 {
        files[i % 100].write_all(b"0123456789abcdef").unwrap();
    }
    let took = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    // A last write wakes a blocking reader so that it can see the stop flag.
    files[0].write_all(b"x").unwrap();
    if let Some(r) = reader {
        r.join().unwrap();
    }
    println!(
        "{mode} drain={drain_ms}ms writes: {:.3}s events: {}",
        took.as_secs_f64(),
        events.load(Ordering::Relaxed)
    );
}
