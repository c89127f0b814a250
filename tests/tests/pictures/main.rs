//! The pictures the programs draw, rendered in headless Chromium and checked: the SVG parses,
//! it holds one mark per thing it claims to show, and the rendering is not blank.

mod bench;
mod bulk;
mod probe;
mod render;
mod throughput;
