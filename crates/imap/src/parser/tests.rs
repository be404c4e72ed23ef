use super::*;
use crate::message::{Section, SectionText};

const MAX_LIT: usize = 1024 * 1024;

/// Feeds `input` at once and collects events until NeedMoreData.
fn events(input: &[u8]) -> Vec<Event> {
    let mut p = Parser::new(MAX_LIT);
    p.feed(input);
    let mut out = Vec::new();
    loop {
        match p.next_event() {
            Event::NeedMoreData => return out,
            e => out.push(e),
        }
    }
}

fn parse_ok(line: &str) -> CommandBody {
    match parse_command(line.as_bytes()) {
        Ok(c) => c.body,
        Err(e) => panic!("{line:?} failed: {e:?}"),
    }
}

fn parse_err(line: &str) -> (Option<String>, String) {
    match parse_command(line.as_bytes()) {
        Ok(c) => panic!("{line:?} parsed: {c:?}"),
        Err(e) => (e.tag, e.text),
    }
}

fn range(a: u32, b: u32) -> (SeqBound, SeqBound) {
    (SeqBound::Value(a), SeqBound::Value(b))
}

#[test]
fn good_commands_parse_to_the_expected_ast() {
    let cases: Vec<(&str, CommandBody)> = vec![
        ("a CAPABILITY", CommandBody::Capability),
        ("a noop", CommandBody::Noop),
        (
            "a LOGIN alice@example.test \"pa ss\"",
            CommandBody::Login {
                user: "alice@example.test".into(),
                password: "pa ss".into(),
            },
        ),
        (
            "a AUTHENTICATE PLAIN",
            CommandBody::Authenticate {
                mechanism: "PLAIN".into(),
                initial: None,
            },
        ),
        (
            "a AUTHENTICATE plain AGFsaWNlAHB3",
            CommandBody::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGFsaWNlAHB3".into()),
            },
        ),
        (
            "a AUTHENTICATE PLAIN =",
            CommandBody::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(String::new()),
            },
        ),
        (
            "a ENABLE CONDSTORE qresync",
            CommandBody::Enable(vec!["CONDSTORE".into(), "QRESYNC".into()]),
        ),
        ("a ID NIL", CommandBody::Id(vec![])),
        (
            "a ID (\"name\" \"mutt\" \"version\" NIL)",
            CommandBody::Id(vec![
                ("name".into(), Some("mutt".into())),
                ("version".into(), None),
            ]),
        ),
        (
            "a SELECT inbox",
            CommandBody::Select {
                mailbox: "INBOX".into(),
                read_only: false,
                params: SelectParams::default(),
            },
        ),
        (
            "a EXAMINE \"Sent\" (CONDSTORE)",
            CommandBody::Select {
                mailbox: "Sent".into(),
                read_only: true,
                params: SelectParams {
                    condstore: true,
                    qresync: None,
                },
            },
        ),
        (
            "a CREATE inbox/Sub",
            CommandBody::Create {
                mailbox: "INBOX/Sub".into(),
                special_use: vec![],
            },
        ),
        (
            "a RENAME a b",
            CommandBody::Rename {
                from: "a".into(),
                to: "b".into(),
            },
        ),
        (
            "a LSUB \"\" *",
            CommandBody::Lsub {
                reference: "".into(),
                pattern: "*".into(),
            },
        ),
        (
            "a STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)",
            CommandBody::Status {
                mailbox: "INBOX".into(),
                items: vec![
                    StatusItem::Messages,
                    StatusItem::UidNext,
                    StatusItem::HighestModSeq,
                ],
            },
        ),
        (
            "a UID EXPUNGE 1:3,5",
            CommandBody::Expunge {
                uids: Some(SequenceSet::Ranges(vec![range(1, 3), range(5, 5)])),
            },
        ),
        (
            "a MOVE 1:* Trash",
            CommandBody::Move {
                uid: false,
                set: SequenceSet::Ranges(vec![(SeqBound::Value(1), SeqBound::Star)]),
                mailbox: "Trash".into(),
            },
        ),
        (
            "a UID COPY $ Archive",
            CommandBody::Copy {
                uid: true,
                set: SequenceSet::Saved,
                mailbox: "Archive".into(),
            },
        ),
        ("a IDLE", CommandBody::Idle),
        ("a UNSELECT", CommandBody::Unselect),
    ];
    for (line, want) in cases {
        assert_eq!(parse_ok(line), want, "{line}");
    }
}

