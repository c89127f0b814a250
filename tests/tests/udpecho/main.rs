mod common;
mod garbage;
mod hostile;
mod namespace;
mod peers;
mod relay;
