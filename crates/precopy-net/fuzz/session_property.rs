// The property the `session` fuzz target checks, shared with the stable replay and the property
// tests in `tests/session/` (included there with `#[path]`, here with `include!`).
//
// The input is read as plaintext frames (the record layer is the `record` target's) and fed to a
// receiving session on a memory destination until a frame is refused, the session closes or the
// frames run out. Besides never panicking, the session must follow the protocol as a model of it
// written from docs/protocol.md (`Model`) sees it:
// - a frame out of order (inside a file, between a manifest's parts, a frame only the receiver
//   sends…) is refused with a protocol error naming it (an error frame ends the session as the
//   peer's error), and after a refusal or `bye` every frame is refused;
// - a frame in order fails only where the destination may refuse it: a patch past the delta's
//   size, a whole file whose size or hash differs;
// - acknowledgements come only for sealed files, in the order they ended, each once, and only
//   once the destination committed it;
// - an answer (`have`, `verdict`, a restart) comes after the acknowledgements of every file
//   sealed before it and answers its request (`have`: as many flags as entries asked about, each
//   saying whether the destination holds it); nothing else is answered; `bye` alone closes;
// - a delta whose base is in the batch commits the batch first; a delta whose base is not at the
//   destination is answered by exactly one `resend`, at its end; a whole file never is;
// - the summary counts what was acknowledged and refused.

use std::collections::VecDeque;

use precopy_net::session::{memory::Memory, Action, Session, SessionError};
use precopy_net::store::StoreError;
use precopy_net::wire::WireError;
use precopy_proto::{parse, ErrorCode, Message};

/// Feeds the frames of `data` to a session and checks it against the model (see above).
pub fn check(data: &[u8]) {
    let mut session = Session::new(Memory::default());
    let mut model = Model::default();
    let mut rest = data;
    while let Ok(Some((message, used))) = parse(rest) {
        rest = &rest[used..];
        let mut out = Vec::new();
        let result = session.on_message(message.clone(), &mut out);
        if !model.follow(&message, &result, &out, session.destination()) {
            break;
        }
    }
    // Once refused or closed, the session takes nothing more.
    if let Ok(Some((message, _))) = parse(rest) {
        let mut out = Vec::new();
        let result = session.on_message(message.clone(), &mut out);
        refused(&message, &result);
        assert!(out.is_empty(), "{:?} after the end", out);
    }
    let summary = session.summary();
    assert_eq!(summary.files, model.acked as u64, "files stored");
    assert_eq!(summary.resends, model.resends, "deltas refused");
}

/// Where the model says the session is.
#[derive(Debug, Default)]
enum Phase {
    #[default]
    Idle,
    /// A file or delta arriving; `skipped`: a delta whose base is not at the destination.
    File {
        id: u64,
        rel: Vec<u8>,
        delta: bool,
        skipped: bool,
    },
    /// Entries of the manifest's parts so far.
    Manifest(usize),
}

#[derive(Debug, Default)]
struct Model {
    phase: Phase,
    /// Files sealed and not yet acknowledged, in the order they ended.
    sealed: VecDeque<(u64, Vec<u8>)>,
    acked: usize,
    resends: u64,
}

impl Model {
    /// Whether the protocol allows `message` now.
    fn in_order(&self, message: &Message<'_>) -> bool {
        match (&self.phase, message) {
            (
                Phase::Idle,
                Message::FileStart(_)
                | Message::DeltaStart(_)
                | Message::Rename { .. }
                | Message::Query(_)
                | Message::Manifest { .. }
                | Message::Restart { .. }
                | Message::Bye,
            ) => true,
            (Phase::File { delta: false, .. }, Message::Chunk(_)) => true,
            (Phase::File { delta: true, .. }, Message::Patch { .. }) => true,
            (Phase::File { id, .. }, Message::FileEnd { id: end, .. }) => id == end,
            (Phase::Manifest(_), Message::Manifest { .. }) => true,
            _ => false,
        }
    }

    /// Entries of the manifest once `message`, a part of it, is added.
    fn manifest_entries(&self, nodes: usize) -> usize {
        match self.phase {
            Phase::Manifest(before) => before + nodes,
            _ => nodes,
        }
    }