#[test]
fn qresync_select_parameters_parse() {
    let body = parse_ok("a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))");
    let CommandBody::Select { params, .. } = body else {
        panic!("not select")
    };
    let q = params.qresync.expect("qresync");
    assert_eq!(q.uid_validity, 67890007);
    assert_eq!(q.modseq, 90060115194045000);
    assert_eq!(
        q.known_uids,
        Some(SequenceSet::Ranges(vec![range(41, 211), range(214, 541)]))
    );
    let body = parse_ok("a SELECT INBOX (QRESYNC (1 2 1:5 (1:2 3:4)))");
    let CommandBody::Select { params, .. } = body else {
        panic!("not select")
    };
    assert!(params.qresync.and_then(|q| q.seq_match).is_some());
}

#[test]
fn list_extended_and_list_status_parse() {
    let body = parse_ok(
        "a LIST (SUBSCRIBED) \"\" (\"*\" %) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))",
    );
    let CommandBody::List(l) = body else {
        panic!("not list")
    };
    assert!(l.select_subscribed && l.return_children && l.return_special_use);
    assert_eq!(l.patterns, vec!["*".to_string(), "%".to_string()]);
    assert_eq!(
        l.return_status,
        Some(vec![StatusItem::Messages, StatusItem::Unseen])
    );
    let CommandBody::List(l) = parse_ok("a LIST \"\" INBOX/*") else {
        panic!("not list")
    };
    assert_eq!(l.patterns, vec!["INBOX/*".to_string()]);
}

#[test]
fn fetch_attributes_and_macros_parse() {
    let CommandBody::Fetch(f) = parse_ok("a FETCH 1:* ALL") else {
        panic!()
    };
    assert_eq!(
        f.attrs,
        vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
            FetchAttr::Envelope
        ]
    );
    let CommandBody::Fetch(f) = parse_ok(
        "a UID FETCH 1,2 (UID BODY.PEEK[HEADER.FIELDS (From Subject)] BODY[1.2.MIME]<0.100> BINARY.PEEK[1] BINARY.SIZE[2] BODY RFC822.SIZE MODSEQ) (CHANGEDSINCE 12345 VANISHED)",
    ) else {
        panic!()
    };
    assert!(f.uid && f.vanished);
    assert_eq!(f.changed_since, Some(12345));
    assert_eq!(
        f.attrs,
        vec![
            FetchAttr::Uid,
            FetchAttr::BodySection {
                section: Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields {
                        not: false,
                        fields: vec!["From".into(), "Subject".into()]
                    })
                },
                partial: None,
                peek: true
            },
            FetchAttr::BodySection {
                section: Section {
                    part: vec![1, 2],
                    text: Some(SectionText::Mime)
                },
                partial: Some((0, 100)),
                peek: false
            },
            FetchAttr::Binary {
                part: vec![1],
                partial: None,
                peek: true
            },
            FetchAttr::BinarySize { part: vec![2] },
            FetchAttr::Body,
            FetchAttr::Rfc822Size,
            FetchAttr::ModSeq,
        ]
    );
    let CommandBody::Fetch(f) = parse_ok("a FETCH 2 body[]") else {
        panic!()
    };
    assert_eq!(
        f.attrs,
        vec![FetchAttr::BodySection {
            section: Section::default(),
            partial: None,
            peek: false
        }]
    );
}

#[test]
fn store_forms_parse() {
    let CommandBody::Store(s) = parse_ok("a STORE 1:2 +FLAGS.SILENT (\\Seen $Junk)") else {
        panic!()
    };
    assert_eq!(
        (s.op, s.silent, s.flags.clone()),
        (
            StoreOp::Add,
            true,
            vec!["\\Seen".to_string(), "$Junk".to_string()]
        )
    );
    let CommandBody::Store(s) =
        parse_ok("a UID STORE 5 (UNCHANGEDSINCE 320162338) -FLAGS \\Deleted \\Seen")
    else {
        panic!()
    };
    assert_eq!(
        (s.uid, s.op, s.unchanged_since),
        (true, StoreOp::Remove, Some(320162338))
    );
    assert_eq!(s.flags.len(), 2);
}

