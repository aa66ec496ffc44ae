//! Column alignment as Go's `text/tabwriter` does it, which urfave/cli runs every help page
//! through (`tabwriter.NewWriter(out, 1, 8, 2, ' ', 0)`), with the `tabwriter` crate (a port
//! of Go's).
//!
//! Text is cut into cells at tabs. A cell that ends in a tab belongs to a column; the text
//! after a line's last tab does not. A *column block* is a run of consecutive lines that all
//! have a cell in that column; every cell of the block is padded with spaces to the widest
//! cell plus `padding` (at least `min_width`).

use std::io::Write as _;

/// Aligns `text` with Go tabwriter semantics.
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    // Go pads a cell to max(minwidth, width + padding), the crate to
    // max(minwidth, width) + padding: the same once minwidth is taken down by padding.
    let mut tw = tabwriter::TabWriter::new(Vec::with_capacity(text.len() + 64))
        .minwidth(min_width.saturating_sub(padding))
        .padding(padding);
    // Writing to a Vec cannot fail.
    let _ = tw.write_all(text.as_bytes());
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn aligns_a_block() {
        assert_eq!(
            align("   --a value\tx\n   --help\ty\n", 1, 2),
            "   --a value  x\n   --help     y\n"
        );
    }

    #[test]
    fn a_line_without_tabs_ends_a_block() {
        assert_eq!(
            align("a\tb\nno tabs\nlonger\tc\n", 1, 2),
            "a  b\nno tabs\nlonger  c\n"
        );
    }

    #[test]
    fn nested_columns() {
        // Second line has an empty second cell: it forms its own one-line block of width 2.
        assert_eq!(
            align("   x - \tfirst\n       \t\tsecond\n", 1, 2),
            "   x -   first\n           second\n"
        );
    }

    #[test]
    fn text_without_tabs_is_unchanged() {
        let t = "NAME:\n   prog - thing\n\nUSAGE:\n   prog\n";
        assert_eq!(align(t, 1, 2), t);
    }
}
