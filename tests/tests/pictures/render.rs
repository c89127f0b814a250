//! Rendering an SVG picture in Debian's headless Chromium and reading the result: the checks
//! every picture test makes (the SVG parses, the PNG is not blank).

use std::path::Path;
use std::process::Command;

use protolab_tests::require_peer;

/// What a picture looks like once drawn.
#[derive(Debug)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    /// Pixels that differ from the top-left pixel (the background).
    pub ink: u64,
}

/// Parses `svg` and hands its document to `check`.
pub fn with_svg<T>(svg: &Path, check: impl FnOnce(&roxmltree::Document<'_>) -> T) -> T {
    let text = std::fs::read_to_string(svg).unwrap_or_else(|e| panic!("read {svg:?}: {e}"));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{svg:?} is not well-formed XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    check(&doc)
}

/// The elements named `tag` whose attribute `attr` is `value`.
pub fn count(doc: &roxmltree::Document<'_>, tag: &str, attr: &str, value: &str) -> usize {
    doc.descendants()
        .filter(|n| n.has_tag_name(tag) && n.attribute(attr) == Some(value))
        .count()
}

/// The number of points of each `<polyline>` stroked in `colour`, longest first.
pub fn polylines(doc: &roxmltree::Document<'_>, colour: &str) -> Vec<usize> {
    let mut v: Vec<usize> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(colour))
        .map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .count()
        })
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

/// Renders `svg` to `png` with headless Chromium (a fresh profile, no network) and decodes it.
pub fn render(svg: &Path, png: &Path) -> Rendered {
    let chromium = require_peer("chromium", "chromium");
    let profile = tempfile::tempdir().unwrap();
    let svg = svg.canonicalize().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,800")
        .arg(format!("file://{}", svg.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png).expect("chromium wrote the screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let bytes = &buf[..info.buffer_size()];
    let px = info.color_type.samples();
    let background = &bytes[..px];
    let ink = bytes
        .chunks_exact(px)
        .filter(|p| p.iter().zip(background).any(|(a, b)| a.abs_diff(*b) > 24))
        .count() as u64;
    Rendered {
        width: info.width,
        height: info.height,
        ink,
    }
}

/// Renders and asserts the picture is not blank: at least `min_share` of its pixels inked.
pub fn assert_drawn(svg: &Path, min_share: f64) -> Rendered {
    let png = svg.with_extension("png");
    let r = render(svg, &png);
    let share = r.ink as f64 / (u64::from(r.width) * u64::from(r.height)) as f64;
    assert!(
        share >= min_share,
        "{svg:?} rendered nearly blank: {} of {}x{} pixels inked",
        r.ink,
        r.width,
        r.height
    );
    r
}