#[test]
fn search_programs_parse() {
    let CommandBody::Search(s) = parse_ok(
        "a UID SEARCH RETURN (MIN COUNT SAVE) CHARSET utf-8 OR (FROM \"bob\" SINCE 1-Feb-2024) NOT SEEN 1:5 UID 7:* HEADER X-Spam yes MODSEQ 5",
    ) else {
        panic!()
    };
    assert!(s.uid);
    assert_eq!(
        s.ret,
        Some(vec![
            SearchReturn::Min,
            SearchReturn::Count,
            SearchReturn::Save
        ])
    );
    assert_eq!(s.charset.as_deref(), Some("UTF-8"));
    let SearchKey::And(keys) = s.key else {
        panic!("and")
    };
    assert_eq!(keys.len(), 5);
    assert_eq!(
        keys[0],
        SearchKey::Or(
            Box::new(SearchKey::And(vec![
                SearchKey::From("bob".into()),
                SearchKey::Since(Date {
                    year: 2024,
                    month: 2,
                    day: 1
                })
            ])),
            Box::new(SearchKey::Not(Box::new(SearchKey::Seen)))
        )
    );
    assert_eq!(keys[4], SearchKey::ModSeq(5));
    assert_eq!(
        parse_ok("a SEARCH $"),
        CommandBody::Search(SearchCommand {
            uid: false,
            ret: None,
            charset: None,
            key: SearchKey::SequenceSet(SequenceSet::Saved)
        })
    );
}

#[test]
fn append_parses_flags_date_and_literal() {
    let evs = events(b"a APPEND Drafts (\\Draft) \"05-Mar-2024 10:00:00 +0100\" {5+}\r\nhello\r\n");
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(
        evs[0],
        Event::NeedLiteral {
            size: 5,
            non_sync: true
        }
    );
    let Event::Command(Command {
        body:
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
                ..
            },
        ..
    }) = &evs[1]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(mailbox, "Drafts");
    assert_eq!(flags, &vec!["\\Draft".to_string()]);
    // 2024-03-05T09:00:00Z
    assert_eq!(*date, Some(1_709_629_200));
    assert_eq!(message, b"hello");
}

#[test]
fn sync_literal_arrives_in_pieces_after_continuation() {
    let mut p = Parser::new(MAX_LIT);
    p.feed(b"a1 LOGIN {5}\r\n");
    assert_eq!(
        p.next_event(),
        Event::NeedLiteral {
            size: 5,
            non_sync: false
        }
    );
    assert_eq!(p.next_event(), Event::NeedMoreData);
    p.feed(b"ali");
    assert_eq!(p.next_event(), Event::NeedMoreData);
    p.feed(b"ce {3}\r\n");
    assert_eq!(
        p.next_event(),
        Event::NeedLiteral {
            size: 3,
            non_sync: false
        }
    );
    p.feed(b"p w\r\na2 NOOP\r\n");
    assert_eq!(
        p.next_event(),
        Event::Command(Command {
            tag: "a1".into(),
            body: CommandBody::Login {
                user: "alice".into(),
                password: "p w".into()
            }
        })
    );
    assert_eq!(
        p.next_event(),
        Event::Command(Command {
            tag: "a2".into(),
            body: CommandBody::Noop
        })
    );
    assert_eq!(p.next_event(), Event::NeedMoreData);
}

#[test]
fn literal_content_is_not_mistaken_for_line_end_or_literal() {
    let evs = events(b"a APPEND INBOX {11}\r\nx {3}\r\ny\r\nz\r\nb NOOP\r\n");
    assert!(
        matches!(&evs[1], Event::Command(Command { body: CommandBody::Append { message, .. }, .. }) if message == b"x {3}\r\ny\r\nz"),
        "{evs:?}"
    );
    assert!(matches!(
        &evs[2],
        Event::Command(Command {
            body: CommandBody::Noop,
            ..
        })
    ));
}

#[test]
fn literal_ending_in_crlf_keeps_its_crlf() {
    let evs = events(b"a APPEND INBOX {7}\r\nhello\r\n\r\n");
    assert!(
        matches!(&evs[1], Event::Command(Command { body: CommandBody::Append { message, .. }, .. }) if message == b"hello\r\n"),
        "{evs:?}"
    );
}

#[test]
fn oversize_sync_literal_on_append_is_no_toobig_without_reading_it() {
    let mut p = Parser::new(100);
    p.feed(b"t1 APPEND INBOX {101}\r\n");
    let Event::Error(e) = p.next_event() else {
        panic!()
    };
    assert_eq!(
        (e.tag.as_deref(), &e.kind, e.code),
        (Some("t1"), &ErrorKind::No, Some("TOOBIG"))
    );
    assert_eq!(
        e.text,
        "Message of 101 octets exceeds the limit of 100 octets"
    );
    // The client did not get `+`, so its next line is a new command.
    p.feed(b"t2 NOOP\r\n");
    assert!(matches!(
        p.next_event(),
        Event::Command(Command {
            body: CommandBody::Noop,
            ..
        })
    ));
}

