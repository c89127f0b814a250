mod carry;
mod congestion;
mod harness;
mod lifecycle;
mod limits;
#[path = "../pictures/render.rs"]
mod render;
mod trace;
