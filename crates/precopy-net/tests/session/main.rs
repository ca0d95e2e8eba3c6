//! The receiving session without sockets: scripted sessions whose actions are worked out by hand,
//! generated sessions checked against the model of the protocol that the `session` fuzz target
//! checks (`fuzz/session_property.rs`), and the fuzzer's committed inputs replayed on stable.

mod corpus;
mod generated;
mod script;
mod scripted;
#[path = "../../fuzz/session_property.rs"]
mod session_property;