#[test]
fn oversize_literal_outside_append_is_bad_and_non_sync_is_fatal() {
    let mut p = Parser::new(MAX_LIT);
    p.feed(format!("t1 LOGIN {{{}}}\r\n", MAX_LINE_LEN + 1).as_bytes());
    let Event::Error(e) = p.next_event() else {
        panic!()
    };
    assert_eq!((e.kind, e.code), (ErrorKind::Bad, Some("TOOBIG")));
    p.feed(b"t2 APPEND INBOX {99999999999+}\r\n");
    let Event::Error(e) = p.next_event() else {
        panic!()
    };
    assert_eq!((e.tag.as_deref(), e.kind), (Some("t2"), ErrorKind::Fatal));
}

#[test]
fn too_long_line_is_bad_and_the_rest_is_discarded() {
    let mut p = Parser::new(MAX_LIT);
    let mut long = b"x1 NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_LINE_LEN + 10));
    p.feed(&long);
    let Event::Error(e) = p.next_event() else {
        panic!()
    };
    assert_eq!(e.tag.as_deref(), Some("x1"));
    assert_eq!(
        e.text,
        format!("Command line too long (limit {MAX_LINE_LEN} octets)")
    );
    p.feed(b"aaaa\r\nx2 NOOP\r\n");
    assert!(matches!(
        p.next_event(),
        Event::Command(Command {
            body: CommandBody::Noop,
            ..
        })
    ));
}

#[test]
fn malformed_lines_get_exact_bad_texts() {
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("", None, "Missing command tag"),
        ("a", Some("a"), "Missing command name"),
        ("a ", Some("a"), "Missing command name"),
        ("a+b NOOP", None, "Invalid characters in command tag"),
        ("a FROB", Some("a"), "Unknown command FROB"),
        ("a UID FROB 1", Some("a"), "Unknown UID command FROB"),
        (
            "a NOOP extra",
            Some("a"),
            "Syntax error in NOOP: unexpected text after the command",
        ),
        (
            "a LOGIN alice",
            Some("a"),
            "Syntax error in LOGIN: expected a space",
        ),
        (
            "a LOGIN alice \"unterminated",
            Some("a"),
            "Syntax error in LOGIN: unterminated quoted string",
        ),
        (
            "a SELECT",
            Some("a"),
            "Syntax error in SELECT: expected a space",
        ),
        (
            "a FETCH 0 FLAGS",
            Some("a"),
            "Syntax error in FETCH: expected sequence set",
        ),
        (
            "a FETCH 1 (FLAGS",
            Some("a"),
            "Syntax error in FETCH: expected a space",
        ),
        (
            "a FETCH 1 FROG",
            Some("a"),
            "Syntax error in FETCH: unknown fetch attribute FROG",
        ),
        (
            "a FETCH 1 BODY[FOO]",
            Some("a"),
            "Syntax error in FETCH: expected section specifier",
        ),
        (
            "a STORE 1 FLAGZ \\Seen",
            Some("a"),
            "Syntax error in STORE: expected FLAGS or FLAGS.SILENT",
        ),
        (
            "a SEARCH FROGS",
            Some("a"),
            "Syntax error in SEARCH: unknown search key FROGS",
        ),
        (
            "a SEARCH SINCE 32-Foo-2020",
            Some("a"),
            "Syntax error in SEARCH: expected date",
        ),
        (
            "a STATUS INBOX (BOGUS)",
            Some("a"),
            "Syntax error in STATUS: unknown status item BOGUS",
        ),
        (
            "a APPEND INBOX \"bad date\" {1}",
            Some("a"),
            "Syntax error in APPEND: expected date-time",
        ),
        (
            "a UID FETCH 1 FLAGS (VANISHED)",
            Some("a"),
            "Syntax error in UID FETCH: VANISHED requires CHANGEDSINCE",
        ),
    ];
    for (line, tag, text) in cases {
        let (t, x) = parse_err(line);
        assert_eq!((t.as_deref(), x.as_str()), (tag, text), "{line:?}");
    }
}

