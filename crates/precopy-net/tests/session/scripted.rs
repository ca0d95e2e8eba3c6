//! Hand-written sessions and the actions each frame leads to, worked out from docs/protocol.md.

use precopy_net::restart::Identity;
use precopy_net::session::{memory::Memory, Action, Session, SessionError};
use precopy_net::store::StoreError;
use precopy_net::transport::Verdict;
use precopy_net::wire::WireError;
use precopy_proto::{ErrorCode, FileHeader, Message, Meta, Reason};

use super::script::*;

/// The frames' non-empty steps: (frame index, actions).
fn actions(steps: &[Step]) -> Vec<(usize, Vec<Action>)> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, (out, _))| !out.is_empty())
        .map(|(i, (out, _))| (i, out.clone()))
        .collect()
}

/// Runs `frames` on a fresh session; every frame must be taken.
fn run(frames: &[Message<'static>]) -> (Session<Memory>, Vec<(usize, Vec<Action>)>) {
    let mut session = Session::new(Memory::default());
    let steps = feed(&mut session, frames);
    assert_eq!(steps.len(), frames.len());
    if let Some((_, Some(error))) = steps.last() {
        panic!("refused: {error}");
    }
    let actions = actions(&steps);
    (session, actions)
}

pub fn files_then_query() -> Vec<Message<'static>> {
    frames(vec![
        whole(0, b"data/a", b"hello"),
        whole(1, b"data/b", b""),
        vec![
            query(&[(b"data/a", b"hello"), (b"data/b", b"x")]),
            Message::Bye,
        ],
    ])
}

#[test]
fn files_are_acknowledged_before_the_answer_that_follows_them() {
    let (session, actions) = run(&files_then_query());
    assert_eq!(
        actions,
        [
            (
                8,
                vec![
                    Action::Ack(0),
                    Action::Ack(1),
                    Action::Have(vec![true, false])
                ]
            ),
            (9, vec![Action::Close]),
        ]
    );
    assert_eq!(session.destination().committed, [&b"data/a"[..], b"data/b"]);
    assert_eq!(
        session.summary().to_string(),
        "2 files stored, 5 bytes (0 as deltas; 0 deltas refused); "
    );
}

pub fn delta_on_a_base_in_the_batch() -> Vec<Message<'static>> {
    frames(vec![
        whole(0, b"a", b"aaaaaaaa"),
        vec![
            // Two bytes changed, two appended.
            delta_start(1, b"a", b"aaaaaaaa", 10),
            patch(2, b"bb"),
            patch(8, b"CC"),
            end(1, b"aabbaaaaCC"),
            query(&[(b"a", b"aabbaaaaCC")]),
            Message::Bye,
        ],
    ])
}

#[test]
fn a_delta_on_a_base_in_the_batch_commits_the_batch_first() {
    let (session, actions) = run(&delta_on_a_base_in_the_batch());
    assert_eq!(
        actions,
        [
            (4, vec![Action::Ack(0)]),
            (8, vec![Action::Ack(1), Action::Have(vec![true])]),
            (9, vec![Action::Close]),
        ]
    );
    assert_eq!(session.destination().files[&b"a"[..]], b"aabbaaaaCC");
    assert_eq!(
        session.summary().to_string(),
        "2 files stored, 18 bytes (1 as deltas; 0 deltas refused); "
    );
}

pub fn delta_without_its_base() -> Vec<Message<'static>> {
    frames(vec![
        vec![
            delta_start(0, b"a", b"old", 4),
            patch(0, b"new!"),
            patch(2, b"w!"),
            end(0, b"new!"),
        ],
        whole(1, b"a", b"new!"),
        vec![Message::Bye],
    ])
}

#[test]
fn a_delta_without_its_base_is_answered_once_with_resend() {
    let (session, actions) = run(&delta_without_its_base());
    assert_eq!(
        actions,
        [
            (3, vec![Action::Resend(0)]),
            (8, vec![Action::Ack(1), Action::Close]),
        ]
    );
    assert_eq!(
        session.summary().to_string(),
        "1 files stored, 4 bytes (0 as deltas; 1 deltas refused); "
    );
}

pub fn delta_on_a_copy_changed_behind() -> Vec<Message<'static>> {
    frames(vec![
        whole(0, b"a", b"version 1"),
        vec![
            query(&[(b"a", b"version 1")]),
            delta_start(1, b"a", b"version 1", 9),
            patch(8, b"2"),
            // The sender read another version than it patched: the result's hash differs.
            end(1, b"version 3"),
            Message::Bye,
        ],
    ])
}

#[test]
fn a_delta_whose_result_differs_is_answered_with_resend_and_replaces_nothing() {
    let (session, actions) = run(&delta_on_a_copy_changed_behind());
    assert_eq!(
        actions,
        [
            (4, vec![Action::Ack(0), Action::Have(vec![true])]),
            (7, vec![Action::Resend(1)]),
            (8, vec![Action::Close]),
        ]
    );
    assert_eq!(session.destination().files[&b"a"[..]], b"version 1");
}

