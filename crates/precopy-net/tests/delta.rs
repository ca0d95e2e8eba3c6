//! Delta resends end to end, in one process: a `Receiver` on loopback and a `Transport`. Each
//! kind of change arrives byte-identical, and costs the blocks it touched (counted here from the
//! change itself); a delta on a copy that changed behind the receiver's back replaces nothing and
//! is sent again whole.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use precopy_net::delta::BLOCK;
use precopy_net::receiver::Receiver;
use precopy_net::store::Store;
use precopy_net::transport::{Sent, Transport};
use precopy_net::wire::Compress;
use precopy_proto::Key;

const TOKEN: &[u8] = b"delta-test-token-0123456789";
const MIB: usize = 1 << 20;

struct Pair {
    src: PathBuf,
    dst: PathBuf,
    transport: Transport,
    _work: tempfile::TempDir,
}

fn pair() -> Pair {
    let work = tempfile::tempdir().unwrap();
    let (src, dst) = (work.path().join("src"), work.path().join("dst"));
    fs::create_dir(&src).unwrap();
    let key = Key::from_token(TOKEN).unwrap();
    let receiver = Arc::new(Receiver {
        store: Store::open(&dst).unwrap(),
        key: key.clone(),
        restart_grace: Duration::ZERO,
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || receiver.serve(listener));
    let transport = Transport::connect(&addr, key, None, Compress::Off, true).unwrap();
    Pair {
        src,
        dst,
        transport,
        _work: work,
    }
}

impl Pair {
    fn send(&mut self, file: usize, name: &str) -> Sent {
        self.transport
            .send_file(file, name.as_bytes(), &self.src.join(name))
            .unwrap()
            .expect("a regular file")
    }

    fn settle(&mut self) {
        self.transport.wait_acks().unwrap();
    }

    fn assert_equal(&self, name: &str) {
        let (s, d) = (self.src.join(name), self.dst.join(name));
        assert!(
            fs::read(&s).unwrap() == fs::read(&d).unwrap(),
            "{name} differs"
        );
    }
}

/// Deterministic bytes that do not repeat per block.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Bytes of the blocks that `len` bytes at `offset` touch, within a file of `size` bytes.
fn blocks_touched(offset: usize, len: usize, size: usize) -> u64 {
    let first = offset / BLOCK;
    let last = (offset + len).div_ceil(BLOCK);
    ((last * BLOCK).min(size) - first * BLOCK) as u64
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(data, offset).unwrap();
}

#[test]
fn each_kind_of_change_arrives_exact_and_costs_the_blocks_it_touched() {
    let mut p = pair();
    let names = ["appended", "middle", "truncated", "holed", "replaced"];
    for (i, name) in names.iter().enumerate() {
        fs::write(p.src.join(name), noise(MIB, i as u64)).unwrap();
        let sent = p.send(i, name);
        assert_eq!(
            (sent.size, sent.bytes),
            (MIB as u64, MIB as u64),
            "first send is whole"
        );
    }
    p.settle();

    let appended = p.src.join("appended");
    let mut file = OpenOptions::new().append(true).open(&appended).unwrap();
    std::io::Write::write_all(&mut file, &noise(30_000, 10)).unwrap();
    write_at(&p.src.join("middle"), 400_000, &noise(5000, 11));
    OpenOptions::new()
        .write(true)
        .open(p.src.join("truncated"))
        .unwrap()
        .set_len(600_000)
        .unwrap();
    let holed = OpenOptions::new()
        .write(true)
        .open(p.src.join("holed"))
        .unwrap();
    holed.set_len(2 * MIB as u64).unwrap();
    holed.write_all_at(&noise(100, 12), 1_800_000).unwrap();
    fs::write(p.src.join("replaced"), noise(MIB, 13)).unwrap();

    let expected = [
        ("appended", blocks_touched(MIB, 30_000, MIB + 30_000)),
        ("middle", blocks_touched(400_000, 5000, MIB)),
        // The cut's last block is partial: it differs from the whole one sent before.
        ("truncated", (600_000 % BLOCK) as u64),
        // Zeros past the old end are not sent: the receiver extends its copy with them.
        ("holed", blocks_touched(1_800_000, 100, 2 * MIB)),
        ("replaced", MIB as u64),
    ];
    for (i, (name, bytes)) in expected.iter().enumerate() {
        let sent = p.send(i, name);
        assert_eq!(sent.bytes, *bytes, "{name}: bytes sent");
    }
    p.settle();
    assert_eq!(p.transport.take_refused(), Vec::<usize>::new());
    for name in names {
        p.assert_equal(name);
    }
    let holed_blocks = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p.dst.join("holed")).unwrap().blocks() * 512
    };
    assert!(
        holed_blocks < 2 * MIB as u64,
        "the hole stays a hole at the destination"
    );

    // The replaced file's delta changed every block: its next resend goes whole, and costs the
    // whole file although one byte changed.
    write_at(&p.src.join("replaced"), 0, &[0xAB]);
    let deltas = p.transport.deltas;
    assert_eq!(p.send(4, "replaced").bytes, MIB as u64);
    assert_eq!(p.transport.deltas, deltas, "sent whole, not as a delta");
    // …and the one after that is a delta again.
    write_at(&p.src.join("replaced"), 0, &[0xCD]);
    assert_eq!(p.send(4, "replaced").bytes, BLOCK as u64);
    p.settle();
    p.assert_equal("replaced");
}

