mod clients;
mod common;
mod durability;
mod limits;