pub fn manifests() -> Vec<Message<'static>> {
    frames(vec![
        whole(0, b"d/a", b"x"),
        vec![
            Message::Manifest {
                last: true,
                verify: false,
                roots: vec![path(b"d")],
                nodes: vec![dir(b"d"), file(b"d/a", b"x"), file(b"d/b", b"y")],
            },
            Message::Manifest {
                last: false,
                verify: true,
                roots: vec![path(b"d")],
                nodes: vec![dir(b"d")],
            },
            Message::Manifest {
                last: true,
                verify: true,
                roots: Vec::new(),
                nodes: vec![file(b"d/a", b"x"), file(b"d/b", b"y")],
            },
            Message::Bye,
        ],
    ])
}

#[test]
fn a_manifest_is_answered_at_its_last_part() {
    let (session, actions) = run(&manifests());
    let verdict = Verdict {
        files: 3,
        differing: 1,
        list: vec![(b"d/b".to_vec(), Reason::Missing)],
    };
    assert_eq!(
        actions,
        [
            (
                4,
                vec![Action::Ack(0), Action::Have(vec![true, true, false])]
            ),
            (6, vec![Action::Verdict(verdict)]),
            (7, vec![Action::Close]),
        ]
    );
    assert_eq!(
        session.summary().to_string(),
        "1 files stored, 1 bytes (0 as deltas; 0 deltas refused); \
         1 of 3 entries differ from the manifest"
    );
}

pub fn restart_after_a_file() -> Vec<Message<'static>> {
    frames(vec![
        whole(0, b"srv/app.conf", b"port=1"),
        vec![
            Message::Restart {
                cwd: path(b"srv"),
                identity: precopy_proto::Identity {
                    uid: 1000,
                    gid: 100,
                    groups: vec![27],
                    env: vec![b"HOME=/home/u"],
                },
                argv: vec![b"/usr/bin/app", b"/srv/app.conf"],
            },
            Message::Bye,
        ],
    ])
}

#[test]
fn a_restart_comes_after_the_acknowledgements() {
    let (_, actions) = run(&restart_after_a_file());
    let restart = Action::Restart {
        cwd: b"srv".to_vec(),
        identity: Identity {
            uid: 1000,
            gid: 100,
            groups: vec![27],
            env: vec![b"HOME=/home/u".to_vec()],
        },
        argv: vec![b"/usr/bin/app".to_vec(), b"/srv/app.conf".to_vec()],
    };
    assert_eq!(
        actions,
        [(4, vec![Action::Ack(0), restart]), (5, vec![Action::Close])]
    );
}

pub fn rename() -> Vec<Message<'static>> {
    frames(vec![
        whole(0, b"a", b"1"),
        vec![
            Message::Rename {
                from: path(b"a"),
                to: path(b"b"),
            },
            query(&[(b"b", b"1"), (b"a", b"1")]),
        ],
    ])
}

#[test]
fn a_rename_is_not_answered() {
    let (_, actions) = run(&rename());
    assert_eq!(
        actions,
        [
            (4, vec![Action::Ack(0)]),
            (5, vec![Action::Have(vec![true, false])])
        ]
    );
}

fn start(id: u64) -> Message<'static> {
    Message::FileStart(FileHeader {
        id,
        path: path(b"a"),
        meta: Meta::default(),
        size: 5,
    })
}

/// Sessions with a frame out of order: the frame's index, and its name in the refusal.
pub fn out_of_order() -> Vec<(&'static str, Vec<Message<'static>>, usize, &'static str)> {
    let part = Message::Manifest {
        last: false,
        verify: false,
        roots: vec![path(b"d")],
        nodes: vec![dir(b"d")],
    };
    vec![
        (
            "query-inside-a-file",
            vec![start(0), Message::Chunk(b"he"), query(&[(b"a", b"x")])],
            2,
            "query",
        ),
        ("bye-inside-a-file", vec![start(0), Message::Bye], 1, "bye"),
        (
            "chunk-inside-a-delta",
            frames(vec![
                whole(0, b"a", b"abc"),
                vec![delta_start(1, b"a", b"abc", 3), Message::Chunk(b"x")],
            ]),
            5,
            "chunk",
        ),
        (
            "chunk-inside-a-refused-delta",
            vec![delta_start(0, b"a", b"none", 4), Message::Chunk(b"x")],
            1,
            "chunk",
        ),
        (
            "patch-inside-a-whole-file",
            vec![start(0), patch(0, b"x")],
            1,
            "patch",
        ),
        (
            "end-of-another-transfer",
            vec![start(0), end(1, b"")],
            1,
            "file-end",
        ),
        (
            "end-of-another-refused-delta",
            vec![delta_start(0, b"a", b"none", 4), end(1, b"")],
            1,
            "file-end",
        ),
        ("end-without-start", vec![end(0, b"")], 0, "file-end"),
        (
            "start-inside-a-file",
            vec![start(0), start(1)],
            1,
            "file-start",
        ),
        (
            "file-between-manifest-parts",
            vec![part.clone(), start(0)],
            1,
            "file-start",
        ),
        (
            "query-between-manifest-parts",
            vec![part, query(&[])],
            1,
            "query",
        ),
        (
            "ack-from-the-sender",
            vec![Message::FileAck { id: 0 }],
            0,
            "file-ack",
        ),
        (
            "have-from-the-sender",
            vec![Message::Have(vec![true])],
            0,
            "have",
        ),
        (
            "hello-after-the-handshake",
            vec![Message::Hello { noise: [0; 48] }],
            0,
            "hello",
        ),
        (
            "frame-after-bye",
            vec![Message::Bye, start(0)],
            1,
            "file-start",
        ),
    ]
}

