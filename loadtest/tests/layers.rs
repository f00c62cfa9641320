//! The layer order that the `# Layout` doc of `src/main.rs` lists, enforced:
//! a module may name (through `crate::…`) only itself and the modules linked
//! before it there. The doc is the only copy of the order, so the two cannot
//! drift; a module missing from the doc fails the test too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let main = read(&src.join("main.rs"));
    let order = documented_order(&main);
    let mut listed = order.clone();
    listed.sort();
    let mut declared = declared_modules(&main);
    declared.sort();
    assert_eq!(
        listed, declared,
        "the # Layout doc of main.rs must link every module that main.rs declares, once"
    );
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(k, m)| (m.as_str(), k))
        .collect();
    let mut upward = Vec::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).expect("under src");
        // main.rs is the crate root, above every module.
        let Some(module) = top_module(rel) else {
            continue;
        };
        let own = rank[module.as_str()];
        for used in crate_paths(&read(&file)) {
            match rank.get(used.as_str()) {
                Some(&r) if r <= own => {}
                Some(_) => upward.push(format!("{}: crate::{used}", rel.display())),
                None => upward.push(format!(
                    "{}: crate::{used} (not a module of the # Layout list)",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules importing above their layer (see the # Layout doc of main.rs):\n{}",
        upward.join("\n")
    );
}

#[test]
fn finds_the_modules_a_file_names() {
    let text = "use crate::a::B;\nuse crate::{\n    b,\n    c::{D, E},\n};\n\
                // crate::commented\n/// [`crate::doc`]\n\
                let x = crate::d::f(crate::a::g);\nmacro! { $crate::m } my_crate::n;\n\
                pub(crate) fn h() {}";
    assert_eq!(crate_paths(text), ["a", "b", "c", "d", "a"]);
    let doc = "//! intro [`nope`]\n//!\n//! # Layout\n//!\n//! 1. [`low`] (a `word`), [`mid`]\n\
               //!    and [`high`]\n//!\n//! # Other\n//! [`later`]\nmod x;\n";
    assert_eq!(documented_order(doc), ["low", "mid", "high"]);
    assert_eq!(
        declared_modules("mod a;\npub mod b;\nmod tests {\nuse x;"),
        ["a", "b"]
    );
    assert_eq!(
        top_module(Path::new("scenarios/cluster/mod.rs")).as_deref(),
        Some("scenarios")
    );
    assert_eq!(
        top_module(Path::new("agents.rs")).as_deref(),
        Some("agents")
    );
    assert_eq!(top_module(Path::new("main.rs")), None);
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module a file belongs to (`scenarios/cluster/mod.rs` → `scenarios`);
/// `None` for the crate root.
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("main") => None,
        Some(stem) => Some(stem.to_owned()),
        None => Some(first.to_owned()),
    }
}

/// The modules linked (``[`name`]``) in the `# Layout` section of the crate
/// doc, in order.
fn documented_order(main: &str) -> Vec<String> {
    let doc = main
        .lines()
        .map_while(|l| l.trim_start().strip_prefix("//!"))
        .map(str::trim);
    let section = doc
        .skip_while(|l| *l != "# Layout")
        .skip(1)
        .take_while(|l| !l.starts_with('#'));
    let mut order = Vec::new();
    for line in section {
        let mut rest = line;
        while let Some(start) = rest.find("[`") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find("`]") else { break };
            order.push(rest[..end].to_owned());
            rest = &rest[end + 2..];
        }
    }
    order
}

/// `mod x;` and `pub mod x;` lines of the crate root.
fn declared_modules(main: &str) -> Vec<String> {
    main.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// The first segment after every `crate::` outside comments, with each
/// member of a `crate::{…}` group; in order of appearance.
fn crate_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = code[from..].trim_start();
        match rest.strip_prefix('{') {
            Some(group) => found.extend(group_heads(group)),
            None => found.extend(ident(rest)),
        }
    }
    found
}

/// The first identifier of each top-level member of a `{…}` group (`group`
/// starts just after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut member_start = 0;
    for (k, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.extend(ident(group[member_start..k].trim_start()));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.extend(ident(group[member_start..k].trim_start()));
                member_start = k + 1;
            }
            _ => {}
        }
    }
    heads
}

fn ident(s: &str) -> Option<String> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| s[..end].to_owned())
}
