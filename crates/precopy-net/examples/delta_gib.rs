//! A 1 GiB file changed by 100 random 8 KiB writes between two sends (issue 11): bytes on the
//! wire, the time to compute the delta at the source and to apply it at the destination, against
//! the file's size over the disk's speed; and `rsync --no-whole-file` resyncing the same change
//! between the same two copies, side by side.
//!
//!   cargo run --release -p precopy-net --example delta_gib [-- DIR]
//!
//! DIR (default: a temporary directory under /var/tmp) must hold 3 GiB.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use precopy_net::receiver::Receiver;
use precopy_net::store::Store;
use precopy_net::transport::Transport;
use precopy_net::wire::Compress;
use precopy_proto::Key;

const SIZE: u64 = 1 << 30;
const WRITES: usize = 100;
const WRITE: usize = 8192;

fn main() -> anyhow::Result<()> {
    let work = match std::env::args().nth(1) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir_in("/var/tmp")?,
    };
    let (src, dst) = (work.path().join("src"), work.path().join("dst"));
    fs::create_dir(&src)?;
    let file = src.join("big");
    let mut rng = Xorshift(0x5EED);
    write_random(&file, SIZE, &mut rng)?;
    drop_caches(&file)?;
    let disk_read = time(|| read_all(&file))?;

    let key = Key::from_token(b"delta-gib-benchmark-token-0123")?;
    let key_again = key.clone();
    let receiver = Arc::new(Receiver {
        store: Store::open(&dst)?,
        key: key.clone(),
        restart_grace: Duration::ZERO,
    });
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || receiver.serve(listener));
    let mut transport = Transport::connect(&addr, key, None, Compress::Off, true)?;

    let whole = time(|| {
        transport.send_file(0, b"big", &file)?;
        transport.wait_acks()?;
        anyhow::Ok(())
    })?;
    let rsync_base = work.path().join("rsync-dst");
    fs::copy(&file, &rsync_base)?;

    change(&file, &mut rng)?;
    drop_caches(&file)?;
    drop_caches(&dst.join("big"))?;

    let before = transport.written();
    let started = Instant::now();
    let sent = transport.send_file(0, b"big", &file)?.expect("a file");
    let compute = started.elapsed();
    transport.wait_acks()?;
    let total = started.elapsed();
    let wire = transport.written() - before;
    anyhow::ensure!(transport.take_refused().is_empty(), "the delta was refused");
    anyhow::ensure!(
        precopy_net::store::hash_reader(File::open(&file)?)?
            == precopy_net::store::hash_reader(File::open(dst.join("big"))?)?,
        "the copies differ"
    );

    // Warm: the file and the copy in the page cache, as a database's hot file is at the stop.
    // The same change resent as a delta and whole (a second session holds no base).
    let mut whole_link = Transport::connect(&addr, key_again, None, Compress::Off, false)?;
    let mut warm = |transport: &mut Transport| {
        change(&file, &mut rng)?;
        read_all(&file)?;
        read_all(&dst.join("big"))?;
        time(|| {
            transport.send_file(0, b"big", &file)?;
            transport.wait_acks()?;
            anyhow::Ok(())
        })
    };
    let (warm_delta, warm_whole) = (warm(&mut transport)?, warm(&mut whole_link)?);
    let (warm_delta2, warm_whole2) = (warm(&mut transport)?, warm(&mut whole_link)?);

    drop_caches(&file)?;
    drop_caches(&rsync_base)?;
    let rsync_started = Instant::now();
    let rsync = Command::new("rsync")
        // --ignore-times: the quick check must not skip the file; a temporary file renamed into
        // place, as the receiver does.
        .args(["--no-whole-file", "--ignore-times", "--stats"])
        .arg(&file)
        .arg(&rsync_base)
        .output()
        .map(|out| {
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                out.status,
            )
        });
    let rsync_s = rsync_started.elapsed().as_secs_f64();

    let mib = |d: Duration| SIZE as f64 / d.as_secs_f64() / (1 << 20) as f64;
    println!("1 GiB file, {WRITES} random {WRITE}-byte writes between two sends");
    println!(
        "disk: cold read of the file {:.2} s ({:.0} MiB/s); first send (whole) {:.2} s",
        disk_read.as_secs_f64(),
        mib(disk_read),
        whole.as_secs_f64()
    );
    println!(
        "delta: {} bytes of content, {} on the wire = {:.3} % of the file",
        sent.bytes,
        wire,
        100.0 * wire as f64 / SIZE as f64
    );
    println!(
        "delta: source read + digests + send {:.2} s ({:.0} MiB/s), destination apply \
         (copy, patch, hash, rename) {:.2} s; total {:.2} s = {:.2} × the cold read",
        compute.as_secs_f64(),
        mib(compute),
        (total - compute).as_secs_f64(),
        total.as_secs_f64(),
        total.as_secs_f64() / disk_read.as_secs_f64()
    );
    println!(
        "warm resend of the same kind of change (file and copy in the page cache), two rounds: \
         delta {:.2} s / {:.2} s, whole {:.2} s / {:.2} s",
        warm_delta.as_secs_f64(),
        warm_delta2.as_secs_f64(),
        warm_whole.as_secs_f64(),
        warm_whole2.as_secs_f64()
    );
    match rsync {
        Ok((stats, status)) if status.success() => {
            let field = |name: &str| {
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            println!(
                "rsync --no-whole-file --ignore-times, same change, same base: {:.2} s; total bytes \
                 sent {}, literal data {}",
                rsync_s,
                field("Total bytes sent:"),
                field("Literal data:")
            );
        }
        Ok((_, status)) => println!("rsync failed: {status}"),
        Err(e) => println!("rsync not run: {e}"),
    }
    Ok(())
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// {WRITES} random {WRITE}-byte writes.
fn change(path: &Path, rng: &mut Xorshift) -> std::io::Result<()> {
    let target = OpenOptions::new().write(true).open(path)?;
    let mut block = vec![0u8; WRITE];
    for _ in 0..WRITES {
        let offset = rng.next() % (SIZE - WRITE as u64);
        rng.fill(&mut block);
        target.write_all_at(&block, offset)?;
    }
    Ok(())
}

fn write_random(path: &Path, size: u64, rng: &mut Xorshift) -> std::io::Result<()> {
    let mut out = File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..size / buf.len() as u64 {
        rng.fill(&mut buf);
        out.write_all(&buf)?;
    }
    out.sync_all()
}

fn read_all(path: &Path) -> anyhow::Result<()> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while file.read(&mut buf)? > 0 {}
    Ok(())
}

/// Evicts the file from the page cache, so that reads go to the disk.
fn drop_caches(path: &Path) -> std::io::Result<()> {
    let file = File::open(path)?;
    file.sync_all()?;
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

fn time<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}