#[test]
fn a_frame_out_of_order_is_refused_by_name() {
    for (name, frames, at, refused) in out_of_order() {
        let mut session = Session::new(Memory::default());
        let steps = feed(&mut session, &frames);
        assert_eq!(steps.len(), at + 1, "{name}");
        match &steps[at].1 {
            Some(e @ SessionError::Wire(WireError::Unexpected(what))) => {
                assert_eq!(*what, refused, "{name}");
                assert_eq!(e.code(), Some(ErrorCode::Protocol), "{name}");
                assert_eq!(
                    e.to_string(),
                    format!("unexpected {refused} frame"),
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        // Refused for good: the next frame too.
        let mut out = Vec::new();
        assert!(
            session.on_message(Message::Bye, &mut out).is_err(),
            "{name}"
        );
        assert!(out.is_empty(), "{name}");
    }
}

#[test]
fn an_error_frame_ends_the_session_after_the_acknowledgements() {
    let frames = frames(vec![
        whole(0, b"a", b"abc"),
        vec![Message::Error {
            code: ErrorCode::Storage,
            message: "gone",
        }],
    ]);
    let mut session = Session::new(Memory::default());
    let steps = feed(&mut session, &frames);
    assert_eq!(steps[4].0, [Action::Ack(0)]);
    match &steps[4].1 {
        Some(e @ SessionError::Wire(WireError::Remote { code, message })) => {
            assert_eq!((*code, message.as_str()), (ErrorCode::Storage, "gone"));
            assert_eq!(e.code(), None, "not answered with an error frame");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_commit_acknowledges_nothing() {
    let mut session = Session::new(Memory {
        fail_commits: true,
        ..Memory::default()
    });
    let frames = frames(vec![whole(0, b"a", b"abc"), vec![query(&[(b"a", b"abc")])]]);
    let steps = feed(&mut session, &frames);
    assert_eq!(steps.len(), 5);
    assert!(steps[4].0.is_empty());
    assert!(matches!(
        steps[4].1,
        Some(SessionError::Store(StoreError::Io { .. }))
    ));
    assert!(session.destination().committed.is_empty());
}

#[test]
fn files_sealed_before_an_error_are_kept_unacknowledged() {
    let frames = frames(vec![
        whole(0, b"a", b"abc"),
        vec![start(1), Message::Chunk(b"hello"), end(1, b"other")],
    ]);
    let mut session = Session::new(Memory::default());
    let steps = feed(&mut session, &frames);
    assert!(matches!(
        steps.last().unwrap().1,
        Some(SessionError::Store(StoreError::Integrity { .. }))
    ));
    assert!(steps.iter().all(|(out, _)| out.is_empty()));
    assert!(session.destination().committed.is_empty());
    session.keep_unacknowledged();
    assert_eq!(session.destination().committed, [b"a"]);
    assert_eq!(session.destination().files[&b"a"[..]], b"abc");
}

#[test]
fn a_batch_is_full_at_1024_files() {
    let mut session = Session::new(Memory::default());
    let mut out = Vec::new();
    for id in 0..1024 {
        assert!(!session.batch_full(), "{id}");
        for frame in whole(id, b"a", b"") {
            session.on_message(frame, &mut out).unwrap();
        }
        assert!(session.has_batch());
    }
    assert!(session.batch_full());
    session.commit(&mut out).unwrap();
    assert_eq!(out, (0..1024).map(Action::Ack).collect::<Vec<_>>());
    assert!(!session.has_batch() && !session.batch_full());
}

/// Every hand-written session, named: the seeds of the fuzzer's corpus.
pub fn sessions() -> Vec<(String, Vec<Message<'static>>)> {
    let mut all: Vec<(String, Vec<Message<'static>>)> = vec![
        ("files-then-query".into(), files_then_query()),
        (
            "delta-on-a-base-in-the-batch".into(),
            delta_on_a_base_in_the_batch(),
        ),
        ("delta-without-its-base".into(), delta_without_its_base()),
        (
            "delta-on-a-copy-changed-behind".into(),
            delta_on_a_copy_changed_behind(),
        ),
        ("manifests".into(), manifests()),
        ("restart-after-a-file".into(), restart_after_a_file()),
        ("rename".into(), rename()),
    ];
    all.extend(
        out_of_order()
            .into_iter()
            .map(|(name, frames, _, _)| (name.to_string(), frames)),
    );
    all
}