#[test]
fn objectid_and_create_special_use_parse() {
    // RFC 6154 §3
    assert_eq!(
        parse_ok("a CREATE Old (USE (\\Archive))"),
        CommandBody::Create {
            mailbox: "Old".into(),
            special_use: vec!["\\Archive".into()],
        }
    );
    assert_eq!(
        parse_ok("a CREATE x (USE ())"),
        CommandBody::Create {
            mailbox: "x".into(),
            special_use: vec![],
        }
    );
    let many = format!("a CREATE x (USE ({}))", vec!["\\Sent"; 17].join(" "));
    assert!(parse_err(&many).1.contains("too many special-use"));
    assert!(
        parse_err("a CREATE x (FOO (\\Sent))")
            .1
            .contains("unknown CREATE")
    );
    assert!(parse_err("a CREATE x (USE (Sent))").1.contains("expected"));
    // RFC 8474 §4.3, §5.3, §6
    assert_eq!(
        parse_ok("a STATUS INBOX (MAILBOXID MESSAGES)"),
        CommandBody::Status {
            mailbox: "INBOX".into(),
            items: vec![StatusItem::MailboxId, StatusItem::Messages],
        }
    );
    let CommandBody::Fetch(f) = parse_ok("a FETCH 1 (EMAILID THREADID)") else {
        panic!("not a FETCH");
    };
    assert_eq!(f.attrs, vec![FetchAttr::EmailId, FetchAttr::ThreadId]);
    let CommandBody::Search(s) = parse_ok("a UID SEARCH EMAILID E1_x-2 THREADID T9") else {
        panic!("not a SEARCH");
    };
    assert_eq!(
        s.key,
        SearchKey::And(vec![
            SearchKey::EmailId("E1_x-2".into()),
            SearchKey::ThreadId("T9".into())
        ])
    );
    assert!(parse_err("a SEARCH EMAILID E1.2").1.contains("object id"));
    let long = format!("a SEARCH EMAILID {}", "E".repeat(256));
    assert!(parse_err(&long).1.contains("object id"));
    let items = format!("a STATUS INBOX ({})", vec!["SIZE"; 33].join(" "));
    assert!(parse_err(&items).1.contains("too many status items"));
}

#[test]
fn multiappend_and_preview_parse() {
    // RFC 3502 §6.3.11
    let evs = events(
        b"a APPEND INBOX (\\Seen) {3+}\r\nabc  \"01-Jan-2024 10:00:00 +0000\" {2+}\r\nxy\r\n",
    );
    let Some(Event::Command(Command {
        body:
            CommandBody::Append {
                flags,
                message,
                more,
                ..
            },
        ..
    })) = evs.last()
    else {
        panic!("{evs:?}")
    };
    assert_eq!(flags, &vec!["\\Seen".to_string()]);
    assert_eq!(message, b"abc");
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].message, b"xy");
    assert!(more[0].date.is_some());
    // RFC 8970 §5
    let CommandBody::Fetch(f) = parse_ok("a FETCH 1 (PREVIEW (LAZY) UID PREVIEW)") else {
        panic!("not a FETCH");
    };
    assert_eq!(
        f.attrs,
        vec![
            FetchAttr::Preview { lazy: true },
            FetchAttr::Uid,
            FetchAttr::Preview { lazy: false }
        ]
    );
    let CommandBody::Fetch(f) = parse_ok("a FETCH 1 PREVIEW (CHANGEDSINCE 5)") else {
        panic!("not a FETCH");
    };
    assert_eq!(f.attrs, vec![FetchAttr::Preview { lazy: false }]);
    assert_eq!(f.changed_since, Some(5));
    assert!(
        parse_err("a FETCH 1 (PREVIEW (LAZY FOO))")
            .1
            .contains("preview modifier")
    );
}

#[test]
fn replace_parses_and_its_literal_has_the_message_limit() {
    // RFC 8508 §6
    let evs = events(b"a UID REPLACE 7 Drafts (\\Draft) {3+}\r\nabc\r\n");
    assert!(
        matches!(evs.last(), Some(Event::Command(Command { body: CommandBody::Replace { uid: true, target: SeqBound::Value(7), mailbox, message }, .. }))
            if mailbox == "Drafts" && message.message == b"abc" && message.flags == ["\\Draft"]),
        "{evs:?}"
    );
    assert!(matches!(
        parse_ok("a REPLACE * INBOX {1+}\r\nx"),
        CommandBody::Replace {
            uid: false,
            target: SeqBound::Star,
            ..
        }
    ));
    assert!(
        parse_err("a UID REPLACE * INBOX {1+}\r\nx")
            .1
            .contains("UID")
    );
    assert!(
        parse_err("a REPLACE 1 INBOX {1+}\r\nx {1+}\r\ny")
            .0
            .is_some()
    );
    // A literal larger than a line but within the message limit is accepted, as for APPEND.
    let big = MAX_LINE_LEN + 10;
    let mut p = Parser::new(MAX_LIT);
    p.feed(format!("t REPLACE 1 INBOX {{{big}}}\r\n").as_bytes());
    assert!(
        matches!(p.next_event(), Event::NeedLiteral { .. }),
        "a REPLACE literal is a message"
    );
}

