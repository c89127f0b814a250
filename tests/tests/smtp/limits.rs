//! Limits and bad input over a raw socket: each test checks the exact transcript.

use std::time::Duration;

use crate::common::{Raw, Smtp};

#[test]
fn pipelined_commands_in_one_packet_get_replies_in_order() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@f.test>\r\nDATA\r\n");
    let t = c.replies(5);
    assert!(t.contains("250-PIPELINING\r\n"), "{t}");
    assert!(
        t.contains(
            "250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n"
        ),
        "{t}"
    );
    assert!(
        t.ends_with("250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n250 2.1.5 recipient OK\r\n354 2.0.0 send the message; end with <CRLF>.<CRLF>\r\n"),
        "{t}"
    );
    // The end of the message, a second transaction and QUIT in one packet.
    c.send(b"Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<g@h.test>\r\nDATA\r\n");
    let t = c.replies(4);
    assert!(t.starts_with("250 2.0.0 OK: queued as "), "{t}");
    assert!(t.ends_with("250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n354 2.0.0 send the message; end with <CRLF>.<CRLF>\r\n"), "{t}");
    c.send(b"Subject: two\r\n\r\n.\r\nQUIT\r\n");
    let t = c.replies(2);
    assert!(t.starts_with("250 2.0.0 OK: queued as "), "{t}");
    assert!(
        t.ends_with("221 2.0.0 mx.test closing connection\r\n"),
        "{t}"
    );
    assert!(c.closed());
    let stored = smtp.messages();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].message, b"Subject: one\r\n\r\nbody\r\n");
    assert_eq!(stored[0].delivered_to, vec!["c@d.test", "e@f.test"]);
    assert_eq!(stored[1].return_path, "<>");
    assert_eq!(stored[1].message, b"Subject: two\r\n\r\n");
}

#[test]
fn command_line_over_512_octets_is_500() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 600));
    long.extend_from_slice(b"\r\nNOOP\r\n");
    c.send(&long);
    assert_eq!(
        c.replies(2),
        "500 5.5.2 line too long: a command line may hold 512 octets with its CRLF\r\n250 2.0.0 OK\r\n"
    );
    // 510 octets and CRLF is within the limit.
    let mut fits = b"NOOP ".to_vec();
    fits.extend(std::iter::repeat_n(b'x', 505));
    fits.extend_from_slice(b"\r\n");
    c.send(&fits);
    assert_eq!(c.reply(), "250 2.0.0 OK\r\n");
}

#[test]
fn text_line_over_1000_octets_is_refused_after_the_data() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    c.begin("a@b.test", "c@d.test");
    let mut body = b"Subject: long\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'y', 1001));
    body.extend_from_slice(b"\r\n.\r\n");
    c.send(&body);
    assert_eq!(
        c.reply(),
        "500 5.6.0 line too long: a text line may hold 1000 octets with its CRLF\r\n"
    );
    // The session goes on.
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>"), "250 2.1.0 sender OK\r\n");
    assert!(smtp.messages().is_empty());
    assert_eq!(smtp.tmp_files(), 0);
}

#[test]
fn message_over_size_is_552_and_the_session_goes_on() {
    let smtp = Smtp::start(&["--max-size", "1000"]);
    let mut c = Raw::greeted(smtp.addr);
    assert!(c.cmd("EHLO client.test").contains("250-SIZE 1000\r\n"));
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.test> SIZE=1001"),
        "552 5.3.4 message size exceeds the limit of 1000 octets\r\n"
    );
    // A client that declares less than it sends is caught while the data streams.
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.test> SIZE=10"),
        "250 2.1.0 sender OK\r\n"
    );
    assert_eq!(c.cmd("RCPT TO:<c@d.test>"), "250 2.1.5 recipient OK\r\n");
    assert!(c.cmd("DATA").starts_with("354"));
    for _ in 0..100 {
        c.send(b"0123456789012345678901234567890123456789\r\n");
    }
    c.send(b".\r\n");
    assert_eq!(
        c.reply(),
        "552 5.3.4 message size exceeds the limit of 1000 octets\r\n"
    );
    c.begin("a@b.test", "c@d.test");
    c.send(b"small\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 OK: queued as "));
    let stored = smtp.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message, b"small\r\n");
    assert_eq!(smtp.tmp_files(), 0);
}

#[test]
fn too_many_recipients_is_452() {
    let smtp = Smtp::start(&["--max-recipients", "2"]);
    let mut c = Raw::greeted(smtp.addr);
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@b.test>");
    c.send(b"RCPT TO:<1@d.test>\r\nRCPT TO:<2@d.test>\r\nRCPT TO:<3@d.test>\r\n");
    assert_eq!(
        c.replies(3),
        "250 2.1.5 recipient OK\r\n250 2.1.5 recipient OK\r\n452 4.5.3 too many recipients; send the rest in another message\r\n"
    );
}

