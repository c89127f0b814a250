mod cache;
mod common;
mod corpus;
mod iterative;
mod limits;
mod shutdown;
mod spoof;
