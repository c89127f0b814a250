mod carry;
mod harness;
mod lifecycle;
mod trace;
