mod clients;
mod common;
mod durability;
mod hostile;
mod limits;
