//! JSON views of records, refusals and state: the shapes of blueprint section 2 and of the
//! export format (FORMAT.md, "Export"). A record's view is a pure function of its bytes, which
//! is what lets `verify --export` catch an edited readable field.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::codec::{Body, ChipsOutcome, Event, Outcome, Record, Ruleset, Scope, Subject, Tier};
use crate::country::Country;
use crate::date::Date;
use crate::name::Id;
use crate::rules::refusal::h100_equivalents;
use crate::rules::state::EntityCounters;
use crate::rules::{Facts, Refusal, State};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn from_base64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|error| format!("not valid base64: {error}"))
}

fn scope_fields(scope: Scope, fields: &mut Map<String, Value>) {
    match scope {
        Scope::Universal => {
            fields.insert("scope".into(), json!("universal"));
        }
        Scope::National(country) => {
            fields.insert("scope".into(), json!("national"));
            fields.insert("country".into(), json!(country));
        }
    }
}

/// An event in its input form: the object a caller would submit.
pub fn event_json(effective: Date, event: &Event) -> Value {
    let mut fields = Map::new();
    fields.insert("type".into(), json!(event.body.type_name()));
    fields.insert("id".into(), json!(event.id));
    fields.insert("effective".into(), json!(effective));
    let mut put = |name: &str, value: Value| {
        fields.insert(name.to_string(), value);
    };
    match &event.body {
        Body::Genesis(genesis) => {
            put("origin", json!(genesis.origin));
            put("ruleset", ruleset_json(&genesis.ruleset));
        }
        Body::Entity(entity) => {
            put("entity", json!(entity.entity));
            put("name", json!(entity.name));
            put("hq", json!(entity.hq));
            if let Some(parent) = &entity.parent {
                put("parent", json!(parent));
            }
        }
        Body::ChipModel(chip) => {
            put("chip", json!(chip.chip));
            put("tpp", json!(chip.tpp));
            put("controlled", json!(chip.controlled));
        }
        Body::TierChange(change) => {
            put("country", json!(change.country));
            put("tier", json!(change.tier.number()));
        }
        Body::AllocationChange(change) => {
            put("country", json!(change.country));
            put("allocation_tpp", json!(change.allocation_tpp));
        }
        Body::VeuGrant(grant) => {
            put("veu", json!(grant.veu));
            put("entity", json!(grant.entity));
            let mut scope = Map::new();
            scope_fields(grant.scope, &mut scope);
            for (name, value) in scope {
                put(&name, value);
            }
        }
        Body::VeuRevoke(revoke) => put("veu", json!(revoke.veu)),
        Body::AiaCertification(certification) => put("entity", json!(certification.entity)),
        Body::Inventory(holding) | Body::Decommission(holding) => {
            put("entity", json!(holding.entity));
            put("chip", json!(holding.chip));
            put("quantity", json!(holding.quantity));
            put("country", json!(holding.country));
        }
        Body::Shipment(shipment) => {
            put("exporter", json!(shipment.exporter));
            put("consignee", json!(shipment.consignee));
            put("country", json!(shipment.country));
            put("chip", json!(shipment.chip));
            put("quantity", json!(shipment.quantity));
            if let Some(basis) = shipment.basis {
                put("basis", json!(basis.name()));
            }
        }
        Body::Transfer(transfer) => {
            put("entity", json!(transfer.entity));
            put("from_country", json!(transfer.from_country));
            put("to_country", json!(transfer.to_country));
            if let Some(to_entity) = &transfer.to_entity {
                put("to_entity", json!(to_entity));
            }
            put("chip", json!(transfer.chip));
            put("quantity", json!(transfer.quantity));
            if let Some(basis) = transfer.basis {
                put("basis", json!(basis.name()));
            }
        }
        Body::WeightsHosting(hosting) => {
            put("entity", json!(hosting.entity));
            put("model", json!(hosting.model));
            put("training_ops", json!(hosting.training_ops.to_string()));
            put("open_weights", json!(hosting.open_weights));
            put("country", json!(hosting.country));
            put("secured", json!(hosting.secured));
        }
        Body::Void(void) => {
            put("target", json!(void.target));
            put("reason", json!(void.reason));
        }
        Body::Commitment(commitment) => {
            put("size", json!(commitment.size));
            put("subject_count", json!(commitment.subject_count));
            put("subjects_root", json!(base64(&commitment.subjects_root)));
        }
    }
    Value::Object(fields)
}