#[test]
fn out_of_order_syntax_and_unknown_commands() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    c.send(b"MAIL FROM:<a@b.test>\r\nHELO client.test\r\nRCPT TO:<c@d.test>\r\nDATA\r\nMAIL FROM:a@b.test\r\nFROB\r\nEXPN staff\r\nMAIL FROM:<a@b.test> FOO=1\r\nMAIL FROM:<a b@c>\r\n");
    assert_eq!(
        c.replies(9),
        "503 5.5.1 say EHLO or HELO first\r\n\
         250 mx.test\r\n\
         503 5.5.1 say MAIL FROM first\r\n\
         503 5.5.1 say MAIL FROM and RCPT TO first\r\n\
         501 5.5.4 syntax: MAIL FROM:<address> [parameters]\r\n\
         500 5.5.2 command \"FROB\" not recognized\r\n\
         502 5.5.1 EXPN is not implemented\r\n\
         555 5.5.4 MAIL parameter \"FOO=1\" is not supported\r\n\
         501 5.1.7 bad address <a b@c>: the local part has characters that need quoting\r\n"
    );
    assert_eq!(c.cmd("RSET"), "250 2.0.0 OK\r\n");
    assert_eq!(
        c.cmd("VRFY someone"),
        "252 2.5.0 cannot VRFY a user, but will accept the message and deliver it\r\n"
    );
}

#[test]
fn too_many_errors_end_the_session_with_421() {
    let smtp = Smtp::start(&[]);
    let mut c = Raw::greeted(smtp.addr);
    for _ in 0..9 {
        assert!(c.cmd("BOGUS").starts_with("500 5.5.2"));
    }
    c.send(b"BOGUS\r\n");
    assert_eq!(
        c.replies(2),
        "500 5.5.2 command \"BOGUS\" not recognized\r\n421 4.7.0 mx.test too many errors; closing connection\r\n"
    );
    assert!(c.closed());
}

#[test]
fn idle_timeout_is_421_and_other_clients_carry_on() {
    // `--timeout` is the old name of `--idle-timeout`, still accepted.
    for flag in ["--idle-timeout", "--timeout"] {
        idle_timeout_with(flag);
    }
}

fn idle_timeout_with(flag: &str) {
    let smtp = Smtp::start(&[flag, "1s"]);
    let mut idle = Raw::greeted(smtp.addr);
    idle.begin("a@b.test", "c@d.test");
    idle.send(b"half a message");
    // Nothing more is sent: the server gives up after its timeout.
    assert_eq!(
        idle.reply(),
        "421 4.4.2 mx.test idle too long; closing connection\r\n"
    );
    assert!(idle.closed());
    let mut other = Raw::greeted(smtp.addr);
    assert_eq!(other.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert!(smtp.messages().is_empty());
    assert_eq!(smtp.tmp_files(), 0);
}

#[test]
fn over_the_connection_cap_is_421_at_the_greeting() {
    let smtp = Smtp::start(&["--max-connections", "2"]);
    let _a = Raw::greeted(smtp.addr);
    let _b = Raw::greeted(smtp.addr);
    let mut c = Raw::connect(smtp.addr);
    assert_eq!(
        c.reply(),
        "421 4.3.2 mx.test too many connections; try again later\r\n"
    );
    assert!(c.closed());
    drop(_a);
    // The freed slot is served again (the server notices the close asynchronously).
    let mut ok = None;
    for _ in 0..100 {
        let mut d = Raw::connect(smtp.addr);
        let g = d.reply();
        if g.starts_with("220 ") {
            ok = Some(g);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        ok.is_some(),
        "a slot freed by a closed session was not reused"
    );
}

#[test]
fn smuggling_variants_never_split_a_message() {
    let smtp = Smtp::start(&[]);
    let variants: [&[u8]; 8] = [
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n.\r",
        b"\r\n\n.\n\r\n",
    ];
    for v in variants {
        let mut c = Raw::greeted(smtp.addr);
        c.begin("a@b.test", "c@d.test");
        let mut data = b"Subject: smuggle\r\n\r\nbefore".to_vec();
        data.extend_from_slice(v);
        data.extend_from_slice(b"MAIL FROM:<evil@e.test>\r\nRCPT TO:<victim@v.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\nNOOP\r\n");
        c.send(&data);
        // One reply for the one message (refused for its bare LF/CR), then the NOOP's.
        assert_eq!(
            c.replies(2),
            "550 5.6.0 message refused: it holds a bare LF or bare CR; end every line with CRLF\r\n250 2.0.0 OK\r\n",
            "variant {v:?}"
        );
    }
    assert!(smtp.messages().is_empty(), "a smuggled message was stored");
    assert_eq!(smtp.tmp_files(), 0);
}

#[test]
fn storage_failure_is_451_and_nothing_in_new() {
    let smtp = Smtp::start(&[]);
    let tmp = smtp.maildir.join("tmp");
    // Take tmp/ away (a file in its place): creating the message file fails.
    std::fs::remove_dir(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    let mut c = Raw::greeted(smtp.addr);
    c.begin("a@b.test", "c@d.test");
    c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n");
    assert_eq!(
        c.reply(),
        "451 4.3.0 local error in storing the message; try again later\r\n"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert!(smtp.messages().is_empty());
}
