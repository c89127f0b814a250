mod carry;
mod congestion;
mod diagram;
mod harness;
mod layers;
mod lifecycle;
mod limits;
#[path = "../pictures/render.rs"]
mod render;
mod tls_demo;
mod trace;