fn ruleset_json(ruleset: &Ruleset) -> Value {
    json!({
        "name": ruleset.name,
        "version": ruleset.version,
        "window_start": ruleset.window_start,
        "window_end": ruleset.window_end,
        "tier_one": ruleset.tier_one,
        "tier_three": ruleset.tier_three,
        "tier_changes": ruleset.tier_changes.iter().map(|change| json!({
            "effective": change.effective, "country": change.country, "tier": change.tier.number()
        })).collect::<Vec<_>>(),
        "chips": ruleset.chips.iter().map(|chip| json!({
            "chip": chip.chip, "tpp": chip.tpp, "controlled": chip.controlled
        })).collect::<Vec<_>>(),
        "default_allocation_tpp": ruleset.default_allocation_tpp,
        "lpp_limit_tpp": ruleset.lpp_limit_tpp,
        "aia_threshold_tpp": ruleset.aia_threshold_tpp,
        "uveu_tier_one_share_min": [ruleset.uveu_tier_one_share_min.numerator, ruleset.uveu_tier_one_share_min.denominator],
        "uveu_country_share_max": [ruleset.uveu_country_share_max.numerator, ruleset.uveu_country_share_max.denominator],
        "uveu_home_share_min": [ruleset.uveu_home_share_min.numerator, ruleset.uveu_home_share_min.denominator],
        "uveu_home_country": ruleset.uveu_home_country,
        "nveu_caps": ruleset.nveu_caps.iter().map(|cap| json!({"year": cap.year, "cap_tpp": cap.cap_tpp})).collect::<Vec<_>>(),
        "weights_threshold_ops": ruleset.weights_threshold_ops.to_string(),
        "h100_tpp": ruleset.h100_tpp,
    })
}

fn chips_json(chips: &ChipsOutcome) -> Value {
    json!({
        "basis": chips.basis.name(),
        "unit_tpp": chips.unit_tpp,
        "amount_tpp": chips.amount_tpp,
        "controlled": chips.controlled,
        "counts_allocation": chips.counts_allocation,
    })
}

pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::None => json!({}),
        Outcome::Chips(chips) => chips_json(chips),
        Outcome::Weights(weights) => json!({
            "controlled": weights.controlled,
            "authority": weights.authority.name(),
        }),
        Outcome::Void(void) => json!({
            "target_seq": void.target_seq,
            "target_id": void.target_event.id,
            "target_effective": void.target_effective,
            "target_type": void.target_event.body.type_name(),
            "target_outcome": outcome_json(&void.target_outcome),
        }),
        Outcome::Revoke(revoke) => {
            let mut fields = Map::new();
            fields.insert("holder".into(), json!(revoke.holder));
            scope_fields(revoke.scope, &mut fields);
            Value::Object(fields)
        }
    }
}

/// One back-link of a record.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct LinkView {
    /// `entity:<id>`, `country:<code>`, `veu:<id>`, `chip:<model>` or `tiers`.
    pub subject: String,
    /// The subject's previous record, or null for its first.
    pub previous: Option<u64>,
}

/// Everything a record says, readable: the shape of `log --format json`, `show --format json`
/// and, with `chain` and `record`, of each export line.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
#[schemars(title = "chipledger export line")]
pub struct ExportLine {
    pub seq: u64,
    pub recorded_at: crate::date::Instant,
    pub effective: Date,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Id,
    /// The event in its input form (input-event.schema.json; also `genesis` and `commitment`,
    /// the ledger's own records).
    pub event: Value,
    /// What the rules resolved (FORMAT.md section 2.2): `basis`, `unit_tpp`, `amount_tpp`,
    /// `controlled`, `counts_allocation` for chips; `controlled`, `authority` for weights; the
    /// target for a void; the holder for a revoke; empty otherwise.
    pub outcome: Value,
    pub links: Vec<LinkView>,
    /// Hex of the previous record's chain hash.
    pub prev_chain: String,
    /// Hex of this record's chain hash (export lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// base64 of the record's canonical bytes, the authoritative part (export lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

fn record_view(record: &Record) -> ExportLine {
    ExportLine {
        seq: record.seq,
        recorded_at: record.recorded_at,
        effective: record.effective,
        kind: record.event.body.type_name().to_string(),
        id: record.event.id.clone(),
        event: event_json(record.effective, &record.event),
        outcome: outcome_json(&record.outcome),
        links: record
            .subjects()
            .iter()
            .zip(&record.links)
            .map(|(subject, previous)| LinkView {
                subject: subject.to_string(),
                previous: *previous,
            })
            .collect(),
        prev_chain: hex(&record.prev_chain),
        chain: None,
        record: None,
    }
}

/// Everything a record says, readable.
pub fn record_json(record: &Record) -> Value {
    serde_json::to_value(record_view(record)).expect("views serialize")
}

/// One line of an export: the record's view, its canonical bytes and its chain hash.
pub fn export_line(record: &Record, bytes: &[u8]) -> Value {
    let mut line = record_view(record);
    line.chain = Some(hex(&crate::codec::chain_hash(bytes)));
    line.record = Some(base64(bytes));
    serde_json::to_value(line).expect("views serialize")
}

/// The figures of a quantitative refusal, in TPP and H100 equivalents.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct FiguresView {
    pub before_tpp: u64,
    pub after_tpp: u64,
    pub limit_tpp: u64,
    pub excess_tpp: u64,
    pub before_h100: u64,
    pub after_h100: u64,
    pub limit_h100: u64,
    pub excess_h100: u64,
}

