//! Terminal output: aligned tables in kubectl's style (no borders, headers in capitals, numbers
//! right-aligned), amounts with their unit, colour only on a terminal (and never with
//! `NO_COLOR`).

use aigov_api::Usd;
use comfy_table::{Cell, CellAlignment, Color, Table, presets};
use rust_decimal::{Decimal, RoundingStrategy};

/// Whether output goes to a person: a terminal and no `NO_COLOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Colour and bold allowed.
    pub colour: bool,
}

impl Style {
    /// Colour if standard output is a terminal and `NO_COLOR` is unset.
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// Never colour (files, pipes, tests).
    pub fn plain() -> Style {
        Style { colour: false }
    }

    /// A section title.
    pub fn title(&self, text: &str) -> String {
        if self.colour {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// One table: headers, then rows; columns named in `numeric` are right-aligned.
pub struct TableBuilder {
    table: Table,
    numeric: Vec<usize>,
}

impl TableBuilder {
    /// A table with these headers.
    pub fn new(style: Style, headers: &[&str]) -> TableBuilder {
        let mut table = Table::new();
        table.load_preset(presets::NOTHING);
        if style.colour {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(headers.iter().map(Cell::new));
        TableBuilder {
            table,
            numeric: Vec::new(),
        }
    }

    /// Right-aligns these columns (amounts, counts, percentages).
    pub fn numeric(mut self, columns: &[usize]) -> TableBuilder {
        self.numeric.extend_from_slice(columns);
        self
    }

    /// Adds a row of plain text.
    pub fn row<I: IntoIterator<Item = String>>(&mut self, cells: I) {
        self.table.add_row(cells.into_iter().map(Cell::new));
    }

    /// Adds a row of cells (some coloured).
    pub fn cells(&mut self, cells: Vec<Cell>) {
        self.table.add_row(cells);
    }

    /// The text, every line without trailing spaces, ending in a newline.
    pub fn render(mut self) -> String {
        let columns = self.table.column_count();
        for i in 0..columns {
            if let Some(column) = self.table.column_mut(i) {
                column.set_padding((0, 3));
                if self.numeric.contains(&i) {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        let mut out = String::new();
        for line in self.table.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A cell coloured by how worrying `phase` is.
pub fn phase_cell(phase: &str, style: Style) -> Cell {
    let cell = Cell::new(phase);
    if !style.colour {
        return cell;
    }
    match phase {
        "Warning" => cell.fg(Color::Yellow),
        "Throttled" | "Escalated" | "Downgraded" => cell.fg(Color::Red),
        _ => cell.fg(Color::Green),
    }
}

/// A cell coloured by the sign of a change (spend going up is red).
pub fn change_cell(text: String, change: Option<Decimal>, style: Style) -> Cell {
    let cell = Cell::new(text);
    match change {
        Some(c) if style.colour && c > Decimal::ZERO => cell.fg(Color::Red),
        Some(c) if style.colour && c < Decimal::ZERO => cell.fg(Color::Green),
        _ => cell,
    }
}

/// `$1,234.57`; a non-zero amount under half a cent shows as `<$0.01` rather than `$0.00`.
pub fn money(amount: Usd) -> String {
    if !amount.is_zero() && amount.round_cents().is_zero() {
        "<$0.01".to_owned()
    } else {
        amount.display_cents()
    }
}

/// `$12.40/h`.
pub fn rate(per_hour: Usd) -> String {
    format!("{}/h", money(per_hour))
}

/// A signed money difference: `+$1.20`, `-$0.40`, `$0.00`.
pub fn money_change(before: Usd, after: Usd) -> String {
    if after > before {
        format!("+{}", money(after - before))
    } else if before > after {
        format!("-{}", money(before - after))
    } else {
        money(Usd::ZERO)
    }
}

/// The change from `before` to `after` in percent, to one decimal; None when `before` is zero.
pub fn percent_change(before: Usd, after: Usd) -> Option<Decimal> {
    if before.is_zero() {
        return None;
    }
    let ratio = (after.as_decimal() - before.as_decimal()) / before.as_decimal();
    Some(
        (ratio * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero),
    )
}

/// `+12.5%`, `-3.0%`, or `new` when there was nothing before (and `–` when there is nothing
/// either side).
pub fn percent_text(before: Usd, after: Usd) -> String {
    match percent_change(before, after) {
        Some(p) if p > Decimal::ZERO => format!("+{p}%"),
        Some(p) => format!("{p}%"),
        None if after.is_zero() => "–".to_owned(),
        None => "new".to_owned(),
    }
}

/// `part` as a share of `whole`, `37%` (whole percents, `<1%` for a sliver).
pub fn share(part: Usd, whole: Usd) -> String {
    if whole.is_zero() {
        return "–".to_owned();
    }
    let p = (part.as_decimal() / whole.as_decimal() * Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    if p.is_zero() && !part.is_zero() {
        "<1%".to_owned()
    } else {
        format!("{p}%")
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    aigov_api::money::group_thousands(&n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[test]
    fn amounts_carry_their_unit_and_never_hide_a_small_spend() {
        assert_eq!(money(usd("1234.567")), "$1,234.57");
        assert_eq!(money(usd("0.0003")), "<$0.01");
        assert_eq!(money(Usd::ZERO), "$0.00");
        assert_eq!(rate(usd("12.4")), "$12.40/h");
        assert_eq!(money_change(usd("2"), usd("0.5")), "-$1.50");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn changes_are_signed_percentages_or_new() {
        assert_eq!(percent_text(usd("4"), usd("5")), "+25.0%");
        assert_eq!(percent_text(usd("4"), usd("1")), "-75.0%");
        assert_eq!(percent_text(Usd::ZERO, usd("1")), "new");
        assert_eq!(percent_text(Usd::ZERO, Usd::ZERO), "–");
        assert_eq!(share(usd("1"), usd("3")), "33%");
        assert_eq!(share(usd("0.001"), usd("3")), "<1%");
    }

    #[test]
    fn tables_align_numbers_right_and_colour_only_when_asked() {
        let mut t = TableBuilder::new(Style::plain(), &["NAME", "SPENT"]).numeric(&[1]);
        t.row(["a".to_owned(), "$1.00".to_owned()]);
        t.row(["longer".to_owned(), "$100.00".to_owned()]);
        let text = t.render();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "NAME       SPENT");
        assert_eq!(lines[1], "a          $1.00");
        assert_eq!(lines[2], "longer   $100.00");
        assert!(!text.contains('\x1b'));

        let mut t = TableBuilder::new(Style { colour: true }, &["PHASE"]);
        t.cells(vec![phase_cell("Throttled", Style { colour: true })]);
        assert!(t.render().contains('\x1b'));
    }
}
