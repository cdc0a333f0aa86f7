//! Commands that read: log, show, state, export, verify.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::output::{self, Style, Table, paint};
use super::{Context, Format};
use crate::audit;
use crate::codec::{self, Record, Subject};
use crate::country::Country;
use crate::date::{Date, Instant};
use crate::error::Error;
use crate::ledger::Reader;
use crate::name::Id;
use crate::view::{self, Filter, StateView};

pub struct LogFilter {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub id: Option<String>,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub event_type: Option<String>,
}

fn parse_id(flag: &str, text: &str) -> Result<Id, Error> {
    Id::parse(text).map_err(|message| Error::Usage(format!("{flag}: `{text}` {message}")))
}

fn parse_country(flag: &str, text: &str) -> Result<Country, Error> {
    Country::parse(text).map_err(|message| Error::Usage(format!("{flag}: {message}")))
}

fn parse_date(flag: &str, text: &str) -> Result<Date, Error> {
    Date::parse(text).map_err(|message| Error::Usage(format!("{flag}: {message}")))
}

/// One line summarizing a record.
pub fn summary(record: &Record, h100_tpp: u64) -> String {
    use codec::Body;
    let detail = match &record.event.body {
        Body::Genesis(genesis) => format!(
            "ruleset {} v{}, origin {}",
            genesis.ruleset.name, genesis.ruleset.version, genesis.origin
        ),
        Body::Entity(entity) => format!(
            "{} \"{}\" in {}{}",
            entity.entity,
            entity.name,
            entity.hq,
            entity
                .parent
                .as_ref()
                .map(|p| format!(", parent {p}"))
                .unwrap_or_default()
        ),
        Body::ChipModel(chip) => format!(
            "{} at {} TPP{}",
            chip.chip,
            output::tpp(chip.tpp),
            if chip.controlled { ", controlled" } else { "" }
        ),
        Body::TierChange(change) => {
            format!("{} becomes Tier {}", change.country, change.tier.number())
        }
        Body::AllocationChange(change) => format!(
            "{} allocation {} TPP",
            change.country,
            output::tpp(change.allocation_tpp)
        ),
        Body::VeuGrant(grant) => format!(
            "{} to {} ({})",
            grant.veu,
            grant.entity,
            match grant.scope {
                codec::Scope::Universal => "universal".to_string(),
                codec::Scope::National(country) => format!("national, {country}"),
            }
        ),
        Body::VeuRevoke(revoke) => format!("{} revoked", revoke.veu),
        Body::AiaCertification(certification) => format!("{} certified", certification.entity),
        Body::Inventory(holding) | Body::Decommission(holding) => format!(
            "{} {} {} in {}",
            holding.entity,
            output::tpp(holding.quantity),
            holding.chip,
            holding.country
        ),
        Body::Shipment(shipment) => format!(
            "{} → {} in {}: {} {}",
            shipment.exporter,
            shipment.consignee,
            shipment.country,
            output::tpp(shipment.quantity),
            shipment.chip
        ),
        Body::Transfer(transfer) => format!(
            "{} {}→{}{}: {} {}",
            transfer.entity,
            transfer.from_country,
            transfer.to_country,
            transfer
                .to_entity
                .as_ref()
                .map(|to| format!(" to {to}"))
                .unwrap_or_default(),
            output::tpp(transfer.quantity),
            transfer.chip
        ),
        Body::WeightsHosting(hosting) => format!(
            "{} hosts {} in {}",
            hosting.entity, hosting.model, hosting.country
        ),
        Body::Void(void) => format!("voids {} ({})", void.target, void.reason),
        Body::Commitment(commitment) => format!(
            "commits {} subjects at size {}",
            commitment.subject_count, commitment.size
        ),
    };
    let outcome = super::write::outcome_text(record, h100_tpp);
    if outcome.is_empty() {
        detail
    } else {
        format!("{detail}; {outcome}")
    }
}