/// A refusal: blueprint section 2's shape, with the figures and the broken event.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
#[schemars(title = "chipledger refusal")]
pub struct RefusalView {
    /// Always `refused`.
    pub status: &'static str,
    pub event_id: Id,
    /// A code of framework.md section 11.
    pub code: String,
    pub message: String,
    /// The input line, when the event came from a file or standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures: Option<FiguresView>,
    /// For a late record or void: the recorded event it would break.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaks: Option<Id>,
}

/// The refusal shape of blueprint section 2, with the figures and the broken event.
pub fn refusal_json(refusal: &Refusal, h100_tpp: u64, line: Option<u64>) -> Value {
    serde_json::to_value(refusal_view(refusal, h100_tpp, line)).expect("views serialize")
}

pub fn refusal_view(refusal: &Refusal, h100_tpp: u64, line: Option<u64>) -> RefusalView {
    let h100 = |tpp: u64| h100_equivalents(tpp, h100_tpp);
    RefusalView {
        status: "refused",
        event_id: refusal.event_id.clone(),
        code: refusal.code.as_str().to_string(),
        message: refusal.message.clone(),
        line,
        place: None,
        figures: refusal.figures.as_deref().map(|figures| FiguresView {
            before_tpp: figures.before_tpp,
            after_tpp: figures.after_tpp,
            limit_tpp: figures.limit_tpp,
            excess_tpp: figures.excess_tpp,
            before_h100: h100(figures.before_tpp),
            after_h100: h100(figures.after_tpp),
            limit_h100: h100(figures.limit_tpp),
            excess_h100: h100(figures.excess_tpp),
        }),
        breaks: refusal.breaks.clone(),
    }
}

/// Which part of the state a view shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub entity: Option<crate::name::Id>,
    pub country: Option<Country>,
    pub holdings: Holdings,
}

/// Whether entity views list the chips held by country and model ([`EntityView::holdings`]).
/// Only the JSON output shows them; the tables and the report show each entity's TPP by
/// country. Building them was more than half of the view of the 1M-event ledger's state
/// (tools/bench/PROFILE.md, goal 4), so a view that is not printed as JSON leaves them out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Holdings {
    #[default]
    Included,
    /// Every [`EntityView::holdings`] is left empty.
    Omitted,
}

/// A country's figures as of a date.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct CountryView {
    pub tier: u8,
    /// `None` for Tier 1 and Tier 3 countries, which have no allocation.
    pub allocation_tpp: Option<u64>,
    pub allocation_used_tpp: u64,
    pub allocation_remaining_tpp: Option<u64>,
    pub installed_tpp: u64,
    pub allocation_h100: Option<u64>,
    pub allocation_used_h100: u64,
    pub allocation_remaining_h100: Option<u64>,
    pub installed_h100: u64,
}

/// A universal VEU holder's ratios and their margins (positive: room left).
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RatioView {
    /// Share of controlled TPP in Tier 1 countries, in basis points (1/100 of a percent).
    pub tier1_share_bp: u64,
    pub tier1_share_min_bp: u64,
    /// TPP that could leave Tier 1 (or arrive outside it) before the minimum is reached.
    pub tier1_margin_tpp: i64,
    /// The non-Tier-1 country with the largest share, and that share.
    pub largest_other_country: Option<Country>,
    pub largest_other_share_bp: u64,
    pub country_share_max_bp: u64,
    pub country_margin_tpp: i64,
    /// Only for holders headquartered in the ruleset's home country (US).
    pub home_share_bp: Option<u64>,
    pub home_share_min_bp: Option<u64>,
    pub home_margin_tpp: Option<i64>,
}