    /// Checks what the session did with `message` and follows it; whether the session goes on.
    fn follow(
        &mut self,
        message: &Message<'_>,
        result: &Result<(), SessionError>,
        out: &[Action],
        memory: &Memory,
    ) -> bool {
        let in_order = self.in_order(message);
        let answered = self.check_actions(message, in_order, out, memory);
        match message {
            Message::DeltaStart(header) if in_order => {
                let rel = header.path.as_bytes();
                assert!(
                    self.sealed.iter().all(|(_, sealed)| sealed != rel),
                    "a delta built on a base still in the batch"
                );
            }
            Message::FileStart(_)
            | Message::Chunk(_)
            | Message::DeltaStart(_)
            | Message::Patch { .. }
            | Message::FileEnd { .. } => {}
            _ => assert!(
                self.sealed.is_empty(),
                "{} handled before the batch was acknowledged",
                message.name()
            ),
        }
        if !in_order {
            refused(message, result);
            return false;
        }
        let expected = matches!(
            message,
            Message::Query(_)
                | Message::Manifest { last: true, .. }
                | Message::Restart { .. }
                | Message::Bye
        );
        if let Err(error) = result {
            // Only the destination refuses a frame in order: data that does not add up.
            let may_fail = matches!(message, Message::Patch { .. })
                || matches!(
                    (&self.phase, message),
                    (Phase::File { delta: false, .. }, Message::FileEnd { .. })
                );
            assert!(
                may_fail && matches!(error, SessionError::Store(StoreError::Integrity { .. })),
                "{} in order failed: {error}",
                message.name()
            );
            return false;
        }
        assert_eq!(answered, expected, "{} answered", message.name());
        let manifest = match message {
            Message::Manifest { nodes, .. } => self.manifest_entries(nodes.len()),
            _ => 0,
        };
        self.phase = match (std::mem::take(&mut self.phase), message) {
            (_, Message::FileStart(header)) => Phase::File {
                id: header.id,
                rel: header.path.as_bytes().to_vec(),
                delta: false,
                skipped: false,
            },
            (_, Message::DeltaStart(header)) => {
                let rel = header.path.as_bytes();
                let base = memory.files.get(rel).is_some_and(|data| {
                    data.len() as u64 == header.base_size
                        && blake3::hash(data).as_bytes() == &header.base_hash
                });
                Phase::File {
                    id: header.id,
                    rel: rel.to_vec(),
                    delta: true,
                    skipped: !base,
                }
            }
            (file @ Phase::File { .. }, Message::Chunk(_) | Message::Patch { .. }) => file,
            (
                Phase::File {
                    id,
                    rel,
                    delta,
                    skipped,
                },
                Message::FileEnd { .. },
            ) => {
                let resent = out.contains(&Action::Resend(id));
                assert!(delta || !resent, "a whole file answered with resend");
                assert!(!skipped || resent, "a delta without its base not resent");
                if resent {
                    self.resends += 1;
                } else {
                    self.sealed.push_back((id, rel));
                }
                Phase::Idle
            }
            (_, Message::Manifest { last: false, .. }) => Phase::Manifest(manifest),
            _ => Phase::Idle,
        };
        !matches!(message, Message::Bye)
    }

    /// Checks the actions in order; returns whether `message` was answered.
    fn check_actions(
        &mut self,
        message: &Message<'_>,
        in_order: bool,
        out: &[Action],
        memory: &Memory,
    ) -> bool {
        let mut answered = false;
        let mut resent = false;
        for action in out {
            match action {
                Action::Ack(id) => {
                    assert!(!answered && !resent, "an acknowledgement after an answer");
                    let (expected, rel) = self.sealed.pop_front().expect("an ack of no file");
                    assert_eq!(*id, expected, "acknowledgements out of order");
                    assert_eq!(
                        memory.committed.get(self.acked),
                        Some(&rel),
                        "acknowledged before it was committed"
                    );
                    self.acked += 1;
                }
                Action::Resend(id) => {
                    assert!(!resent, "two resends");
                    assert!(
                        in_order
                            && matches!(message, Message::FileEnd { id: end, .. } if end == id),
                        "resend {id} on {}",
                        message.name()
                    );
                    resent = true;
                }
                answer => {
                    assert!(!answered, "two answers to {}", message.name());
                    assert!(self.sealed.is_empty(), "an answer before acknowledgements");
                    assert!(in_order, "{} out of order answered", message.name());
                    self.check_answer(message, answer, memory);
                    answered = true;
                }
            }
        }
        answered
    }

    fn check_answer(&self, message: &Message<'_>, answer: &Action, memory: &Memory) {
        let holds = |rel: &[u8], size: u64, hash: &[u8; 32]| {
            memory.files.get(rel).is_some_and(|data| {
                data.len() as u64 == size && blake3::hash(data).as_bytes() == hash
            })
        };
        match (message, answer) {
            (Message::Query(entries), Action::Have(flags)) => {
                let held: Vec<bool> = entries
                    .iter()
                    .map(|e| holds(e.path.as_bytes(), e.size, &e.hash))
                    .collect();
                assert_eq!(flags, &held, "have answers the query");
            }
            (
                Message::Manifest {
                    last: true,
                    verify: false,
                    nodes,
                    ..
                },
                Action::Have(flags),
            ) => assert_eq!(flags.len(), self.manifest_entries(nodes.len())),
            (
                Message::Manifest {
                    last: true,
                    verify: true,
                    nodes,
                    ..
                },
                Action::Verdict(verdict),
            ) => {
                assert_eq!(verdict.files as usize, self.manifest_entries(nodes.len()));
                assert!(verdict.list.len() <= verdict.differing as usize);
            }
            (
                Message::Restart { cwd, argv, .. },
                Action::Restart {
                    cwd: c, argv: a, ..
                },
            ) => {
                assert_eq!(c.as_slice(), cwd.as_bytes());
                assert!(a.iter().map(Vec::as_slice).eq(argv.iter().copied()));
            }
            (Message::Bye, Action::Close) => {}
            (message, answer) => panic!("{} answered with {answer:?}", message.name()),
        }
    }
}

/// `message` came out of order: it must have been refused by name (an error frame: as the
/// peer's error).
fn refused(message: &Message<'_>, result: &Result<(), SessionError>) {
    match (message, result) {
        (
            Message::Error { code, message },
            Err(SessionError::Wire(WireError::Remote {
                code: got,
                message: text,
            })),
        ) => assert!(got == code && text == message),
        (_, Err(error @ SessionError::Wire(WireError::Unexpected(name)))) => {
            assert_eq!(*name, message.name());
            assert_eq!(error.code(), Some(ErrorCode::Protocol));
        }
        (_, other) => panic!("{} out of order: {other:?}", message.name()),
    }
}
