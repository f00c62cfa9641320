//! The layer rule of `src/lib.rs`: a module uses only modules of the layers below its
//! own. Read from the numbered list in the crate docs, so the docs and the check cannot
//! drift; every `crate::` path outside comments is checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module → layer number (1 is the top), from `//! N. [`a`], [`b`]: …` lines.
fn layers(lib: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((number, rest)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.parse::<u32>() else {
            continue;
        };
        let names = rest.split_once(':').map_or(rest, |(names, _)| names);
        for name in names.split(',') {
            let name = name.trim().trim_start_matches("[`").trim_end_matches("`]");
            out.insert(name.to_owned(), layer);
        }
    }
    out
}

/// The top-level modules named by `crate::` paths in `code` (comments skipped).
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in code.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}`: the first name of each top-level item.
                let (mut depth, mut item_start) = (0, true);
                for (i, ch) in group.char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphanumeric() || c == '_') => {
                            found.push(ident(&group[i..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                found.push(ident(rest));
            }
        }
    }
    found
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every violation in `src`: (file, module, used module).
fn violations(src: &Path, layers: &BTreeMap<String, u32>) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_owned())
            .expect("a file name");
        if top == "lib" || top == "main" {
            continue;
        }
        let own = *layers
            .get(&top)
            .unwrap_or_else(|| panic!("module `{top}` is missing from the layer list"));
        let code = std::fs::read_to_string(&file).expect("read file");
        for used in uses(&code) {
            if used == top {
                continue;
            }
            match layers.get(&used) {
                Some(&layer) if layer > own => {}
                Some(&layer) => bad.push(format!(
                    "{}: `{top}` (layer {own}) uses `{used}` (layer {layer})",
                    rel.display()
                )),
                None => bad.push(format!("{}: `{used}` is not in the list", rel.display())),
            }
        }
    }
    bad
}

#[test]
fn modules_use_only_the_layers_below_their_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("read lib.rs");
    let layers = layers(&lib);
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(layers.contains_key(name), "`{name}` has no layer in lib.rs");
        }
    }
    let bad = violations(&root.join("src"), &layers);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_finds_upward_and_sideways_imports() {
    let layers = layers("//! 1. [`top`]: a\n//! 2. [`mid`], [`side`]: b\n//! 3. [`low`]: c\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let write =
        |name: &str, code: &str| std::fs::write(dir.path().join(name), code).expect("write");
    write("top.rs", "use crate::{mid::A, low::B};\n");
    write(
        "mid.rs",
        "use crate::{low::X, top::{Y, Z}};\n// crate::side is fine in a comment\n",
    );
    write("side.rs", "fn f() { crate::mid::g() }\n");
    write("low.rs", "use crate::low::inner;\n");
    let mut bad = violations(dir.path(), &layers);
    bad.sort();
    assert_eq!(
        bad,
        [
            "mid.rs: `mid` (layer 2) uses `top` (layer 1)",
            "side.rs: `side` (layer 2) uses `mid` (layer 2)",
        ]
    );
}
