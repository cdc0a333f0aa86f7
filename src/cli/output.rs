//! Writing answers: JSON, aligned tables, notes on standard error, colour only on a terminal.

use std::io::{IsTerminal, Write};

use crate::error::Error;
use crate::rules::refusal::{grouped, h100_equivalents};

/// The wall time of each step of a command, for `--timings`: each [`Timings::step`] ends the
/// step that began at the previous one (or when the timer started). Reported on standard error,
/// so the answer on standard output is the same with or without it.
pub struct Timings {
    enabled: bool,
    last: std::time::Instant,
    steps: Vec<(&'static str, std::time::Duration)>,
}

impl Timings {
    pub fn start(enabled: bool) -> Timings {
        Timings {
            enabled,
            last: std::time::Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Ends the step called `name`.
    pub fn step(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }

    /// Adds a time measured elsewhere (a part of a step, such as the waits inside it).
    pub fn part(&mut self, name: &'static str, time: std::time::Duration) {
        self.steps.push((name, time));
    }

    /// `timings: open 26.7 ms, state 12.4 ms`, if `--timings` was given.
    pub fn report(&self) {
        if !self.enabled {
            return;
        }
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(name, time)| format!("{name} {:.1} ms", time.as_secs_f64() * 1000.0))
            .collect();
        eprintln!("timings: {}", steps.join(", "));
    }
}

/// Prints a JSON value on one line of standard output.
pub fn json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string(value).expect("views serialize");
    line(&text)
}

/// Prints pretty JSON on standard output.
pub fn json_pretty(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).expect("views serialize");
    line(&text)
}

/// Prints one line on standard output.
pub fn line(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(Error::Output)
}

/// Prints `text` as it is on standard output. Never `print!`: a reader that closes the pipe
/// early (`| head`) must be an `Error::Output`, which `main` ends quietly on, not a panic.
pub fn text(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// Prints a note on standard error unless quiet.
pub fn note(quiet: bool, text: &str) {
    if !quiet {
        eprintln!("{text}");
    }
}

/// Whether colour may be used on a stream: a terminal, and `NO_COLOR` unset.
pub fn colour(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

pub fn stdout_colour() -> bool {
    colour(std::io::stdout().is_terminal())
}

pub fn stderr_colour() -> bool {
    colour(std::io::stderr().is_terminal())
}

/// Wraps text in an ANSI style when `enabled`.
pub fn paint(enabled: bool, style: Style, text: &str) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match style {
        Style::Bold => "1",
        Style::Red => "31",
        Style::Green => "32",
        Style::Yellow => "33",
        Style::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[derive(Clone, Copy)]
pub enum Style {
    Bold,
    Red,
    Green,
    Yellow,
    Dim,
}

/// "790,000,000".
pub fn tpp(value: u64) -> String {
    grouped(u128::from(value))
}

/// "49,902".
pub fn h100(value: u64, h100_tpp: u64) -> String {
    grouped(u128::from(h100_equivalents(value, h100_tpp)))
}

/// A table with a header row; columns aligned, numbers right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    pub fn new(header: &[&str], right_aligned: &[bool]) -> Table {
        Table {
            header: header.iter().map(|name| name.to_string()).collect(),
            rows: Vec::new(),
            right: right_aligned.to_vec(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self, bold_header: bool) -> String {
        let columns = self.header.len();
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(width_of(cell));
            }
        }
        // Rows are written straight into the output: a table of a state has thousands.
        let write_row = |out: &mut String, row: &[String]| {
            let start = out.len();
            for (index, cell) in row.iter().enumerate().take(columns) {
                let pad = widths[index] - width_of(cell);
                if index > 0 {
                    out.push_str("  ");
                }
                if self.right.get(index).copied().unwrap_or(false) {
                    push_spaces(out, pad);
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if index + 1 < columns {
                        push_spaces(out, pad);
                    }
                }
            }
            let kept = out[start..].trim_end().len();
            out.truncate(start + kept);
        };
        let mut header = String::new();
        write_row(&mut header, &self.header);
        let mut out = paint(bold_header, Style::Bold, &header);
        // Room for every row at its full width, in one allocation rather than doublings (an
        // estimate: trailing spaces are trimmed, and a character may take several bytes).
        let row_bytes = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1) + 1;
        out.reserve(row_bytes * (self.rows.len() + 1));
        out.push('\n');
        for row in &self.rows {
            write_row(&mut out, row);
            out.push('\n');
        }
        out
    }
}

/// A cell's width in characters. Most cells are ASCII, a byte a character: counting the
/// characters of every cell, twice, was a quarter of rendering a state's table.
fn width_of(cell: &str) -> usize {
    if cell.is_ascii() {
        cell.len()
    } else {
        cell.chars().count()
    }
}

/// Appends `count` spaces a slice at a time: pushing them one `char` at a time was an eighth of
/// printing the 1M-event ledger's state (tools/bench/PROFILE.md, goal 4).
fn push_spaces(out: &mut String, mut count: usize) {
    const SPACES: &str = "                                ";
    while count > 0 {
        let run = count.min(SPACES.len());
        out.push_str(&SPACES[..run]);
        count -= run;
    }
}

/// What a progress bar counts.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Bytes of an input file.
    Bytes,
    /// Records of a log.
    Records,
}

/// A progress bar on standard error, only when it is a terminal and not `--quiet` (so never in
/// a pipe, a log file or a test). `set_length` may come later, when the total is known.
pub fn bar(quiet: bool, message: &str, unit: Unit) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let template = match unit {
        Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        Unit::Records => "{msg} [{bar:30}] {human_pos}/{human_len} records ({per_sec}, {eta} left)",
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    Some(bar)
}

/// A spinner with the elapsed time, for work whose total is not known in advance.
pub fn spinner(quiet: bool, message: &str) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("valid template"),
    );
    spinner.set_message(message.to_string());
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(spinner)
}

/// A `(done, total)` callback that moves an optional bar.
pub fn mover(bar: &Option<indicatif::ProgressBar>) -> impl Fn(u64, u64) + '_ {
    move |done, total| {
        if let Some(bar) = bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }
}
