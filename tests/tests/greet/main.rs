//! End-to-end tests of the `greet` binary over real sockets.

mod conversation;
mod limits;
mod load;
mod peers;
mod shutdown;
