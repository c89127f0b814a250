mod clients;
mod common;
mod durability;
mod hostile;
mod limits;
mod serve_cli;
mod tls;
