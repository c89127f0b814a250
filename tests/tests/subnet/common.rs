//! Running `subnet --json` and reading its fields.

use std::net::IpAddr;
use std::process::{Command, Output};

use protolab_tests::{bin, run_ok};
use serde_json::Value;

/// `subnet ARGS --json`, which must succeed, as JSON.
pub fn subnet_json(args: &[&str]) -> Value {
    let text = run_ok(Command::new(bin("subnet")).args(args).arg("--json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("subnet {args:?}: bad JSON: {e}\n{text}"))
}

/// `subnet ARGS` with whatever status it ends with.
pub fn subnet_raw(args: &[&str]) -> Output {
    Command::new(bin("subnet"))
        .args(args)
        .output()
        .expect("run subnet")
}

/// A string field, or a number field written as text (IPv4 counts are numbers, IPv6 counts are
/// decimal strings).
pub fn text(v: &Value, field: &str) -> String {
    match &v[field] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("field {field} is {other} in {v}"),
    }
}

/// An address field, parsed.
pub fn addr(v: &Value, field: &str) -> IpAddr {
    text(v, field)
        .parse()
        .unwrap_or_else(|e| panic!("field {field} of {v}: {e}"))
}

/// The names in `kinds`.
pub fn kinds(v: &Value) -> Vec<String> {
    v["kinds"]
        .as_array()
        .expect("kinds is an array")
        .iter()
        .map(|k| k["name"].as_str().expect("kind name").to_owned())
        .collect()
}
