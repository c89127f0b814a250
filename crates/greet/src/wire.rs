//! The greeting protocol without I/O.
//!
//! Two framings exist. `Line` is the protocol as specified: messages are lines. `Raw` is the
//! classic Python server's behaviour reproduced exactly: whatever one `recv()` returned is taken
//! as one message and replies carry no newline, which works on an idle loopback and breaks as
//! soon as TCP merges or splits the sends, because TCP carries bytes, not messages.

use bytes::{BufMut, BytesMut};

/// The longest name line accepted, in bytes.
pub const MAX_LINE: usize = 1024;
/// What a raw-framing read takes at most, like the classic server's `recv(1024)`.
pub const RAW_CHUNK: usize = 1024;
/// The message that ends a conversation.
pub const EXIT: &[u8] = b"exit";
/// Sent to a client over the connection cap, which is then closed.
pub const BUSY: &[u8] = b"ERR busy\n";
/// Sent for a line over [`MAX_LINE`]; the connection is then closed.
pub const TOO_LONG: &[u8] = b"ERR line too long\n";

/// How messages are told apart on a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Framing {
    /// One message per line, LF or CRLF ended; replies end with LF.
    #[default]
    Line,
    /// One message per `recv()`, as the classic server does; replies have no newline.
    Raw,
}

/// What the server does after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A reply was appended; read on.
    Continue,
    /// The client said `exit`: close without a reply.
    Close,
}

/// The greeting sent on connect.
pub fn welcome(framing: Framing) -> &'static [u8] {
    match framing {
        Framing::Line => b"Welcome!\n",
        Framing::Raw => b"Welcome!",
    }
}

/// Answers one message, appending the reply to `out`.
pub fn on_message(framing: Framing, message: &[u8], out: &mut BytesMut) -> Action {
    if message == EXIT {
        return Action::Close;
    }
    out.reserve(message.len() + 9);
    out.put_slice(b"Hello, ");
    out.put_slice(message);
    out.put_u8(b'!');
    if framing == Framing::Line {
        out.put_u8(b'\n');
    }
    Action::Continue
}

/// Answers one UDP datagram: the name is the datagram (a trailing LF or CRLF is dropped, so
/// `echo NAME | nc -u` works); `exit` means nothing without a connection and gets no reply.
pub fn on_datagram(datagram: &[u8]) -> Option<BytesMut> {
    let name = datagram
        .strip_suffix(b"\n")
        .map(|d| d.strip_suffix(b"\r").unwrap_or(d))
        .unwrap_or(datagram);
    if name.len() > MAX_LINE {
        return Some(BytesMut::from(TOO_LONG));
    }
    let mut out = BytesMut::new();
    match on_message(Framing::Raw, name, &mut out) {
        Action::Continue => Some(out),
        Action::Close => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(framing: Framing, msg: &[u8]) -> (Action, Vec<u8>) {
        let mut out = BytesMut::new();
        let action = on_message(framing, msg, &mut out);
        (action, out.to_vec())
    }

    #[test]
    fn line_replies() {
        assert_eq!(welcome(Framing::Line), b"Welcome!\n");
        assert_eq!(
            reply(Framing::Line, b"Michael"),
            (Action::Continue, b"Hello, Michael!\n".to_vec())
        );
        assert_eq!(
            reply(Framing::Line, b""),
            (Action::Continue, b"Hello, !\n".to_vec())
        );
        assert_eq!(reply(Framing::Line, b"exit"), (Action::Close, vec![]));
        // Only the exact word closes.
        assert_eq!(reply(Framing::Line, b"exit ").0, Action::Continue);
    }

    #[test]
    fn bytes_are_echoed_as_received() {
        assert_eq!(
            reply(Framing::Line, b"\xe5\xbc\xa0\xff"),
            (Action::Continue, b"Hello, \xe5\xbc\xa0\xff!\n".to_vec())
        );
    }

    #[test]
    fn raw_replies_have_no_newline() {
        assert_eq!(welcome(Framing::Raw), b"Welcome!");
        assert_eq!(
            reply(Framing::Raw, b"Tracy"),
            (Action::Continue, b"Hello, Tracy!".to_vec())
        );
        // Two sends merged into one recv() are one message to the raw server.
        assert_eq!(
            reply(Framing::Raw, b"TracySarah").1,
            b"Hello, TracySarah!".to_vec()
        );
    }

    #[test]
    fn datagrams() {
        assert_eq!(
            on_datagram(b"Sarah").unwrap().to_vec(),
            b"Hello, Sarah!".to_vec()
        );
        assert_eq!(
            on_datagram(b"Sarah\r\n").unwrap().to_vec(),
            b"Hello, Sarah!".to_vec()
        );
        assert_eq!(on_datagram(b"exit"), None);
        assert_eq!(
            on_datagram(&[b'x'; 2000]).unwrap().to_vec(),
            TOO_LONG.to_vec()
        );
    }
}
