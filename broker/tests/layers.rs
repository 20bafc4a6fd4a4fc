//! The rooms of `broker/src` and the direction of their imports.
//!
//! `lib.rs` lists the rooms (folders or single files) lowest first; a room
//! may use the rooms listed before it and none listed after it, so imports
//! run one way and there is no cycle between rooms. This test reads every
//! source file and fails on a `crate::<room>` path against that direction.
//! The binary (`main.rs`, `cli/`) sits on top and may use every room.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The rooms in the order `lib.rs` declares them (`pub mod x;`).
fn rooms(lib_rs: &str) -> Vec<String> {
    lib_rs
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.to_owned())
        })
        .collect()
}

/// `(room, source)` of each library file, the room being the first path
/// component under `src/` (a folder or a single file).
fn sources(src: &Path) -> Vec<(String, PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("broker/src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).expect("under src");
                let first = relative
                    .components()
                    .next()
                    .and_then(|c| c.as_os_str().to_str())
                    .expect("a file name");
                let room = first.strip_suffix(".rs").unwrap_or(first).to_owned();
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                out.push((room, path, text));
            }
        }
    }
    out
}

/// Every `crate::<room>` in code (comments and doc comments are not
/// imports) of a file of room `room` that reaches a room ranked above it.
fn violations(room: &str, text: &str, rank: &HashMap<&str, usize>) -> Vec<String> {
    let Some(&own) = rank.get(room) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(&theirs) = rank.get(name.as_str())
                && theirs > own
            {
                found.push(format!("line {}: {room} uses crate::{name}", n + 1));
            }
            rest = after;
        }
    }
    found
}

#[test]
fn no_room_imports_a_room_declared_after_it_in_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let rooms = rooms(&lib);
    assert!(
        rooms.len() >= 10,
        "lib.rs declares the rooms as `pub mod …;` lines: {rooms:?}"
    );
    let rank: HashMap<&str, usize> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut all = Vec::new();
    let mut files = 0;
    for (room, path, text) in sources(&src) {
        if room == "lib" || room == "main" || room == "cli" {
            continue;
        }
        assert!(
            rank.contains_key(room.as_str()),
            "{} is in a room lib.rs does not declare",
            path.display()
        );
        files += 1;
        for v in violations(&room, &text, &rank) {
            all.push(format!("{}: {v}", path.display()));
        }
    }
    assert!(files > 30, "read only {files} files");
    assert!(
        all.is_empty(),
        "imports against the direction lib.rs draws (lower rooms first):\n{}",
        all.join("\n")
    );
}

/// The places in `text` that run SQL (`sqlx::query…`, `raw_sql`,
/// `QueryBuilder`), comments excepted.
fn sql_statements(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            ["sqlx::query", "sqlx::raw_sql", "QueryBuilder"]
                .iter()
                .any(|needle| code.contains(needle))
        })
        .map(|(n, _)| n + 1)
        .collect()
}

#[test]
fn every_sql_statement_is_in_the_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut outside = Vec::new();
    let mut inside = 0;
    for (room, path, text) in sources(&src) {
        let lines = sql_statements(&text);
        if room == "store" {
            inside += lines.len();
        } else {
            outside.extend(lines.iter().map(|n| format!("{}:{n}", path.display())));
        }
    }
    assert!(inside > 20, "the store runs only {inside} statements?");
    assert!(
        outside.is_empty(),
        "SQL outside store/ (every statement of the program belongs there):\n{}",
        outside.join("\n")
    );
}

#[test]
fn an_import_against_the_direction_is_found_and_one_along_it_is_not() {
    let rank: HashMap<&str, usize> = [("domain", 0), ("store", 1), ("pipeline", 2)]
        .into_iter()
        .collect();
    let text =
        "use crate::domain::time::now;\nuse crate::pipeline::Pipeline;\n// see crate::pipeline\n";
    assert_eq!(
        violations("store", text, &rank),
        vec!["line 2: store uses crate::pipeline".to_owned()]
    );
    assert!(violations("pipeline", text, &rank).is_empty());
    assert_eq!(
        rooms("pub mod domain;\npub(crate) mod store;\nuse x;\n"),
        vec!["domain", "store"]
    );
    assert_eq!(
        sql_statements("let a = 1;\nsqlx::query(SQL)\n// sqlx::query in a comment\n"),
        vec![2]
    );
}
