mod clients;
mod common;
mod crosscheck;
mod desync;
mod limits;
mod peers;
