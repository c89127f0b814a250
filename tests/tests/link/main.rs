mod carry;
mod harness;
mod lifecycle;
mod limits;
mod trace;