pub fn log(context: &Context, filter: LogFilter) -> Result<(), Error> {
    let reader = Reader::open_until_exit(&context.ledger)?;
    let h100_tpp = reader.params().h100_tpp();
    let id = filter
        .id
        .as_deref()
        .map(|id| parse_id("--id", id))
        .transpose()?;
    let entity = filter
        .entity
        .as_deref()
        .map(|e| parse_id("--entity", e))
        .transpose()?;
    let country = filter
        .country
        .as_deref()
        .map(|c| parse_country("--country", c))
        .transpose()?;
    if let Some(kind) = &filter.event_type {
        let known = codec::INPUT_TYPES.contains(&kind.as_str())
            || kind == "genesis"
            || kind == "commitment";
        if !known {
            return Err(Error::Usage(format!(
                "--type: `{kind}` is not an event type; the types are {}, genesis, commitment",
                codec::INPUT_TYPES.join(", ")
            )));
        }
    }
    let from = filter.from.unwrap_or(0);
    let to = filter.to.unwrap_or(reader.size()).min(reader.size());
    let mut table = Table::new(
        &["seq", "effective", "type", "id", "what"],
        &[true, false, false, false, false],
    );
    let mut stdout = std::io::stdout().lock();
    reader.for_each(from, to, |_, record| {
        if id.as_ref().is_some_and(|id| *id != record.event.id) {
            return Ok(());
        }
        if filter
            .event_type
            .as_deref()
            .is_some_and(|kind| kind != record.event.body.type_name())
        {
            return Ok(());
        }
        if entity.is_some() || country.is_some() {
            let subjects = record.subjects();
            let wanted = entity
                .as_ref()
                .is_none_or(|entity| subjects.contains(&Subject::Entity(entity.clone())))
                && country.is_none_or(|country| subjects.contains(&Subject::Country(country)));
            if !wanted {
                return Ok(());
            }
        }
        match context.format {
            Format::Json => {
                writeln!(stdout, "{}", view::record_json(record)).map_err(Error::Output)
            }
            Format::Table => {
                table.row(vec![
                    record.seq.to_string(),
                    record.effective.to_string(),
                    record.event.body.type_name().to_string(),
                    record.event.id.to_string(),
                    summary(record, h100_tpp),
                ]);
                Ok(())
            }
        }
    })?;
    if context.format == Format::Table {
        write!(stdout, "{}", table.render(output::stdout_colour())).map_err(Error::Output)?;
    }
    Ok(())
}

/// Finds a record by event id, or by sequence number.
pub fn find_record(reader: &Reader, target: &str) -> Result<(Vec<u8>, Record), Error> {
    if let Ok(id) = Id::parse(target) {
        if let Some(seq) = reader.find_id(&id)? {
            return reader.record_with_bytes(seq);
        }
    }
    match target.parse::<u64>() {
        Ok(seq) => reader.record_with_bytes(seq),
        Err(_) => Err(Error::Usage(format!(
            "no event with id `{target}` in the ledger"
        ))),
    }
}

pub fn show(context: &Context, target: &str) -> Result<(), Error> {
    let reader = Reader::open_until_exit(&context.ledger)?;
    let (bytes, record) = find_record(&reader, target)?;
    let chain = view::hex(&codec::chain_hash(&bytes));
    let leaf = view::hex(&codec::leaf_hash(&bytes));
    match context.format {
        Format::Json => {
            let mut value = view::record_json(&record);
            let object = value.as_object_mut().expect("an object");
            object.insert("chain".into(), json!(chain));
            object.insert("leaf_hash".into(), json!(leaf));
            object.insert("bytes".into(), json!(bytes.len()));
            object.insert("record".into(), json!(view::base64(&bytes)));
            output::json_pretty(&value)
        }
        Format::Table => {
            let h100_tpp = reader.params().h100_tpp();
            let colour = output::stdout_colour();
            output::line(&paint(
                colour,
                Style::Bold,
                &format!(
                    "record {} — {} {}",
                    record.seq,
                    record.event.body.type_name(),
                    record.event.id
                ),
            ))?;
            output::line(&format!("effective:    {}", record.effective))?;
            output::line(&format!("recorded at:  {}", record.recorded_at))?;
            output::line(&format!("what:         {}", summary(&record, h100_tpp)))?;
            output::line(&format!(
                "event:        {}",
                view::event_json(record.effective, &record.event)
            ))?;
            output::line(&format!(
                "outcome:      {}",
                view::outcome_json(&record.outcome)
            ))?;
            for (subject, previous) in record.subjects().iter().zip(&record.links) {
                output::line(&format!(
                    "link:         {subject} ← {}",
                    previous
                        .map(|seq| format!("record {seq}"))
                        .unwrap_or_else(|| "first record".into())
                ))?;
            }
            output::line(&format!("prev chain:   {}", view::hex(&record.prev_chain)))?;
            output::line(&format!("chain hash:   {chain}"))?;
            output::line(&format!(
                "leaf hash:    {leaf} (SHA-256 of 0x00 ‖ {} record bytes)",
                bytes.len()
            ))
        }
    }
}

