mod clients;
mod common;
mod durability;
mod hostile;
mod inbox;
mod inbox_browser;
mod limits;
mod serve_cli;
