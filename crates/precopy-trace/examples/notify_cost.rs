//! What watching costs the writer, without any tracer: `notify_cost DIR MODE [DRAIN_MS]` makes
//! 300,000 16-byte writes round-robin over 100 files while MODE watches them (`none`,
//! `fanotify`, `inotify`), with a reader thread that drains the queue every DRAIN_MS (0: a
//! blocking reader woken by every event). Prints the writer's time and the events read.
//! Used to choose the write monitor (docs/tracer.md).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags as InFlags, Inotify};

fn cwd() -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid as a dirfd for the whole program.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(&args[0]);
    let mode = args[1].as_str();
    let drain_ms: u64 = args.get(2).map_or(10, |a| a.parse().unwrap());
    let paths: Vec<_> = (0..100).map(|i| dir.join(format!("n{i:03}"))).collect();
    let mut files: Vec<File> = paths.iter().map(|p| File::create(p).unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let nonblock = drain_ms > 0;
    let reader = match mode {
        "fanotify" => {
            let mut flags = InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC;
            if nonblock {
                flags |= InitFlags::FAN_NONBLOCK;
            }
            let fan =
                Fanotify::init(flags, EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE).unwrap();
            for p in &paths {
                fan.mark(
                    MarkFlags::FAN_MARK_ADD,
                    MaskFlags::FAN_MODIFY,
                    cwd(),
                    Some(p.as_path()),
                )
                .unwrap();
            }
            let (stop, events) = (stop.clone(), events.clone());
            Some(std::thread::spawn(move || loop {
                let done = stop.load(Ordering::SeqCst);
                loop {
                    match fan.read_events() {
                        Ok(evs) if !evs.is_empty() => {
                            for e in &evs {
                                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                                if let Some(fd) = e.fd() {
                                    unsafe {
                                        libc::fstat(
                                            std::os::fd::AsRawFd::as_raw_fd(&fd),
                                            st.as_mut_ptr(),
                                        )
                                    };
                                }
                            }
                            events.fetch_add(evs.len() as u64, Ordering::Relaxed);
                            if !nonblock {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                if done {
                    return;
                }
                if nonblock {
                    std::thread::sleep(Duration::from_millis(drain_ms));
                }
            }))
        }
        "rearm" => {
            // After a file's first event in a tick, remove FAN_MODIFY from its mark (keeping
            // FAN_CLOSE_WRITE so that the mark stays); put it back at the next tick.
            let flags =
                InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK;
            let fan =
                Fanotify::init(flags, EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE).unwrap();
            let cwd = unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) };
            for p in &paths {
                fan.mark(
                    MarkFlags::FAN_MARK_ADD,
                    MaskFlags::FAN_MODIFY | MaskFlags::FAN_CLOSE_WRITE,
                    cwd,
                    Some(p.as_path()),
                )
                .unwrap();
            }
            let (stop, events) = (stop.clone(), events.clone());
            Some(std::thread::spawn(move || {
                let mut held: Vec<std::os::fd::OwnedFd> = Vec::new();
                loop {
                    let done = stop.load(Ordering::SeqCst);
                    for fd in held.drain(..) {
                        let _ = fan.mark(
                            MarkFlags::FAN_MARK_ADD,
                            MaskFlags::FAN_MODIFY,
                            &fd,
                            None::<&std::path::Path>,
                        );
                    }
                    while let Ok(evs) = fan.read_events() {
                        if evs.is_empty() {
                            break;
                        }
                        for e in &evs {
                            if let Some(fd) = e.fd() {
                                if e.mask().contains(MaskFlags::FAN_MODIFY) {
                                    let _ = fan.mark(
                                        MarkFlags::FAN_MARK_REMOVE,
                                        MaskFlags::FAN_MODIFY,
                                        fd,
                                        None::<&std::path::Path>,
                                    );
                                    held.push(fd.try_clone_to_owned().unwrap());
                                }
                            }
                        }
                        events.fetch_add(evs.len() as u64, Ordering::Relaxed);
                    }
                    if done {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(drain_ms));
                }
            }))
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
            let _ = ino.as_fd();
            let (stop, events) = (stop.clone(), events.clone());
            Some(std::thread::spawn(move || loop {
                let done = stop.load(Ordering::SeqCst);
                loop {
                    match ino.read_events() {
                        Ok(evs) if !evs.is_empty() => {
                            events.fetch_add(evs.len() as u64, Ordering::Relaxed);
                            if !nonblock {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                if done {
                    return;
                }
                if nonblock {
                    std::thread::sleep(Duration::from_millis(drain_ms));
                }
            }))
        }
        _ => None,
    };
    let start = Instant::now();
    for i in 0..300_000 {
        files[i % 100].write_all(b"0123456789abcdef").unwrap();
    }
    let took = start.elapsed();
    println!(
        "{mode} drain={drain_ms}ms writes: {:.3}s",
        took.as_secs_f64()
    );
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
