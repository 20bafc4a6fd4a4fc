//! Expand, then contract (docs/OPERATIONS.md, *Upgrades*): a release only
//! adds to the schema, so the previous release runs on the new schema
//! during a rolling upgrade and after a rollback of the binary.
//!
//! This test reads every migration of both backends and fails on a
//! statement that would break a binary that does not know it:
//! - `DROP TABLE`, `DROP COLUMN`, `DROP INDEX` (an index may be what an
//!   `ON CONFLICT` of the older binary needs), any other `DROP` in an
//!   `ALTER TABLE` (a constraint, a default, `NOT NULL`), any `RENAME`;
//! - `ALTER COLUMN` (a type, `SET NOT NULL`), `ADD CONSTRAINT`, a new
//!   `UNIQUE` index, on a table an earlier migration made;
//! - `ADD COLUMN … NOT NULL` without `DEFAULT` (the older binary's inserts
//!   do not name it).
//!
//! A contract step (the removal one release after nothing reads it any
//! more) is allowed when a comment line right above the statement says
//! `-- contract step: <why no running binary needs it>`, reviewed like any
//! other change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A statement, upper-cased with its whitespace collapsed, and whether a
/// contract-step comment stands right above it.
struct Statement {
    text: String,
    contract_step: bool,
}

/// The statements of one SQL file (`--` comments; a `;` ends a statement
/// except inside a `$$`-quoted function body; no `;` inside strings in
/// Kurier's migrations).
fn statements(sql: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let (mut text, mut contract_step, mut in_body) = (String::new(), false, false);
    for line in sql.lines() {
        let (code, comment) = match line.find("--") {
            Some(at) => (&line[..at], Some(&line[at + 2..])),
            None => (line, None),
        };
        if let Some(comment) = comment
            && text.trim().is_empty()
            && let Some(why) = comment.trim().strip_prefix("contract step:")
        {
            assert!(!why.trim().is_empty(), "a contract step says why: {line}");
            contract_step = true;
        }
        text.push(' ');
        for (i, quoted) in code.split("$$").enumerate() {
            if i > 0 {
                in_body = !in_body;
                text.push_str("$$");
            }
            if in_body {
                text.push_str(quoted);
                continue;
            }
            for (j, part) in quoted.split(';').enumerate() {
                if j > 0 {
                    push(&mut out, &mut text, &mut contract_step);
                }
                text.push_str(part);
            }
        }
    }
    push(&mut out, &mut text, &mut contract_step);
    out
}

fn push(out: &mut Vec<Statement>, text: &mut String, contract_step: &mut bool) {
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !words.is_empty() {
        out.push(Statement {
            text: words.to_uppercase(),
            contract_step: *contract_step,
        });
        *contract_step = false;
    }
    text.clear();
}

/// The table a statement works on: the word after `TABLE` (or `ON` for
/// an index), without `IF [NOT] EXISTS` and quotes.
fn table_of(statement: &str) -> Option<String> {
    let words: Vec<&str> = statement
        .split([' ', '('])
        .filter(|w| !w.is_empty() && !matches!(*w, "IF" | "NOT" | "EXISTS" | "ONLY"))
        .collect();
    let key = if statement.starts_with("CREATE") && statement.contains(" INDEX ") {
        "ON"
    } else {
        "TABLE"
    };
    let at = words.iter().position(|w| *w == key)?;
    Some(words.get(at + 1)?.trim_matches('"').to_owned())
}

/// Why a statement breaks the previous release, if it does. `created`:
/// the tables made earlier in the same file (changing those breaks nobody).
fn breaks_previous_release(statement: &str, created: &HashSet<String>) -> Option<&'static str> {
    let s = statement;
    let on_old_table = table_of(s).is_some_and(|t| !created.contains(&t));
    if s.starts_with("DROP TABLE") {
        return Some("drops a table");
    }
    if s.starts_with("DROP INDEX") {
        return Some("drops an index");
    }
    if s.contains(" RENAME ") || s.ends_with(" RENAME") {
        return Some("renames a table or column");
    }
    if s.starts_with("ALTER TABLE") {
        // DROP COLUMN, DROP CONSTRAINT, ALTER COLUMN … DROP NOT NULL (the
        // previous release may read a NULL it never expected) or DROP
        // DEFAULT (its inserts rely on it).
        if s.contains(" DROP ") {
            return Some("drops a column, constraint, NOT NULL or default");
        }
        if on_old_table && s.contains(" ALTER COLUMN ") {
            return Some("changes a column the previous release uses");
        }
        if on_old_table && s.contains(" ADD CONSTRAINT ") {
            return Some("adds a constraint the previous release's writes may violate");
        }
        if s.contains(" ADD ")
            && s.contains(" NOT NULL")
            && !s.contains(" DEFAULT ")
            && !s.contains(" ADD CONSTRAINT ")
        {
            return Some("adds a NOT NULL column without a default");
        }
    }
    if on_old_table && s.starts_with("CREATE UNIQUE INDEX") {
        return Some("adds a unique index the previous release's writes may violate");
    }
    None
}