/// Resolves `--known-at`: a log size, or a date or time.
fn known_size(reader: &Reader, known_at: Option<&str>) -> Result<u64, Error> {
    match known_at {
        None => Ok(reader.size()),
        Some(text) => match text.parse::<u64>() {
            Ok(size) if size >= 1 && size <= reader.size() => Ok(size),
            Ok(size) => Err(Error::Usage(format!(
                "--known-at: the log has {} records; a size must be from 1 to that (got {size})",
                reader.size()
            ))),
            Err(_) => {
                let instant = Instant::parse(text)
                    .map_err(|message| Error::Usage(format!("--known-at: {message}")))?;
                let size = reader.size_known_at(instant)?;
                if size == 0 {
                    return Err(Error::Usage(format!(
                        "--known-at: the ledger did not exist at {text}"
                    )));
                }
                Ok(size)
            }
        },
    }
}

pub struct StateQuery<'a> {
    pub as_of: Option<&'a str>,
    pub known_at: Option<&'a str>,
    pub entity: Option<&'a str>,
    pub country: Option<&'a str>,
    pub checkpoint: Option<&'a Path>,
}

pub fn state(context: &Context, query: StateQuery<'_>) -> Result<(), Error> {
    let mut timings = output::Timings::start(context.timings);
    let reader = Reader::open_until_exit(&context.ledger)?;
    timings.step("open");
    let date = match query.as_of {
        Some(text) => parse_date("--as-of", text)?,
        None => Date::of_instant(context.now),
    };
    let size = match query.checkpoint {
        // The answer as known at the checkpoint: its size, and only if the ledger still has its root.
        Some(path) => {
            let vkey = reader.verifier_key()?;
            let records = reader.size();
            let roots = |size: u64| reader.root_at(size).map(Some);
            super::proof::check_against(path, &vkey, &roots, records)?.size
        }
        None => known_size(&reader, query.known_at)?,
    };
    let filter = Filter {
        entity: query.entity.map(|e| parse_id("--entity", e)).transpose()?,
        country: query
            .country
            .map(|c| parse_country("--country", c))
            .transpose()?,
        holdings: context.format.holdings(),
    };
    let state = reader.state_at(date, size)?;
    timings.step("state");
    let root = reader.root_at(size)?;
    let view = view::state_view(&state, date, size, root, &filter);
    timings.step("view");
    let printed = match context.format {
        Format::Json => output::json(&view),
        Format::Table => print_state_view(&view),
    };
    timings.step("print");
    timings.report();
    // The process ends right after: freeing the state and its view one allocation at a time
    // took about a tenth of a cold `state --as-of` (tools/bench/PROFILE.md, goal 4).
    std::mem::forget((state, view));
    printed
}

