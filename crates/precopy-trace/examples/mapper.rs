//! Writes a file through a shared, writable mapping (the tracer's blind spot, which it must
//! flag): `mapper FILE`.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

fn main() {
    let path = std::env::args().nth(1).expect("usage: mapper FILE");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open");
    file.set_len(4096).expect("set_len");
    // SAFETY: a fresh shared mapping of a file we own, written within its length, unmapped.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap");
        map.cast::<u8>().write_bytes(b'x', 4096);
        libc::munmap(map, 4096);
    }
}
