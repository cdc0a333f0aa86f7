//! `report`: write the HTML report (src/report); `completions` and `man`: documentation
//! generated from the one clap table, so that it cannot drift from the parser.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_json::json;

use super::{Cli, Context, Format, output};
use crate::date::Date;
use crate::error::Error;

fn output_error(path: &Path, error: std::io::Error) -> Error {
    Error::Output(std::io::Error::new(
        error.kind(),
        format!("{}: {error}", path.display()),
    ))
}

/// A file beside `path` to write into first, so that a failed run never leaves a half-written
/// report where the previous one was.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.html".into());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

pub fn report(context: &Context, as_of: Option<&str>, path: &Path) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let as_of = match as_of {
        Some(text) => {
            Date::parse(text).map_err(|message| Error::Usage(format!("--as-of: {message}")))?
        }
        None => Date::of_instant(context.now),
    };
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "-o: {} is a directory; give the path of the HTML file to write",
            path.display()
        )));
    }
    // Creating the file before the audit makes an unwritable path fail at once, not after a
    // long verification.
    let partial = partial_path(path);
    let file = std::fs::File::create(&partial).map_err(|error| output_error(path, error))?;
    let result = write_report(context, as_of, path, &partial, file, started);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn write_report(
    context: &Context,
    as_of: Date,
    path: &Path,
    partial: &Path,
    file: std::fs::File,
    started: std::time::Instant,
) -> Result<(), Error> {
    let bar = output::bar(context.quiet, "verifying", output::Unit::Records);
    let progress = output::mover(&bar);
    let collected = crate::report::collect(&context.ledger, as_of, context.now, progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = collected?;
    let page = crate::report::html::render(&report);
    let mut writer = std::io::BufWriter::new(file);
    writer
        .write_all(page.as_bytes())
        .and_then(|()| writer.flush())
        .and_then(|()| writer.get_ref().sync_all())
        .map_err(|error| output_error(path, error))?;
    drop(writer);
    std::fs::rename(partial, path).map_err(|error| output_error(path, error))?;

    let view = &report.state;
    let count = |f: &dyn Fn(&crate::view::CountryView) -> bool| {
        view.countries.values().filter(|country| f(country)).count()
    };
    if let crate::report::AuditOutcome::Failed(message) = &report.audit {
        // The page shows the failure; the exit code must too, as `verify`'s does.
        return Err(Error::Verification(format!(
            "{message} (the report {} was written and shows the failure)",
            path.display()
        )));
    }
    let seconds = started.elapsed().as_secs_f64();
    match context.format {
        Format::Json => output::json(&json!({
            "status": "written",
            "output": path,
            "bytes": page.len(),
            "as_of": view.as_of,
            "records": view.size,
            "root": view.root,
            "verified": report.verified(),
            "charts": {
                "allocation_countries": count(&|country| country.allocation_tpp.is_some()),
                "uveu_holders": view.entities.values().filter(|entity| entity.uveu_ratios.is_some()).count(),
                "timeline_points": report.timeline.len(),
                "lpp_consignee_years": view.entities.values().map(|entity| entity.lpp_used_tpp.len()).sum::<usize>(),
            },
            "seconds": seconds,
        })),
        Format::Table => {
            output::note(
                context.quiet,
                &format!(
                    "wrote {} ({} KiB): state as of {}, {} records, verified, in {seconds:.2} s",
                    path.display(),
                    page.len().div_ceil(1024),
                    view.as_of,
                    view.size,
                ),
            );
            Ok(())
        }
    }
}

/// Writes generated text to standard output (a closed pipe is reported as such, not a panic).
fn print_bytes(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Error::Output)
}

pub fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "chipledger", &mut script);
    print_bytes(&script)
}

pub fn man(subcommand: Option<&str>) -> Result<(), Error> {
    let mut command = Cli::command();
    // Building gives subcommands their display names (`chipledger-report`), the pages' titles.
    command.build();
    let page_of = match subcommand {
        // The NAME line already says "chipledger \-"; the about text need not repeat it.
        None => {
            let about = command.get_about().map(|about| about.to_string());
            match about
                .as_deref()
                .and_then(|about| about.strip_prefix("chipledger: "))
            {
                Some(rest) => {
                    let rest = rest.to_string();
                    command.about(rest)
                }
                None => command,
            }
        }
        Some(name) => {
            let found = command.find_subcommand(name).cloned();
            found.ok_or_else(|| {
                let names: Vec<String> = command
                    .get_subcommands()
                    .filter(|sub| !sub.is_hide_set())
                    .map(|sub| sub.get_name().to_string())
                    .collect();
                Error::Usage(format!(
                    "man: `{name}` is not a command; the commands are {}",
                    names.join(", ")
                ))
            })?
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(page_of)
        .source(format!("chipledger {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .map_err(Error::Output)?;
    print_bytes(&page)
}