#[test]
fn esort_and_partial_parse() {
    // RFC 5267 §3, RFC 9394 §5
    let CommandBody::Sort(s) = parse_ok("a UID SORT RETURN (MIN PARTIAL -5:-1) (DATE) UTF-8 ALL")
    else {
        panic!("not a SORT");
    };
    assert_eq!(
        s.ret,
        Some(vec![
            SearchReturn::Min,
            SearchReturn::Partial {
                from_end: true,
                lo: 1,
                hi: 5
            }
        ])
    );
    let CommandBody::Sort(s) = parse_ok("a SORT (DATE) UTF-8 ALL") else {
        panic!("not a SORT");
    };
    assert_eq!(s.ret, None);
    let CommandBody::Search(s) = parse_ok("a SEARCH RETURN (PARTIAL 10:1) ALL") else {
        panic!("not a SEARCH");
    };
    assert_eq!(
        s.ret,
        Some(vec![SearchReturn::Partial {
            from_end: false,
            lo: 1,
            hi: 10
        }])
    );
    for bad in [
        "a SEARCH RETURN (PARTIAL 0:5) ALL",
        "a SEARCH RETURN (PARTIAL -1:5) ALL",
        "a SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
        "a SEARCH RETURN (ALL PARTIAL 1:2) ALL",
        "a SEARCH RETURN (PARTIAL 1:99999999999) ALL",
    ] {
        parse_err(bad);
    }
    let many = format!("a SEARCH RETURN ({}) ALL", vec!["MIN"; 17].join(" "));
    assert!(parse_err(&many).1.contains("too many return options"));
}

#[test]
fn context_search_parses() {
    // RFC 5267 §5
    let CommandBody::Search(s) = parse_ok("a UID SEARCH RETURN (UPDATE CONTEXT COUNT) ALL") else {
        panic!("not a SEARCH");
    };
    assert_eq!(
        s.ret,
        Some(vec![
            SearchReturn::Update,
            SearchReturn::Context,
            SearchReturn::Count
        ])
    );
    assert_eq!(
        parse_ok("a CANCELUPDATE \"B01\" \"B02\""),
        CommandBody::CancelUpdate(vec!["B01".into(), "B02".into()])
    );
    parse_err("a CANCELUPDATE");
    let many = format!("a CANCELUPDATE {}", vec!["\"x\""; 17].join(" "));
    assert!(parse_err(&many).1.contains("too many tags"));
}

#[test]
fn deeply_nested_search_is_refused() {
    let line = format!("a SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
    let (_, text) = parse_err(&line);
    assert_eq!(
        text,
        format!(
            "Syntax error in SEARCH: search nested too deeply (limit {})",
            crate::limits::MAX_SEARCH_DEPTH
        )
    );
    let line = format!("a SEARCH {}ALL", "NOT ".repeat(100));
    assert!(parse_err(&line).1.contains("nested too deeply"));
}

#[test]
fn raw_lines_for_idle_and_authenticate() {
    let mut p = Parser::new(MAX_LIT);
    p.feed(b"DON");
    assert_eq!(p.next_line(), LineEvent::NeedMoreData);
    p.feed(b"E\r\na NOOP\r\n");
    assert_eq!(p.next_line(), LineEvent::Line(b"DONE".to_vec()));
    assert!(matches!(p.next_event(), Event::Command(_)));
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut p = Parser::new(MAX_LIT);
    p.feed(b"a STARTTLS\r\nb LOGIN evil pass\r\n");
    assert!(matches!(
        p.next_event(),
        Event::Command(Command {
            body: CommandBody::StartTls,
            ..
        })
    ));
    p.discard_buffered();
    assert_eq!(p.next_event(), Event::NeedMoreData);
}

/// xorshift64*: a fixed-seed generator so the test is stable.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn pseudo_random_inputs_never_panic() {
    const PIECES: &[&str] = &[
        "a",
        " ",
        "FETCH",
        "1:*",
        "(",
        ")",
        "BODY[",
        "]",
        "<0.5>",
        "{3}\r\n",
        "{2+}\r\n",
        "\r\n",
        "\"",
        "\\",
        "SEARCH",
        "OR",
        "NOT",
        "UID",
        "STORE",
        "+FLAGS",
        "(\\Seen)",
        "APPEND",
        "INBOX",
        "$",
        "*",
        "LIST",
        "RETURN",
        "STATUS",
        "SELECT",
        "(QRESYNC (1 2 3:4))",
        "HEADER.FIELDS",
        "~{1}\r\n",
        "\x00",
        "\u{e9}",
        "1.2.3",
        "LOGIN",
        "-",
        "%",
        "ID",
        "NIL",
        "01-Jan-2020",
        "\"01-Jan-2020 00:00:00 +0000\"",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let mut p = Parser::new(4096);
        let n = (rng.next() % 24) as usize;
        let mut input = Vec::new();
        for _ in 0..n {
            let r = rng.next();
            if r.is_multiple_of(5) {
                input.push((r >> 8) as u8);
            } else {
                input.extend_from_slice(PIECES[(r >> 8) as usize % PIECES.len()].as_bytes());
            }
        }
        input.extend_from_slice(b"\r\n");
        // Feed in random chunk sizes.
        let mut i = 0;
        while i < input.len() {
            let step = 1 + (rng.next() % 17) as usize;
            let end = (i + step).min(input.len());
            p.feed(&input[i..end]);
            i = end;
            for _ in 0..64 {
                match p.next_event() {
                    Event::NeedMoreData => break,
                    Event::Error(ParseError {
                        kind: ErrorKind::Fatal,
                        ..
                    }) => break,
                    _ => {}
                }
            }
        }
        let _ = p.next_line();
        let _ = parse_command(&input);
    }
}

