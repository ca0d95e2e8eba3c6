//! A write-heavy program with known file use, for tests and the benchmark:
//! `writer DIR WRITES FILES THREADS` creates `FILES` files in `DIR` and makes `WRITES` small
//! `write` calls spread round-robin over them, split among `THREADS` threads (the files are
//! opened once, before the threads start, so the threads share the fds).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, writes, files, threads] = &args[..] else {
        eprintln!("usage: writer DIR WRITES FILES THREADS");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let writes: usize = writes.parse().expect("WRITES");
    let count: usize = files.parse().expect("FILES");
    let threads: usize = threads.parse().expect("THREADS");
    let files: Arc<Vec<File>> = Arc::new(
        (0..count)
            .map(|i| File::create(dir.join(format!("f{i:03}"))).expect("create"))
            .collect(),
    );
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                for i in (t..writes).step_by(threads) {
                    (&files[i % files.len()])
                        .write_all(b"0123456789abcdef")
                        .expect("write");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
}