/// `(file, problem, statement)` for every statement of `dir` that breaks
/// the previous release and is not marked a contract step.
fn problems(dir: &Path) -> Vec<(PathBuf, &'static str, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("migrations directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no migrations in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let sql = std::fs::read_to_string(&file).expect("migration is readable");
        let mut created = HashSet::new();
        for statement in statements(&sql) {
            if statement.text.starts_with("CREATE TABLE")
                && let Some(table) = table_of(&statement.text)
            {
                created.insert(table);
            }
            if let Some(problem) = breaks_previous_release(&statement.text, &created)
                && !statement.contract_step
            {
                out.push((file.clone(), problem, statement.text));
            }
        }
    }
    out
}

fn migrations(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend)
}

#[test]
fn every_migration_only_expands_the_schema() {
    for backend in ["sqlite", "postgres"] {
        let found = problems(&migrations(backend));
        assert!(
            found.is_empty(),
            "migrations that would break the previous release during a rolling upgrade \
             (docs/OPERATIONS.md, Upgrades: remove or rename one release later, marked \
             `-- contract step: <why>`):\n{}",
            found
                .iter()
                .map(|(f, why, s)| format!("  {}: {why}: {s}", f.display()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |backend| {
        let mut names: Vec<String> = std::fs::read_dir(migrations(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

#[test]
fn the_check_finds_what_breaks_the_previous_release() {
    let breaking = [
        "DROP TABLE receipts;",
        "DROP INDEX receipts_completed_at;",
        "ALTER TABLE receipts DROP COLUMN portal;",
        "ALTER TABLE receipts RENAME COLUMN portal TO origin;",
        "ALTER TABLE receipts RENAME TO receipts_v2;",
        "ALTER TABLE receipts ADD COLUMN tenant TEXT NOT NULL;",
        "alter table receipts\n  add column tenant text not null; -- lower case, two lines",
        "ALTER TABLE receipts ALTER COLUMN attempts TYPE INTEGER;",
        "ALTER TABLE receipts ADD CONSTRAINT one_ref UNIQUE (reference);",
        "CREATE UNIQUE INDEX receipts_reference ON receipts (reference);",
    ];
    for sql in breaking {
        let statements = statements(sql);
        assert_eq!(statements.len(), 1, "{sql}");
        assert!(
            breaks_previous_release(&statements[0].text, &HashSet::new()).is_some(),
            "not caught: {sql}"
        );
    }
    let expanding = [
        "CREATE TABLE answers (id TEXT NOT NULL, at TEXT NOT NULL);",
        "ALTER TABLE receipts ADD COLUMN tenant TEXT;",
        "ALTER TABLE receipts ADD COLUMN events BIGINT NOT NULL DEFAULT 0;",
        "CREATE INDEX receipts_reference ON receipts (reference);",
        "UPDATE dead_letters SET expires_at = created_at WHERE expires_at IS NULL;",
    ];
    for sql in expanding {
        let statements = statements(sql);
        assert!(
            breaks_previous_release(&statements[0].text, &HashSet::new()).is_none(),
            "wrongly refused: {sql}"
        );
    }
    // A unique index on a table of the same migration breaks nobody.
    let fresh = statements("CREATE TABLE t (a TEXT); CREATE UNIQUE INDEX t_a ON t (a);");
    let created = HashSet::from(["T".to_owned()]);
    assert!(breaks_previous_release(&fresh[1].text, &created).is_none());
    // A reviewed contract step passes, and only the statement under it.
    let marked = statements(
        "-- contract step: no release since 0.9 reads receipts.portal\n\
         ALTER TABLE receipts DROP COLUMN portal;\n\
         ALTER TABLE receipts DROP COLUMN service;",
    );
    assert!(marked[0].contract_step && !marked[1].contract_step);
    // A function body's `;` do not end the statement; the next one is
    // still read on its own.
    let function = statements(
        "CREATE FUNCTION f(t text) RETURNS text LANGUAGE plpgsql AS $$\n\
         BEGIN\n    RETURN t;\nEND\n$$;\n\
         ALTER TABLE receipts DROP COLUMN portal;",
    );
    assert_eq!(
        function.len(),
        2,
        "{:?}",
        function.iter().map(|s| &s.text).collect::<Vec<_>>()
    );
    assert!(breaks_previous_release(&function[1].text, &HashSet::new()).is_some());
}