#[test]
fn savedate_fetch_item_and_search_keys_parse() {
    // RFC 8514 §4.3 FETCH SAVEDATE, §4.2 the SEARCH keys.
    let CommandBody::Fetch(f) = parse_ok("a FETCH 1 (SAVEDATE UID)") else {
        panic!("not a FETCH");
    };
    assert_eq!(f.attrs, vec![FetchAttr::SaveDate, FetchAttr::Uid]);
    let CommandBody::Search(s) = parse_ok(
        "a SEARCH SAVEDBEFORE 1-Feb-2024 SAVEDON 2-Feb-2024 SAVEDSINCE 3-Feb-2024 SAVEDATESUPPORTED",
    ) else {
        panic!("not a SEARCH");
    };
    let SearchKey::And(keys) = s.key else {
        panic!("not an AND: {:?}", s.key);
    };
    assert!(matches!(
        keys.as_slice(),
        [
            SearchKey::SavedBefore(_),
            SearchKey::SavedOn(_),
            SearchKey::SavedSince(_),
            SearchKey::SaveDateSupported
        ]
    ));
    parse_err("a SEARCH SAVEDON yesterday");
    parse_err("a SEARCH SAVEDSINCE");
}

#[test]
fn metadata_commands_parse() {
    // RFC 5464 §5: options before the mailbox, one entry or a list.
    assert_eq!(
        parse_ok("a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/shared/a /private/b)"),
        CommandBody::GetMetadata {
            mailbox: "INBOX".into(),
            entries: vec!["/shared/a".into(), "/private/b".into()],
            max_size: Some(1024),
            depth: MetadataDepth::Infinity,
        }
    );
    assert_eq!(
        parse_ok("a GETMETADATA \"\" /shared/comment"),
        CommandBody::GetMetadata {
            mailbox: String::new(),
            entries: vec!["/shared/comment".into()],
            max_size: None,
            depth: MetadataDepth::Zero,
        }
    );
    // Values: string, literal, literal8 or NIL.
    assert_eq!(
        parse_ok(
            "a SETMETADATA INBOX (/shared/a \"x\" /shared/b {2+}\r\nyz /shared/c ~{1}\r\n\0 /private/d NIL)"
        ),
        CommandBody::SetMetadata {
            mailbox: "INBOX".into(),
            entries: vec![
                ("/shared/a".into(), Some(b"x".to_vec())),
                ("/shared/b".into(), Some(b"yz".to_vec())),
                ("/shared/c".into(), Some(vec![0])),
                ("/private/d".into(), None),
            ],
        }
    );
    parse_err("a GETMETADATA (DEPTH 2) INBOX /shared/a");
    parse_err("a GETMETADATA (FOO 1) INBOX /shared/a");
    parse_err("a SETMETADATA INBOX /shared/a \"x\"");
    parse_err("a SETMETADATA INBOX ()");
    let many = format!("a GETMETADATA INBOX ({})", vec!["/shared/x"; 300].join(" "));
    parse_err(&many);
}

