//! A workload with hot and cold files, for comparing the write monitors through the simulator
//! (docs/bench-trace.md): `workload DIR SECONDS`. 10 read-only files are read once; 30
//! read-write files of 10–300 KB are written with 64-byte `pwrite`s, file `i` once every
//! `[1, 4, 20, 100, 400, 2000][i % 6]` ms, for SECONDS seconds.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seconds] = &args[..] else {
        eprintln!("usage: workload DIR SECONDS");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let seconds: f64 = seconds.parse().expect("SECONDS");
    for i in 0..10 {
        let path = dir.join(format!("ro{i:02}"));
        if !path.exists() {
            std::fs::write(&path, vec![b'r'; 20_000 * (i + 1)]).expect("ro");
        }
        let mut text = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut text))
            .expect("read");
    }
    const EVERY_MS: [u64; 6] = [1, 4, 20, 100, 400, 2000];
    let files: Vec<(File, u64, u64)> = (0..30u64)
        .map(|i| {
            let size = 10_000 * (i + 1);
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(format!("rw{i:02}")))
                .expect("rw");
            file.set_len(size).expect("set_len");
            (file, size, EVERY_MS[i as usize % 6])
        })
        .collect();
    let start = Instant::now();
    let mut tick: u64 = 0;
    while start.elapsed().as_secs_f64() < seconds {
        for (n, (file, size, every)) in files.iter().enumerate() {
            if tick % every == 0 {
                let offset = (tick * 7919 + n as u64 * 104_729) % (size - 64);
                file.write_all_at(&[b'w'; 64], offset).expect("pwrite");
            }
        }
        tick += 1;
        let next = start + Duration::from_millis(tick);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
