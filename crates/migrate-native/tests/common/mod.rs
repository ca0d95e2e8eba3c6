//! Helpers shared by the integration tests that run `receive`.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// Reads the address a just-started `receive` prints first ("listening on ADDR").
pub fn listening_addr(receiver: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(receiver.stdout.take().expect("receive's stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("receive said {line:?}"))
        .to_string()
}
