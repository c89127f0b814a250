mod cache_suite;
mod proxy_peers;
