//! A program that computes and does almost no I/O, for the benchmark's low-overhead case:
//! `compute [ROUNDS]`.

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .map_or(200_000_000, |r| r.parse().expect("ROUNDS"));
    let mut x: u64 = 1;
    for i in 0..rounds {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    println!("{x}");
}
