mod common;
mod garbage;
mod namespace;
mod peers;
mod relay;
