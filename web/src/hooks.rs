//! Hooks shared by components.

mod use_interval;

pub use use_interval::use_interval;
