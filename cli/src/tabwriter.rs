//! Column alignment in the manner of Go's `text/tabwriter`, which urfave/cli runs every help
//! page through (`tabwriter.NewWriter(out, 1, 8, 2, ' ', 0)`).
//!
//! Text is cut into cells at tabs. A cell that ends in a tab belongs to a column; the text
//! after a line's last tab does not. A *column block* is a run of consecutive lines that all
//! have a cell in that column; every cell of the block is padded with spaces to the widest
//! cell plus `padding` (at least `min_width`). Blocks are worked out left to right, so a
//! column's blocks are found within the lines of one block of the column before.

/// Aligns `text` with Go tabwriter semantics (widths counted in characters).
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut aligner = Aligner {
        lines: &lines,
        min_width,
        padding,
        widths: Vec::new(),
        out: &mut out,
    };
    aligner.format(0, lines.len());
    out
}

struct Aligner<'a> {
    lines: &'a [Vec<&'a str>],
    min_width: usize,
    padding: usize,
    /// Widths of the columns to the left of the one being worked out.
    widths: Vec<usize>,
    out: &'a mut String,
}

impl Aligner<'_> {
    /// Number of tab-terminated cells of line `i`.
    fn cells(&self, i: usize) -> usize {
        self.lines[i].len() - 1
    }

    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column >= self.cells(this) {
                this += 1;
                continue;
            }
            // Lines before the block have no cell in this column: print them as they are.
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column < self.cells(this) {
                let w = self.lines[this][column].chars().count() + self.padding;
                width = width.max(w);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            let line = &self.lines[i];
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if j < line.len() - 1 {
                    if let Some(&w) = self.widths.get(j) {
                        let n = w.saturating_sub(cell.chars().count());
                        self.out.push_str(&" ".repeat(n));
                    }
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
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
