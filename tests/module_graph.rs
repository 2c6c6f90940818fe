//! The crate's modules form no cycle, and data flows one way: `track` tells `ckpt` which pages
//! changed and `ckpt` hands them to `store` (neither `track` nor `store` knows the other, and
//! `ckpt` does not know the runtime that calls it).
//!
//! The graph is read from the sources: every `crate::<module>` a file names (outside comments
//! and its unit tests) is an edge from the file's top-level module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn top_module(rel: &Path) -> String {
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn strip(src: &str) -> String {
    let code = src.split("#[cfg(test)]").next().unwrap_or("");
    code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let from = top_module(p.strip_prefix(&root).unwrap());
            if from == "lib" || from == "loom" {
                continue;
            }
            let code = strip(&std::fs::read_to_string(&p).unwrap());
            let mut add = |to: &str| {
                if to != from && !to.is_empty() {
                    edges.entry(from.clone()).or_default().insert(to.to_string());
                }
            };
            for part in code.split("crate::").skip(1) {
                if let Some(rest) = part.strip_prefix('{') {
                    // `use crate::{a, b::c}`: every first path segment in the braces.
                    let group = rest.split('}').next().unwrap_or("");
                    for item in group.split(',') {
                        add(item.trim().split("::").next().unwrap_or("").trim());
                    }
                } else {
                    add(&part.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>());
                }
            }
        }
    }
    edges
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(n) = todo.pop() {
        for m in g.get(&n).into_iter().flatten() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                todo.push(m.clone());
            }
        }
    }
    false
}

#[test]
fn modules_form_no_cycle() {
    let g = graph();
    for (a, outs) in &g {
        for b in outs {
            assert!(!reaches(&g, b, a), "cycle: {a} -> {b} -> ... -> {a}; graph: {g:#?}");
        }
    }
}

#[test]
fn data_flows_from_track_through_ckpt_to_store() {
    let g = graph();
    let uses = |a: &str, b: &str| g.get(a).is_some_and(|s| s.contains(b));
    assert!(!uses("track", "store") && !uses("store", "track"), "track and store must not know each other: {g:#?}");
    assert!(!uses("ckpt", "runtime"), "ckpt is called by the runtime, not the other way round: {g:#?}");
    assert!(!uses("region", "heap") && !uses("heap", "track"), "{g:#?}");
    assert!(uses("ckpt", "track") && uses("ckpt", "store"), "{g:#?}");
}
