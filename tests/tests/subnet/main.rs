//! End-to-end tests of the `subnet` binary: its `--json` against Python's `ipaddress` on random
//! cases, against Debian's `ipcalc` and `sipcalc` on fixed cases, and its command line.

mod cli;
mod common;
mod oracle;
mod peers;