#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct EntityView {
    pub name: String,
    pub hq: Country,
    pub hq_tier: u8,
    #[schemars(with = "Option<String>")]
    pub parent: Option<Id>,
    pub total_tpp: u64,
    pub total_h100: u64,
    #[schemars(with = "BTreeMap<String, u64>")]
    pub by_country_tpp: BTreeMap<Country, u64>,
    /// Chips held, by country and model (uncontrolled ones included).
    #[schemars(with = "BTreeMap<String, BTreeMap<String, u64>>")]
    pub holdings: BTreeMap<Country, BTreeMap<Id, u64>>,
    // Years have four digits, so their order is their text's.
    #[schemars(with = "BTreeMap<String, u64>")]
    pub lpp_used_tpp: BTreeMap<u16, u64>,
    pub lpp_limit_tpp: u64,
    pub aia_received_tpp: u64,
    pub aia_threshold_tpp: u64,
    pub aia_certified: bool,
    #[schemars(with = "Vec<String>")]
    pub veus: Vec<Id>,
    pub uveu_ratios: Option<RatioView>,
    #[schemars(with = "BTreeMap<String, u64>")]
    pub controlled_weights_hosted: BTreeMap<Country, u64>,
}

#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct VeuView {
    #[schemars(with = "String")]
    pub entity: Id,
    pub scope: &'static str,
    pub country: Option<Country>,
    pub granted: Date,
    pub revoked: Option<Date>,
    pub active: bool,
}

/// The derived state as of a date, as known at a log size: blueprint section 2's shape.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
#[schemars(title = "chipledger state")]
pub struct StateView {
    pub as_of: Date,
    pub size: u64,
    pub root: String,
    pub h100_tpp: u64,
    #[schemars(with = "BTreeMap<String, CountryView>")]
    pub countries: BTreeMap<Country, CountryView>,
    #[schemars(with = "BTreeMap<String, EntityView>")]
    pub entities: BTreeMap<Id, EntityView>,
    #[schemars(with = "BTreeMap<String, VeuView>")]
    pub veus: BTreeMap<Id, VeuView>,
}

use crate::rules::refusal::basis_points;

fn ratio_bp(numerator: u64, denominator: u64) -> u64 {
    basis_points(numerator, denominator)
}

/// From this many entities on, [`state_view`] builds their views on two threads.
const PARALLEL_VIEW_ENTITIES: usize = 512;

