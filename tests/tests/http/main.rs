mod clients;
mod common;
mod crosscheck;
mod desync;
mod peers;