pub fn print_state_view(view: &StateView) -> Result<(), Error> {
    let colour = output::stdout_colour();
    let h100 = |tpp: u64| output::h100(tpp, view.h100_tpp);
    let mut text = String::new();
    text.push_str(&paint(
        colour,
        Style::Bold,
        &format!(
            "State as of {} ({} records, root {})",
            view.as_of, view.size, view.root
        ),
    ));
    text.push_str("\n\n");
    let mut countries = Table::new(
        &[
            "country",
            "tier",
            "allocation TPP",
            "used TPP",
            "remaining TPP",
            "remaining H100",
            "installed TPP",
            "installed H100",
        ],
        &[false, true, true, true, true, true, true, true],
    );
    for (code, country) in &view.countries {
        let dash = || "—".to_string();
        countries.row(vec![
            code.to_string(),
            country.tier.to_string(),
            country.allocation_tpp.map(output::tpp).unwrap_or_else(dash),
            output::tpp(country.allocation_used_tpp),
            country
                .allocation_remaining_tpp
                .map(output::tpp)
                .unwrap_or_else(dash),
            country
                .allocation_remaining_tpp
                .map(h100)
                .unwrap_or_else(dash),
            output::tpp(country.installed_tpp),
            h100(country.installed_tpp),
        ]);
    }
    text.push_str(&paint(colour, Style::Bold, "Countries"));
    text.push('\n');
    text.push_str(if countries.is_empty() { "(none)\n" } else { "" });
    if !countries.is_empty() {
        text.push_str(&countries.render(false));
    }
    let mut entities = Table::new(
        &[
            "entity",
            "hq",
            "tier",
            "controlled TPP",
            "H100",
            "where (TPP)",
            "LPP used",
            "AIA received",
            "VEUs",
        ],
        &[false, false, true, true, true, false, false, true, false],
    );
    for (id, entity) in &view.entities {
        // Written into one string each: a state's table has thousands of these cells.
        let mut places = String::new();
        for (country, amount) in &entity.by_country_tpp {
            let separator = if places.is_empty() { "" } else { ", " };
            let _ = write!(places, "{separator}{country} {}", output::tpp(*amount));
        }
        let mut lpp = String::new();
        for (year, used) in &entity.lpp_used_tpp {
            let separator = if lpp.is_empty() { "" } else { ", " };
            let _ = write!(lpp, "{separator}{year}: {}", output::tpp(*used));
        }
        entities.row(vec![
            id.to_string(),
            entity.hq.to_string(),
            entity.hq_tier.to_string(),
            output::tpp(entity.total_tpp),
            h100(entity.total_tpp),
            places,
            lpp,
            output::tpp(entity.aia_received_tpp),
            entity
                .veus
                .iter()
                .map(Id::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    text.push('\n');
    text.push_str(&paint(colour, Style::Bold, "Entities"));
    text.push('\n');
    text.push_str(if entities.is_empty() { "(none)\n" } else { "" });
    if !entities.is_empty() {
        text.push_str(&entities.render(false));
    }
    let mut ratios = Table::new(
        &[
            "UVEU holder",
            "Tier 1 share",
            "minimum",
            "largest other",
            "maximum",
            "home share",
            "minimum",
        ],
        &[false, true, true, false, true, true, true],
    );
    let percent = |bp: u64| format!("{}.{:02}%", bp / 100, bp % 100);
    for (id, entity) in &view.entities {
        if let Some(ratio) = &entity.uveu_ratios {
            ratios.row(vec![
                id.to_string(),
                percent(ratio.tier1_share_bp),
                percent(ratio.tier1_share_min_bp),
                match ratio.largest_other_country {
                    Some(country) => format!("{country} {}", percent(ratio.largest_other_share_bp)),
                    None => "—".into(),
                },
                percent(ratio.country_share_max_bp),
                ratio
                    .home_share_bp
                    .map(percent)
                    .unwrap_or_else(|| "—".into()),
                ratio
                    .home_share_min_bp
                    .map(percent)
                    .unwrap_or_else(|| "—".into()),
            ]);
        }
    }
    if !ratios.is_empty() {
        text.push('\n');
        text.push_str(&paint(colour, Style::Bold, "Universal VEU ratios"));
        text.push('\n');
        text.push_str(&ratios.render(false));
    }
    let mut veus = Table::new(
        &["VEU", "holder", "scope", "granted", "revoked", "active"],
        &[false; 6],
    );
    for (id, veu) in &view.veus {
        veus.row(vec![
            id.to_string(),
            veu.entity.to_string(),
            match veu.country {
                Some(country) => format!("national {country}"),
                None => veu.scope.to_string(),
            },
            veu.granted.to_string(),
            veu.revoked.map(|date| date.to_string()).unwrap_or_default(),
            if veu.active {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    if !veus.is_empty() {
        text.push('\n');
        text.push_str(&paint(colour, Style::Bold, "VEUs"));
        text.push('\n');
        text.push_str(&veus.render(false));
    }
    output::text(&text)
}

pub fn export(context: &Context, to: Option<u64>, output_path: Option<&Path>) -> Result<(), Error> {
    let reader = Reader::open_until_exit(&context.ledger)?;
    let end = to.unwrap_or(reader.size());
    if end == 0 || end > reader.size() {
        return Err(Error::Usage(format!(
            "--to: the log has {} records; export from 1 to that many",
            reader.size()
        )));
    }
    let mut sink: Box<dyn Write> = match output_path {
        Some(path) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path).map_err(|error| {
                Error::Output(std::io::Error::new(
                    error.kind(),
                    format!("{}: {error}", path.display()),
                ))
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    // On standard output the export itself is the output: a bar only beside a file.
    let bar =
        output_path.and_then(|_| output::bar(context.quiet, "exporting", output::Unit::Records));
    if let Some(bar) = &bar {
        bar.set_length(end);
    }
    reader.for_each(0, end, |bytes, record| {
        serde_json::to_writer(&mut sink, &view::export_line(record, bytes))
            .map_err(|error| Error::Output(error.into()))?;
        sink.write_all(b"\n").map_err(Error::Output)?;
        if let Some(bar) = &bar {
            if record.seq % 4096 == 0 {
                bar.set_position(record.seq);
            }
        }
        Ok(())
    })?;
    sink.flush().map_err(Error::Output)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(path) = output_path {
        let root = view::base64(&reader.root_at(end)?);
        if context.format == Format::Json {
            return output::json(&serde_json::json!({
                "status": "exported",
                "records": end,
                "file": path,
                "root": root,
            }));
        }
        output::note(
            context.quiet,
            &format!(
                "exported records 0 to {} to {} (root {root})",
                end - 1,
                path.display(),
            ),
        );
    }
    Ok(())
}

pub fn verify(
    context: &Context,
    export: Option<&Path>,
    checkpoint: Option<&Path>,
    vkey: Option<&str>,
) -> Result<(), Error> {
    let vkey = match (checkpoint, vkey) {
        (None, _) => None,
        (Some(_), Some(vkey)) => Some(crate::proof::load_vkey(vkey)?),
        (Some(_), None) => {
            let path = crate::ledger::Paths::new(&context.ledger).verifier_key();
            Some(crate::proof::load_vkey(path.to_str().unwrap_or(""))?)
        }
    };
    let want_root_at = match (checkpoint, &vkey) {
        (Some(path), Some(vkey)) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                Error::Usage(format!("cannot read {}: {error}", path.display()))
            })?;
            Some(crate::proof::checkpoint::verify(&text, vkey)?.size)
        }
        _ => None,
    };
    let bar = output::bar(context.quiet, "verifying", output::Unit::Records);
    let progress = output::mover(&bar);
    let result = match export {
        Some(path) => audit::verify_export(path, want_root_at, progress),
        None => {
            let paths = crate::ledger::Paths::new(&context.ledger);
            audit::verify_store(&paths.store(), want_root_at, progress)
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let audit = result?;
    if let (Some(path), Some(vkey)) = (checkpoint, &vkey) {
        let root_at = audit.root_at;
        let roots = move |_: u64| Ok(root_at.map(|(_, root)| root));
        let checked = super::proof::check_against(path, vkey, &roots, audit.records)?;
        output::note(
            context.quiet || context.format == Format::Json,
            &format!(
                "the first {} records match the signed checkpoint (root {})",
                checked.size,
                view::base64(&checked.root)
            ),
        );
    }
    match context.format {
        Format::Json => output::json(&json!({"status": "verified", "audit": audit})),
        Format::Table => {
            let colour = output::stdout_colour();
            output::line(&format!(
                "{} {} records: canonical bytes, chain hashes, back-links, Merkle root {}, every rule replayed ({} late records, {} voids){}",
                paint(colour, Style::Green, "verified"),
                audit.records,
                audit.root,
                audit.late_records,
                audit.voids,
                if export.is_some() {
                    ""
                } else {
                    "; tiles, head, indexes and snapshots match"
                }
            ))?;
            output::line(&format!("took {:.2} s", audit.seconds))
        }
    }
}
