//! The one table printer of the CLI: columns as wide as their widest cell
//! (by display width, so `Köln` lines up), two spaces between them, no
//! borders, so each line starts with its first cell and `grep`/`awk` work.
//! Show views (`parked show`, `dead-letters show`) are two-column tables
//! without a header.

use comfy_table::{CellAlignment, presets};

pub struct Table {
    inner: comfy_table::Table,
    numbers: Vec<usize>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<const N: usize>(header: [&str; N]) -> Table {
        let mut inner = comfy_table::Table::new();
        inner.load_style(presets::NOTHING).set_header(header);
        Table {
            inner,
            numbers: Vec::new(),
        }
    }

    /// A two-column table of names and values, without a header.
    pub fn fields<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> Table {
        let mut inner = comfy_table::Table::new();
        inner.load_style(presets::NOTHING);
        let mut table = Table {
            inner,
            numbers: Vec::new(),
        };
        for (name, value) in rows {
            table.row([name.to_owned(), value]);
        }
        table
    }

    /// Right-align these columns (counts), counted from 0.
    pub fn numbers(mut self, columns: &[usize]) -> Table {
        self.numbers = columns.to_vec();
        self
    }

    pub fn row<I>(&mut self, cells: I)
    where
        I: IntoIterator,
        I::Item: ToString,
    {
        self.inner
            .add_row(cells.into_iter().map(|c| c.to_string()).collect::<Vec<_>>());
    }

    pub fn print(self) {
        println!("{self}");
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut inner = self.inner.clone();
        for (i, column) in inner.column_iter_mut().enumerate() {
            column.set_padding((0, 2));
            if self.numbers.contains(&i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        f.write_str(&inner.trim_fmt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_display_width_and_lines_start_with_the_first_cell() {
        let mut t = Table::new(["DESTINATION", "PARKED", "LAST CAUSE"]).numbers(&[1]);
        t.row(["sozialamt-köln", "7", "connect"]);
        t.row(["x", "12", ""]);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "DESTINATION     PARKED  LAST CAUSE");
        assert_eq!(lines[1], "sozialamt-köln       7  connect");
        assert_eq!(lines[2], "x                   12");
    }

    #[test]
    fn fields_are_names_and_values() {
        let t = Table::fields([("submission", "abc".into()), ("held", "no".into())]);
        assert_eq!(t.to_string(), "submission  abc\nheld        no");
    }
}