#[test]
fn versions_sent_back_to_back_chain_without_waiting_for_acknowledgements() {
    let mut p = pair();
    let path = p.src.join("f");
    fs::write(&path, noise(MIB, 1)).unwrap();
    p.send(0, "f");
    for round in 0..5u8 {
        write_at(&path, u64::from(round) * 100_000, &[round; 10]);
        let sent = p.send(0, "f");
        assert_eq!(
            sent.bytes,
            blocks_touched(round as usize * 100_000, 10, MIB)
        );
    }
    p.settle();
    assert!(p.transport.take_refused().is_empty());
    p.assert_equal("f");
}

#[test]
fn a_copy_changed_behind_the_receivers_back_is_never_patched_and_is_sent_whole() {
    let mut p = pair();
    let path = p.src.join("f");
    fs::write(&path, noise(MIB, 1)).unwrap();
    p.send(7, "f");
    p.settle();
    // Someone writes into the destination's copy.
    write_at(&p.dst.join("f"), 5000, b"corrupted");
    let corrupted = fs::read(p.dst.join("f")).unwrap();
    write_at(&path, 900_000, b"new data");
    let sent = p.send(7, "f");
    assert_eq!(
        sent.bytes,
        blocks_touched(900_000, 8, MIB),
        "sent as a delta"
    );
    p.settle();
    assert_eq!(
        p.transport.take_refused(),
        [7],
        "the receiver refuses the delta"
    );
    assert!(
        fs::read(p.dst.join("f")).unwrap() == corrupted,
        "nothing was renamed into place"
    );
    let again = p.send(7, "f");
    assert_eq!(again.bytes, MIB as u64, "the resend goes whole");
    p.settle();
    assert!(p.transport.take_refused().is_empty());
    p.assert_equal("f");
}

#[test]
fn once_the_application_is_stopped_a_resend_goes_the_way_that_moved_files_faster() {
    let mut p = pair();
    let path = p.src.join("db");
    fs::write(&path, noise(2 * MIB, 7)).unwrap();
    p.send(0, "db");
    p.settle();
    // Rates as if deltas had moved files a thousand times more slowly than whole sends.
    p.transport.rates.record(false, 64 * MIB as u64, 0.01);
    p.transport.rates.record(true, 64 * MIB as u64, 10.0);

    write_at(&path, 0, &noise(BLOCK, 8));
    let before = p.transport.deltas;
    let sent = p.send(0, "db");
    p.settle();
    assert_eq!(sent.bytes, BLOCK as u64, "still running: fewer bytes wins");
    assert_eq!(p.transport.deltas, before + 1);

    p.transport.minimise_time();
    write_at(&path, 0, &noise(BLOCK, 9));
    let sent = p.send(0, "db");
    p.settle();
    assert_eq!(sent.bytes, 2 * MIB as u64, "stopped: the faster way, whole");
    assert_eq!(p.transport.deltas, before + 1);
    p.assert_equal("db");
}