/// Builds the view of `state` as of `date`.
pub fn state_view(
    state: &State,
    date: Date,
    size: u64,
    root: [u8; 32],
    filter: &Filter,
) -> StateView {
    let facts = &state.facts;
    let counters = &state.counters;
    let params = &facts.params;

    // Countries named by a counted event, a change, or a holding: tens of thousands of
    // holdings name a few dozen countries, so they are gathered, sorted and deduplicated.
    let mut named: Vec<Country> = Vec::new();
    named.extend(counters.countries.keys().copied());
    named.extend(
        facts
            .allocation_changes
            .iter()
            .filter(|(_, list)| list.iter().any(|item| item.effective <= date))
            .map(|(c, _)| *c),
    );
    named.extend(
        facts
            .tier_changes
            .iter()
            .filter(|(_, list)| {
                list.iter()
                    .any(|item| item.seq > 0 && item.effective <= date)
            })
            .map(|(c, _)| *c),
    );
    for parts in counters.entities.values() {
        named.extend(parts.holdings.keys().map(|(country, _)| *country));
        named.extend(parts.weights.keys().copied());
    }
    named.sort_unstable();
    named.dedup();
    let countries = named
        .into_iter()
        .filter(|country| filter.country.is_none_or(|wanted| wanted == *country))
        .map(|country| (country, country_view(state, country, date)))
        .collect();

    let empty = EntityCounters::default();
    let mut entity_ids: Vec<_> = facts.entities.keys().collect();
    entity_ids.sort();
    let shown = |id: &&Id| {
        if filter.entity.as_ref().is_some_and(|wanted| wanted != *id) {
            return false;
        }
        let Some(country) = filter.country else {
            return true;
        };
        let parts = counters.entities.get(*id).unwrap_or(&empty);
        parts.holdings.keys().any(|(c, _)| *c == country)
            || facts
                .entities
                .get(*id)
                .is_some_and(|fact| fact.hq == country)
    };
    entity_ids.retain(shown);
    let views = |ids: &[&Id]| -> Vec<(Id, EntityView)> {
        ids.iter()
            .filter_map(|id| {
                let parts = counters.entities.get(*id).unwrap_or(&empty);
                entity_view_from(state, id, date, parts, filter.holdings)
                    .map(|view| ((*id).clone(), view))
            })
            .collect()
    };
    // Each entity's view depends on the state alone: a large state's are built in two halves,
    // the second on a helper thread (a cold `state` of 2,000 entities spent about a tenth of
    // its time here, tools/bench/PROFILE.md, goal 4).
    let entities: BTreeMap<Id, EntityView> = if entity_ids.len() >= PARALLEL_VIEW_ENTITIES {
        let (first, second) = entity_ids.split_at(entity_ids.len() / 2);
        let (first, second) = std::thread::scope(|scope| {
            let second = scope.spawn(|| views(second));
            let first = views(first);
            (
                first,
                second.join().expect("building entity views does not panic"),
            )
        });
        first.into_iter().chain(second).collect()
    } else {
        views(&entity_ids).into_iter().collect()
    };
    let mut veus = BTreeMap::new();
    let mut veu_ids: Vec<_> = facts.veus.keys().collect();
    veu_ids.sort();
    for id in veu_ids {
        let holder = &facts.veus[id].holder;
        if filter
            .entity
            .as_ref()
            .is_some_and(|wanted| wanted != holder)
        {
            continue;
        }
        if filter.country.is_some() && !entities.contains_key(holder) {
            continue;
        }
        if let Some(view) = veu_view(state, id, date) {
            veus.insert(id.clone(), view);
        }
    }
    StateView {
        as_of: date,
        size,
        root: base64(&root),
        h100_tpp: params.h100_tpp(),
        countries,
        entities,
        veus,
    }
}

/// A country's figures as of `date`.
pub fn country_view(state: &State, country: Country, date: Date) -> CountryView {
    let facts = &state.facts;
    let counters = &state.counters;
    let h100 = |tpp: u64| h100_equivalents(tpp, facts.params.h100_tpp());
    let tier = facts.tier(country, date);
    let used = counters.allocation_used(country);
    let installed = counters
        .countries
        .get(&country)
        .map_or(0, |tpp| tpp.installed);
    let allocation = (tier == Tier::Two).then(|| facts.allocation(country, date));
    let remaining = allocation.map(|allocation| allocation.saturating_sub(used));
    CountryView {
        tier: tier.number(),
        allocation_tpp: allocation,
        allocation_used_tpp: used,
        allocation_remaining_tpp: remaining,
        installed_tpp: installed,
        allocation_h100: allocation.map(h100),
        allocation_used_h100: h100(used),
        allocation_remaining_h100: remaining.map(h100),
        installed_h100: h100(installed),
    }
}

/// One entity's figures as of `date`, if it is registered by then.
pub fn entity_view(state: &State, id: &Id, date: Date) -> Option<EntityView> {
    let empty = EntityCounters::default();
    entity_view_from(
        state,
        id,
        date,
        state.counters.entities.get(id).unwrap_or(&empty),
        Holdings::Included,
    )
}

fn entity_view_from(
    state: &State,
    id: &Id,
    date: Date,
    parts: &EntityCounters,
    detail: Holdings,
) -> Option<EntityView> {
    let facts = &state.facts;
    let ruleset = &facts.params.ruleset;
    let h100 = |tpp: u64| h100_equivalents(tpp, facts.params.h100_tpp());
    let fact = facts.entity_at(id, date)?;
    let tpp = &parts.tpp;
    let mut holdings: BTreeMap<Country, BTreeMap<Id, u64>> = BTreeMap::new();
    if detail == Holdings::Included {
        for (country, chip, quantity) in state.counters.holdings(parts) {
            holdings
                .entry(country)
                .or_default()
                .insert(chip.clone(), quantity);
        }
    }
    let uveu_ratios = facts
        .has_universal_veu(id, date)
        .then(|| ratio_view(facts, tpp, fact.hq, date));
    Some(EntityView {
        name: fact.name.to_string(),
        hq: fact.hq,
        hq_tier: facts.hq_tier(id, date).number(),
        parent: fact.parent.clone(),
        total_tpp: tpp.total,
        total_h100: h100(tpp.total),
        by_country_tpp: tpp
            .by_country
            .iter()
            .map(|(country, amount)| (*country, *amount))
            .collect(),
        holdings,
        lpp_used_tpp: parts
            .lpp
            .iter()
            .filter(|(_, used)| **used > 0)
            .map(|(year, used)| (*year, *used))
            .collect(),
        lpp_limit_tpp: ruleset.lpp_limit_tpp,
        aia_received_tpp: parts.aia,
        aia_threshold_tpp: ruleset.aia_threshold_tpp,
        aia_certified: facts.certified_by(id, date),
        veus: facts
            .active_veus(id, date)
            .map(|(veu, _)| veu.clone())
            .collect(),
        uveu_ratios,
        controlled_weights_hosted: parts
            .weights
            .iter()
            .map(|(country, count)| (*country, *count))
            .collect(),
    })
}

