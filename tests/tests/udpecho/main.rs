mod cli;
mod common;
mod garbage;
mod hostile;
mod limits;
mod namespace;
mod peers;
mod relay;