#[test]
fn catenate_parts_parse() {
    // RFC 4469 §5: TEXT literals and URLs, with MULTIAPPEND.
    let CommandBody::Append {
        flags,
        catenate,
        more,
        message,
        ..
    } = parse_ok(
        "a APPEND INBOX (\\Seen) CATENATE (TEXT {3+}\r\nabc URL \"/INBOX/;UID=1\" TEXT ~{1+}\r\nz) catenate (url /INBOX/;UID=2)",
    )
    else {
        panic!("not an APPEND");
    };
    assert_eq!(flags, vec!["\\Seen".to_string()]);
    assert!(message.is_empty());
    assert_eq!(
        catenate,
        vec![
            CatPart::Text(b"abc".to_vec()),
            CatPart::Url("/INBOX/;UID=1".into()),
            CatPart::Text(b"z".to_vec()),
        ]
    );
    assert_eq!(more[0].catenate, vec![CatPart::Url("/INBOX/;UID=2".into())]);
    parse_err("a APPEND INBOX CATENATE ()");
    parse_err("a APPEND INBOX CATENATE (TEXT \"quoted\")");
    parse_err("a APPEND INBOX CATENATE (FILE x)");
    let many = format!(
        "a APPEND INBOX CATENATE ({})",
        vec!["URL /INBOX/;UID=1"; 65].join(" ")
    );
    parse_err(&many);
}

#[test]
fn urlauth_commands_parse() {
    // RFC 4467 §9
    assert_eq!(
        parse_ok(
            "a GENURLAUTH \"imap://a@h/INBOX/;UID=1;URLAUTH=authuser\" internal \"imap://a@h/X/;UID=2;URLAUTH=anonymous\" INTERNAL"
        ),
        CommandBody::GenUrlAuth(vec![
            (
                "imap://a@h/INBOX/;UID=1;URLAUTH=authuser".into(),
                "INTERNAL".into()
            ),
            (
                "imap://a@h/X/;UID=2;URLAUTH=anonymous".into(),
                "INTERNAL".into()
            ),
        ])
    );
    assert_eq!(
        parse_ok("a RESETKEY"),
        CommandBody::ResetKey {
            mailbox: None,
            mechanisms: vec![]
        }
    );
    assert_eq!(
        parse_ok("a RESETKEY inbox INTERNAL"),
        CommandBody::ResetKey {
            mailbox: Some("INBOX".into()),
            mechanisms: vec!["INTERNAL".into()]
        }
    );
    assert_eq!(
        parse_ok("a URLFETCH \"u1\" u2"),
        CommandBody::UrlFetch(vec!["u1".into(), "u2".into()])
    );
    parse_err("a GENURLAUTH");
    parse_err("a GENURLAUTH \"u\"");
    parse_err("a URLFETCH");
    parse_err(&format!("a URLFETCH {}", vec!["u"; 33].join(" ")));
}

#[test]
fn notify_commands_parse() {
    // RFC 5465 §8
    assert_eq!(parse_ok("a NOTIFY NONE"), CommandBody::Notify(None));
    let CommandBody::Notify(Some(set)) = parse_ok(
        "a NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From)]) MessageExpunge)) (SUBTREE (Lists \"Work\") (MailboxName)) (MAILBOXES INBOX NONE)",
    ) else {
        panic!("not a NOTIFY SET");
    };
    assert!(set.status);
    assert_eq!(set.groups.len(), 3);
    assert_eq!(set.groups[0].filter, NotifyFilter::Selected);
    assert!(matches!(&set.groups[0].events[0], NotifyEvent::MessageNew(a) if a.len() == 2));
    assert_eq!(
        set.groups[1].filter,
        NotifyFilter::Subtree(vec!["Lists".into(), "Work".into()])
    );
    assert_eq!(set.groups[1].events, vec![NotifyEvent::MailboxName]);
    assert_eq!(
        set.groups[2],
        NotifyGroup {
            filter: NotifyFilter::Mailboxes(vec!["INBOX".into()]),
            events: vec![]
        }
    );
    let CommandBody::Notify(Some(set)) = parse_ok("a NOTIFY SET (PERSONAL (Frob))") else {
        panic!("not a NOTIFY SET");
    };
    assert_eq!(
        set.groups[0].events,
        vec![NotifyEvent::Other("FROB".into())]
    );
    parse_err("a NOTIFY");
    parse_err("a NOTIFY SET");
    parse_err("a NOTIFY SET (ELSEWHERE (MailboxName))");
    parse_err("a NOTIFY SET (PERSONAL MailboxName)");
    parse_err("a NOTIFY ON");
}