/// A VEU as of `date`, if granted by then.
pub fn veu_view(state: &State, id: &Id, date: Date) -> Option<VeuView> {
    let facts = &state.facts;
    let fact = facts.veus.get(id).filter(|fact| fact.granted <= date)?;
    let (scope, country) = match fact.scope {
        Scope::Universal => ("universal", None),
        Scope::National(country) => ("national", Some(country)),
    };
    Some(VeuView {
        entity: fact.holder.clone(),
        scope,
        country,
        granted: fact.granted,
        revoked: fact.revoked.filter(|revoked| *revoked <= date),
        active: facts.veu_active(fact, date),
    })
}

fn ratio_view(
    facts: &Facts,
    tpp: &crate::rules::state::EntityTpp,
    hq: Country,
    date: Date,
) -> RatioView {
    let ruleset = &facts.params.ruleset;
    let total = i128::from(tpp.total);
    let tier_one: u64 = tpp
        .by_country
        .iter()
        .filter(|(country, _)| facts.tier(*country, date) == Tier::One)
        .map(|(_, amount)| amount)
        .sum();
    let (min, max, home_share) = (
        ruleset.uveu_tier_one_share_min,
        ruleset.uveu_country_share_max,
        ruleset.uveu_home_share_min,
    );
    let n =
        |ratio: crate::codec::Ratio| (i128::from(ratio.numerator), i128::from(ratio.denominator));
    // Margins: how much TPP could still arrive outside Tier 1, in the largest other country,
    // or outside the home country before the ratio fails (negative: it already fails).
    let clamp =
        |value: i128| i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX });
    let (min_n, min_d) = n(min);
    let tier1_margin = if min_n == 0 {
        i64::MAX
    } else {
        clamp((min_d * i128::from(tier_one) - min_n * total).div_euclid(min_n))
    };
    let largest = tpp
        .by_country
        .iter()
        .filter(|(country, _)| facts.tier(*country, date) != Tier::One)
        .max_by_key(|(_, amount)| *amount)
        .copied();
    let (largest_country, largest_amount) = largest.map_or((None, 0), |(c, a)| (Some(c), a));
    let (max_n, max_d) = n(max);
    let country_margin = if max_d > max_n {
        clamp((max_n * total - max_d * i128::from(largest_amount)).div_euclid(max_d - max_n))
    } else {
        i64::MAX
    };
    let home = ruleset.uveu_home_country;
    let at_home = tpp.in_country(home);
    let is_home = hq == home;
    let (home_n, home_d) = n(home_share);
    RatioView {
        tier1_share_bp: basis_points(tier_one, tpp.total),
        tier1_share_min_bp: ratio_bp(min.numerator, min.denominator),
        tier1_margin_tpp: tier1_margin,
        largest_other_country: largest_country,
        largest_other_share_bp: basis_points(largest_amount, tpp.total),
        country_share_max_bp: ratio_bp(max.numerator, max.denominator),
        country_margin_tpp: country_margin,
        home_share_bp: is_home.then(|| basis_points(at_home, tpp.total)),
        home_share_min_bp: is_home.then(|| ratio_bp(home_share.numerator, home_share.denominator)),
        home_margin_tpp: is_home.then(|| {
            if home_n == 0 {
                i64::MAX
            } else {
                clamp((home_d * i128::from(at_home) - home_n * total).div_euclid(home_n))
            }
        }),
    }
}

/// The subject keys of a record, as text.
pub fn subjects_text(record: &Record) -> Vec<String> {
    record.subjects().iter().map(Subject::to_string).collect()
}
