mod clients;
mod common;
mod durability;
mod hostile;
mod inbox;
mod limits;
mod serve_cli;
