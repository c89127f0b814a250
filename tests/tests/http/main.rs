mod cache_suite;
mod clients;
mod common;
mod crosscheck;
mod desync;
mod limits;
mod peers;
mod proxy_peers;
