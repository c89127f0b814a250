mod cache;
mod common;
mod corpus;
mod iterative;
mod limits;
mod rrl;
mod shutdown;
mod spoof;
