//! A seeded generator of realistic NDJSON workloads, valid under the rules by construction.
//!
//! The generator simulates three years of the AI diffusion framework (2025-01-13 through
//! 2027-12-31): exporters ship chips to entities of all three tiers, entities move chips
//! between their sites and to other owners, retire them, declare inventory and host model
//! weights; VEUs are granted and revoked, countries sign government-to-government agreements
//! (`allocation_change`), change tier, new chip models appear, some shipments are voided and
//! some records arrive late.
//!
//! Every proposed event is submitted to a real, temporary chipledger ledger through the
//! library's own API (`Ledger::submit`), and only the events the ledger records are written.
//! The proposals read the ledger's state (`Ledger::state`) to stay within the limits (holdings,
//! LPP, allocations, national VEU caps, universal VEU ratios, AIA certification), so that most
//! of them are accepted; the ledger remains the judge.
//!
//! Determinism: one ChaCha8 stream seeded from `seed` drives every choice, nothing iterates a
//! randomly ordered map, and the ledger's decisions are a pure function of the events. The same
//! `events` and `seed` always give the same file.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::Instant as Clock;

use chipledger::codec::Tier;
use chipledger::country::Country;
use chipledger::date::{Date, Instant};
use chipledger::input;
use chipledger::ledger::{Admitted, Ledger};
use chipledger::name::Id;
use chipledger::rules::State;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The smallest and largest workloads the command line accepts.
pub const MIN_EVENTS: u64 = 10_000;
pub const MAX_EVENTS: u64 = 10_000_000;
/// The recording time of the temporary ledger; importers use `CHIPLEDGER_NOW=2028-01-01`.
pub const NOW: &str = "2028-01-01T00:00:00Z";
/// The origin of the temporary ledger.
const ORIGIN: &str = "bench.example/gen";
/// Staged records per commit of the temporary ledger.
const COMMIT_EVERY: u64 = 10_000;
/// The allocation a government-to-government agreement sets (framework.md section 4).
const G2G_ALLOCATION_TPP: u64 = 1_580_000_000;
/// The most proposals per requested event before the generator gives up (it never should).
const MAX_PROPOSALS_PER_EVENT: u64 = 20;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// The number of events to write.
    pub events: u64,
    pub seed: u64,
    /// Where to create the temporary ledger (a fresh directory is made inside); default the
    /// system's temporary directory.
    pub scratch: Option<std::path::PathBuf>,
    /// Print progress to stderr.
    pub progress: bool,
}

/// What the generator did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Events submitted to the ledger.
    pub proposed: u64,
    /// Events the ledger recorded (and the generator wrote).
    pub accepted: u64,
    /// Refused proposals by refusal code.
    pub refused: BTreeMap<&'static str, u64>,
    /// Written events by type.
    pub by_type: BTreeMap<&'static str, u64>,
    /// Written events dated before an event written earlier.
    pub late: u64,
    /// Distinct entities registered.
    pub entities: u64,
    pub seconds: f64,
}

impl Stats {
    pub fn acceptance_rate(&self) -> f64 {
        if self.proposed == 0 {
            return 1.0;
        }
        self.accepted as f64 / self.proposed as f64
    }

    /// A human summary, several lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "proposed {}, accepted {} ({:.2}%), refused {}; {} entities; {} late records; {:.1} s ({:.0} events/s)\n",
            self.proposed,
            self.accepted,
            100.0 * self.acceptance_rate(),
            self.proposed - self.accepted,
            self.entities,
            self.late,
            self.seconds,
            self.accepted as f64 / self.seconds.max(1e-9),
        );
        text.push_str("by type:");
        for (kind, count) in &self.by_type {
            text.push_str(&format!(" {kind}={count}"));
        }
        text.push('\n');
        if !self.refused.is_empty() {
            text.push_str("refused by code:");
            for (code, count) in &self.refused {
                text.push_str(&format!(" {code}={count}"));
            }
            text.push('\n');
        }
        text
    }
}

/// The number of entities for a workload of `events` events: one per 500 events, capped at
/// 2,000, about the number of companies that hold advanced AI compute worldwide. Past 1,000,000
/// events a bigger file is a longer, denser history of the same companies, so the state a
/// query returns is the same size at 1M and 10M and the benchmark's "flat as the log grows"
/// rows measure the log's length alone.
pub fn entity_count(events: u64) -> usize {
    (events / 500).clamp(50, 2_000) as usize
}

/// Generates `config.events` events into `out`, one JSON object per line.
pub fn generate(config: &Config, out: &mut dyn Write) -> Result<Stats, BoxError> {
    if config.events == 0 {
        return Ok(Stats::default());
    }
    let scratch = match &config.scratch {
        Some(dir) => tempfile::Builder::new()
            .prefix("workload-ledger-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new()
            .prefix("workload-ledger-")
            .tempdir()?,
    };
    let now = Instant::parse(NOW)?;
    let (ledger, _) = Ledger::create(&scratch.path().join("ledger"), Some(ORIGIN), now)?;
    let started = Clock::now();
    let mut generator = Generator::new(config, ledger, now, out);
    generator.run()?;
    generator.ledger.commit()?;
    generator.out.flush()?;
    let mut stats = std::mem::take(&mut generator.stats);
    stats.entities = generator
        .entities
        .iter()
        .filter(|entity| entity.registered)
        .count() as u64;
    stats.seconds = started.elapsed().as_secs_f64();
    drop(generator);
    scratch.close()?;
    Ok(stats)
}

// ---- reference data -----------------------------------------------------------------------

/// A chip model the generator uses: the built-in catalog plus models it adds with
/// `chip_model` events (TPP figures of added models are illustrative).
struct Chip {
    name: &'static str,
    id: Id,
    tpp: u64,
    controlled: bool,
    /// For an added model, the date of its `chip_model` event.
    added: Option<&'static str>,
    /// Relative frequency in new shipments by year 2025, 2026, 2027 (0: inventory only).
    weight: [u32; 3],
    /// Chips old enough to sit in declared inventory.
    legacy: bool,
}

/// name, TPP, controlled, date added (None: built in), weights by year, legacy.
type ChipRow = (
    &'static str,
    u64,
    bool,
    Option<&'static str>,
    [u32; 3],
    bool,
);

const CHIPS: [ChipRow; 23] = [
    ("H100", 15_831, true, None, [30, 10, 3], true),
    ("H100-PCIE", 12_104, true, None, [6, 2, 1], true),
    ("H200", 15_831, true, None, [20, 15, 6], false),
    ("H800", 15_831, true, None, [0, 0, 0], true),
    ("H20", 2_368, false, None, [0, 0, 0], true),
    ("A100", 4_992, true, None, [4, 1, 0], true),
    ("A800", 4_992, true, None, [0, 0, 0], true),
    ("B100", 28_000, true, None, [3, 2, 1], false),
    ("B200", 36_000, true, None, [12, 20, 12], false),
    ("GB200", 40_000, true, None, [6, 18, 15], false),
    ("B300", 60_000, true, None, [1, 12, 25], false),
    ("L40S", 5_864, true, None, [6, 5, 4], true),
    ("MI300X", 20_919, true, None, [5, 4, 2], true),
    ("MI325X", 20_919, true, None, [2, 4, 3], false),
    ("GAUDI3", 29_360, true, None, [2, 2, 2], false),
    ("TPU-V5P", 7_344, true, None, [3, 2, 1], true),
    // Added by chip_model events (illustrative figures).
    ("MI250X", 6_128, true, Some("2021-11-08"), [0, 0, 0], true),
    ("L20", 1_912, false, Some("2023-11-16"), [0, 0, 0], true),
    ("GH200", 15_831, true, Some("2024-03-18"), [3, 2, 1], true),
    ("MI355X", 40_000, true, Some("2025-06-12"), [2, 4, 4], false),
    ("H20E", 2_368, false, Some("2025-08-01"), [0, 0, 0], false),
    ("TPU-V7", 36_912, true, Some("2025-11-06"), [1, 3, 4], false),
    ("R100", 80_000, true, Some("2026-09-09"), [0, 2, 10], false),
];

/// Uncontrolled models a Tier 3 consignee can receive.
const UNCONTROLLED: [&str; 3] = ["H20", "L20", "H20E"];

const TIER1_HQ: [(&str, u32); 19] = [
    ("US", 40),
    ("JP", 8),
    ("GB", 8),
    ("DE", 7),
    ("FR", 6),
    ("KR", 6),
    ("TW", 5),
    ("CA", 5),
    ("AU", 4),
    ("NL", 4),
    ("SE", 2),
    ("IE", 2),
    ("FI", 1),
    ("DK", 1),
    ("NO", 1),
    ("ES", 2),
    ("IT", 2),
    ("BE", 1),
    ("NZ", 1),
];

const TIER2_HQ: [(&str, u32); 40] = [
    ("IN", 12),
    ("MY", 8),
    ("SG", 8),
    ("AE", 8),
    ("SA", 6),
    ("IL", 6),
    ("PL", 5),
    ("BR", 6),
    ("MX", 5),
    ("TH", 4),
    ("VN", 4),
    ("ID", 5),
    ("PH", 3),
    ("CL", 3),
    ("CO", 2),
    ("AR", 3),
    ("TR", 4),
    ("EG", 2),
    ("NG", 2),
    ("KE", 2),
    ("ZA", 3),
    ("MA", 2),
    ("PK", 2),
    ("CZ", 3),
    ("PT", 2),
    ("AT", 2),
    ("CH", 4),
    ("GR", 2),
    ("HU", 2),
    ("RO", 2),
    ("UA", 1),
    ("KZ", 1),
    ("QA", 2),
    ("KW", 1),
    ("EE", 1),
    ("LT", 1),
    ("IS", 1),
    ("LU", 1),
    ("UY", 1),
    ("PE", 1),
];

const TIER3_HQ: [(&str, u32); 9] = [
    ("CN", 45),
    ("HK", 15),
    ("RU", 10),
    ("MO", 3),
    ("KH", 12),
    ("BY", 3),
    ("IR", 4),
    ("VE", 4),
    ("MM", 4),
];

const EXPORTER_HQ: [(&str, u32); 5] = [("US", 10), ("TW", 3), ("KR", 2), ("NL", 1), ("JP", 1)];

/// Countries whose governments sign an agreement that doubles their allocation: some on a
/// fixed date, the others when their allocation is 85% used.
const G2G: [(&str, Option<&str>); 8] = [
    ("MY", Some("2026-04-01")),
    ("AE", Some("2025-11-03")),
    ("SA", None),
    ("IN", None),
    ("SG", None),
    ("IL", None),
    ("BR", None),
    ("ID", None),
];

/// Tier 2 countries moved to Tier 1 (the first two always, the rest for large workloads).
const TIER_UPGRADES: [(&str, &str); 5] = [
    ("PL", "2026-03-02"),
    ("IL", "2026-07-01"),
    ("CZ", "2026-10-01"),
    ("PT", "2027-02-01"),
    ("AT", "2027-04-01"),
];

const PREFIXES: [&str; 48] = [
    "northwind",
    "lattice",
    "acme",
    "helios",
    "nordlys",
    "fjord",
    "sakura",
    "monsoon",
    "gulf",
    "deccan",
    "andes",
    "danube",
    "lagos",
    "saigon",
    "atlas",
    "pearl",
    "harbour",
    "lionsgate",
    "mekong",
    "aurora",
    "boreal",
    "cobalt",
    "delta",
    "ember",
    "falcon",
    "granite",
    "horizon",
    "iris",
    "juniper",
    "kestrel",
    "lumen",
    "meridian",
    "nimbus",
    "orchid",
    "pinnacle",
    "quasar",
    "redwood",
    "summit",
    "tundra",
    "vertex",
    "willow",
    "zenith",
    "cedar",
    "coral",
    "sierra",
    "tidal",
    "vector",
    "nova",
];

const SUFFIXES: [&str; 12] = [
    "cloud", "compute", "ai", "data", "hpc", "labs", "systems", "networks", "grid", "dc",
    "digital", "infra",
];

const VOID_REASONS: [&str; 5] = [
    "entered twice by the customs broker",
    "shipment cancelled before export",
    "wrong consignee entered",
    "quantity keyed incorrectly; re-entered",
    "export licence withdrawn before shipment",
];

/// Training-compute figures: above 10^26 (controlled when closed) and at or below it.
const OPS_ABOVE: [&str; 7] = [
    "1.2e26",
    "2e26",
    "3e26",
    "5e26",
    "8e26",
    "1e27",
    "150000000000000000000000000",
];
const OPS_BELOW: [&str; 5] = [
    "5e25",
    "8e25",
    "1e26",
    "90000000000000000000000000",
    "2.5e25",
];

fn country(code: &str) -> Country {
    Country::parse(code).expect("the generator's country codes are assigned")
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date of a day number (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day number (days since 1970-01-01) of a `YYYY-MM-DD` date.
fn day(text: &str) -> u32 {
    let date = Date::parse(text).expect("the generator's dates are valid");
    let field = |range: std::ops::Range<usize>| -> i64 {
        text[range].parse().expect("a parsed date has digits")
    };
    let days = days_from_civil(i64::from(date.year()), field(5..7), field(8..10));
    u32::try_from(days).expect("the generator's dates are after 1970")
}

fn to_date(days: u32) -> Date {
    let (year, month, day) = civil_from_days(i64::from(days));
    Date::new(year as u16, month as u8, day as u8).expect("a valid day number")
}

fn date_text(days: u32) -> String {
    to_date(days).to_string()
}

fn title(word: &str) -> String {
    if matches!(word, "ai" | "dc" | "hpc") {
        return word.to_ascii_uppercase();
    }
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

// ---- the simulation -------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Exporter,
    /// US-headquartered cloud with a universal VEU and a big US installed base.
    Hyperscaler,
    TierOne,
    /// Tier 2 operator with a national VEU for its home country.
    NationalVeu,
    TierTwo,
    TierThree,
}

const CLASSES: [Class; 6] = [
    Class::Exporter,
    Class::Hyperscaler,
    Class::TierOne,
    Class::NationalVeu,
    Class::TierTwo,
    Class::TierThree,
];

fn class_slot(class: Class) -> usize {
    CLASSES
        .iter()
        .position(|c| *c == class)
        .expect("every class is listed")
}

struct Entity {
    name: String,
    id: Id,
    display: String,
    hq: Country,
    class: Class,
    parent: Option<usize>,
    children: Vec<usize>,
    /// The day of its `entity` event.
    join: u32,
    registered: bool,
    /// Countries where it operates, the HQ (or, for a hyperscaler, the US) first.
    sites: Vec<Country>,
    /// (country, chip) pairs it has ever received: where to look for holdings.
    places: Vec<(Country, usize)>,
    uveu: Option<String>,
    nveu: Option<(String, Country)>,
    certified: Option<u32>,
}

enum Action {
    Join(usize),
    ChipModel(usize),
    TierChange(Country, u8),
    Agreement(Country),
    Grant(usize, bool),
    Revoke(usize),
}

/// What the rules would allow for one arrival of chips.
struct Room {
    /// The most TPP that fits.
    max_tpp: u64,
    /// The basis the ledger is expected to choose.
    basis: &'static str,
}

struct Generator<'a> {
    rng: ChaCha8Rng,
    ledger: Ledger,
    now: Instant,
    out: std::io::BufWriter<&'a mut dyn Write>,
    target: u64,
    progress: bool,
    stats: Stats,
    chips: Vec<Chip>,
    entities: Vec<Entity>,
    /// Registered entities by class, in registration order.
    registered: [Vec<usize>; 6],
    schedule: BTreeMap<(u32, u64), Action>,
    scheduled: u64,
    /// Next number of each id prefix.
    numbers: BTreeMap<&'static str, u64>,
    start: u32,
    end: u32,
    today: u32,
    max_effective: u32,
    /// Recently recorded shipments that a void may target: (id, consignee, accepted count).
    recent_shipments: VecDeque<(String, usize, u64)>,
    recent_weights: VecDeque<(String, u64)>,
    /// Agreement countries and whether theirs has been signed.
    g2g: Vec<(Country, bool)>,
    models: u64,
    national_grants: u64,
    /// Registered entities (not exporters) by the countries they operate in.
    by_site: BTreeMap<Country, Vec<usize>>,
    last_progress: Clock,
}

impl<'a> Generator<'a> {
    fn new(config: &Config, ledger: Ledger, now: Instant, out: &'a mut dyn Write) -> Self {
        let chips = CHIPS
            .iter()
            .map(|(name, tpp, controlled, added, weight, legacy)| Chip {
                name,
                id: Id::parse(name).expect("valid chip id"),
                tpp: *tpp,
                controlled: *controlled,
                added: *added,
                weight: *weight,
                legacy: *legacy,
            })
            .collect();
        Generator {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            ledger,
            now,
            out: std::io::BufWriter::with_capacity(1 << 20, out),
            target: config.events,
            progress: config.progress,
            stats: Stats::default(),
            chips,
            entities: Vec::new(),
            registered: Default::default(),
            schedule: BTreeMap::new(),
            scheduled: 0,
            numbers: BTreeMap::new(),
            start: day("2025-01-13"),
            end: day("2027-12-31"),
            today: day("2025-01-13"),
            max_effective: 0,
            recent_shipments: VecDeque::new(),
            recent_weights: VecDeque::new(),
            g2g: G2G.iter().map(|(code, _)| (country(code), false)).collect(),
            models: (config.events / 5_000).max(20),
            national_grants: 0,
            by_site: BTreeMap::new(),
            last_progress: Clock::now(),
        }
    }

    fn done(&self) -> bool {
        self.stats.accepted >= self.target
    }

    fn state(&self) -> &State {
        self.ledger.state()
    }

    fn date(&self) -> Date {
        to_date(self.today)
    }

    fn next_id(&mut self, prefix: &'static str) -> String {
        let number = self.numbers.entry(prefix).or_insert(0);
        *number += 1;
        format!("{prefix}-{number}")
    }

    /// Gives back the number [`next_id`] took, when its event was refused.
    fn unuse_id(&mut self, prefix: &'static str) {
        if let Some(number) = self.numbers.get_mut(prefix) {
            *number -= 1;
        }
    }

    fn at(&mut self, when: u32, action: Action) {
        self.scheduled += 1;
        self.schedule.insert((when, self.scheduled), action);
    }

    fn pick_weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, weight)| weight).sum();
        let mut point = self.rng.random_range(0..total);
        for (item, weight) in items {
            if point < *weight {
                return *item;
            }
            point -= weight;
        }
        items[items.len() - 1].0
    }

    /// A number in `low..=high`, spread evenly over powers of two (a log-uniform integer).
    fn log_uniform(&mut self, low: u64, high: u64) -> u64 {
        let low = low.max(1);
        let high = high.max(low);
        let low_bits = 63 - low.leading_zeros();
        let high_bits = 63 - high.leading_zeros();
        let bits = self.rng.random_range(low_bits..=high_bits);
        let from = (1u64 << bits).max(low);
        let to = ((1u64 << bits) * 2 - 1).min(high);
        self.rng.random_range(from..=to)
    }

    /// A server-shaped quantity: multiples of 8 above 16.
    fn quantity(&mut self, low: u64, high: u64) -> u64 {
        let q = self.log_uniform(low, high);
        if q > 16 { q / 8 * 8 } else { q }
    }

    /// Picks a registered entity of one of `classes` (weighted), favouring early ones.
    fn pick_entity(&mut self, classes: &[(Class, u32)]) -> Option<usize> {
        let available: Vec<(Class, u32)> = classes
            .iter()
            .copied()
            .filter(|(class, _)| !self.registered[class_slot(*class)].is_empty())
            .collect();
        if available.is_empty() {
            return None;
        }
        let class = self.pick_weighted(&available);
        let list = &self.registered[class_slot(class)];
        let spread = self.rng.random_range(0..list.len());
        let index = self.rng.random_range(0..=spread);
        Some(self.registered[class_slot(class)][index])
    }

    // ---- submitting -------------------------------------------------------------------------

    /// Submits one event line dated `effective`; writes it when the ledger records it.
    fn submit(
        &mut self,
        kind: &'static str,
        effective: u32,
        line: String,
    ) -> Result<bool, BoxError> {
        if self.done() {
            return Ok(false);
        }
        self.stats.proposed += 1;
        if self.stats.proposed > self.target * MAX_PROPOSALS_PER_EVENT + 10_000 {
            return Err(format!(
                "the generator is stuck: {} proposals for {} accepted events",
                self.stats.proposed, self.stats.accepted
            )
            .into());
        }
        let submission = input::parse_event(&line)
            .map_err(|error| format!("the generator wrote bad input ({error}): {line}"))?;
        match self.ledger.submit(&submission, self.now)? {
            Ok(Admitted::Recorded(_)) => {
                self.out.write_all(line.as_bytes())?;
                self.out.write_all(b"\n")?;
                self.stats.accepted += 1;
                *self.stats.by_type.entry(kind).or_insert(0) += 1;
                if effective < self.max_effective {
                    self.stats.late += 1;
                }
                self.max_effective = self.max_effective.max(effective);
                if self.ledger.staged_count() >= COMMIT_EVERY {
                    self.ledger.commit()?;
                    self.report_progress();
                }
                Ok(true)
            }
            Ok(Admitted::AlreadyRecorded(_)) => {
                *self.stats.refused.entry("ALREADY_RECORDED").or_insert(0) += 1;
                Ok(false)
            }
            Err(refusal) => {
                *self.stats.refused.entry(refusal.code.as_str()).or_insert(0) += 1;
                Ok(false)
            }
        }
    }

    fn report_progress(&mut self) {
        if self.progress && self.last_progress.elapsed().as_secs() >= 10 {
            self.last_progress = Clock::now();
            eprintln!(
                "workload: {} of {} events ({}), {} proposed",
                self.stats.accepted,
                self.target,
                date_text(self.today),
                self.stats.proposed
            );
        }
    }

    // ---- the entities -----------------------------------------------------------------------

    fn build_entities(&mut self) {
        let total = entity_count(self.target);
        let exporters = (total / 400).clamp(3, 12);
        let hyperscalers = (total / 150).max(3);
        let national = (total / 60).max(3);
        let rest = total - exporters - hyperscalers - national;
        let tier_three = rest * 10 / 100;
        let tier_one = rest * 33 / 100;
        let tier_two = rest - tier_three - tier_one;
        let mut classes = Vec::with_capacity(total);
        classes.extend(std::iter::repeat_n(Class::Exporter, exporters));
        classes.extend(std::iter::repeat_n(Class::Hyperscaler, hyperscalers));
        let mut others: Vec<Class> = Vec::with_capacity(rest + national);
        others.extend(std::iter::repeat_n(Class::NationalVeu, national));
        others.extend(std::iter::repeat_n(Class::TierOne, tier_one));
        others.extend(std::iter::repeat_n(Class::TierTwo, tier_two));
        others.extend(std::iter::repeat_n(Class::TierThree, tier_three));
        // Shuffle the others (Fisher-Yates), so every class joins throughout.
        for i in (1..others.len()).rev() {
            let j = self.rng.random_range(0..=i);
            others.swap(i, j);
        }
        classes.extend(others);

        // 70% are registered before the window opens, the rest join during it.
        let initial = total * 7 / 10;
        let first = day("2015-01-05");
        let before = self.start - 1;
        let mut joins: Vec<u32> = (0..initial)
            .map(|_| self.rng.random_range(first + 1..=before))
            .collect();
        joins.extend(
            (initial..total).map(|_| self.rng.random_range(self.start + 1..=self.end - 60)),
        );
        joins[..initial].sort_unstable();
        joins[initial..].sort_unstable();
        // Exporters and hyperscalers are the oldest companies (registered on the first day).
        let founders = exporters + hyperscalers;
        for join in joins.iter_mut().take(founders) {
            *join = first;
        }

        for (index, class) in classes.into_iter().enumerate() {
            let hq = country(match class {
                Class::Exporter => self.pick_weighted(&EXPORTER_HQ),
                Class::Hyperscaler => "US",
                Class::TierOne => self.pick_weighted(&TIER1_HQ),
                Class::NationalVeu | Class::TierTwo => self.pick_weighted(&TIER2_HQ),
                Class::TierThree => self.pick_weighted(&TIER3_HQ),
            });
            let prefix = PREFIXES[self.rng.random_range(0..PREFIXES.len())];
            let suffix = match class {
                Class::Exporter => "semiconductor",
                _ => SUFFIXES[self.rng.random_range(0..SUFFIXES.len())],
            };
            let name = format!("{prefix}-{suffix}-{}", index + 1);
            let display = format!("{} {} {} ({hq})", title(prefix), title(suffix), index + 1);
            let parent = self.choose_parent(index, class, hq);
            let sites = self.choose_sites(class, hq);
            let entity = Entity {
                id: Id::parse(&name).expect("valid entity id"),
                name,
                display,
                hq,
                class,
                parent,
                children: Vec::new(),
                join: joins[index],
                registered: false,
                sites,
                places: Vec::new(),
                uveu: None,
                nveu: None,
                certified: None,
            };
            if let Some(parent) = parent {
                self.entities[parent].children.push(index);
            }
            self.entities.push(entity);
        }
    }

    /// About one entity in eight is a subsidiary of an earlier one: a Tier 1 or 2 company of
    /// a Tier 1 group, and a few Tier 2 fronts of Tier 3 groups (which inherit Tier 3).
    fn choose_parent(&mut self, index: usize, class: Class, hq: Country) -> Option<usize> {
        let tier_of = |code: Country| -> Tier {
            let text = code.as_str();
            if TIER1_HQ.iter().any(|(c, _)| *c == text) {
                Tier::One
            } else if TIER3_HQ.iter().any(|(c, _)| *c == text) {
                Tier::Three
            } else {
                Tier::Two
            }
        };
        if matches!(class, Class::Exporter | Class::Hyperscaler) || index < 10 {
            return None;
        }
        if !self.rng.random_ratio(1, 8) {
            return None;
        }
        let wanted: &[Class] = match (class, tier_of(hq)) {
            (Class::TierTwo, _) if self.rng.random_ratio(1, 6) => &[Class::TierThree],
            (Class::TierThree, _) => &[Class::TierThree],
            _ => &[Class::Hyperscaler, Class::TierOne],
        };
        for _ in 0..8 {
            let candidate = self.rng.random_range(0..index);
            if wanted.contains(&self.entities[candidate].class) {
                return Some(candidate);
            }
        }
        None
    }

    fn choose_sites(&mut self, class: Class, hq: Country) -> Vec<Country> {
        const T1: [&str; 15] = [
            "JP", "GB", "DE", "IE", "NL", "FR", "SE", "AU", "CA", "KR", "DK", "FI", "NO", "ES",
            "IT",
        ];
        const T2: [&str; 12] = [
            "MY", "SG", "AE", "SA", "IN", "BR", "MX", "ID", "TH", "IL", "PL", "CL",
        ];
        const T3: [&str; 3] = ["CN", "HK", "MO"];
        let mut sites = vec![hq];
        let add = |sites: &mut Vec<Country>, code: &str| {
            let c = country(code);
            if !sites.contains(&c) {
                sites.push(c);
            }
        };
        match class {
            Class::Exporter => {}
            Class::Hyperscaler => {
                for _ in 0..self.rng.random_range(2..=4) {
                    add(&mut sites, T1[self.rng.random_range(0..T1.len())]);
                }
                for _ in 0..self.rng.random_range(2..=5) {
                    add(&mut sites, T2[self.rng.random_range(0..T2.len())]);
                }
            }
            Class::TierOne => {
                if self.rng.random_ratio(1, 2) {
                    add(&mut sites, T1[self.rng.random_range(0..T1.len())]);
                }
                if self.rng.random_ratio(1, 7) {
                    add(&mut sites, T2[self.rng.random_range(0..T2.len())]);
                }
            }
            Class::NationalVeu => {}
            Class::TierTwo => {
                if self.rng.random_ratio(1, 5) {
                    add(&mut sites, T2[self.rng.random_range(0..T2.len())]);
                }
            }
            Class::TierThree => {
                if self.rng.random_ratio(3, 10) {
                    add(&mut sites, T3[self.rng.random_range(0..T3.len())]);
                }
            }
        }
        sites
    }

    // ---- the run ----------------------------------------------------------------------------

    fn run(&mut self) -> Result<(), BoxError> {
        self.build_entities();
        self.setup()?;
        self.plan_schedule();
        while !self.done() {
            let span = u64::from(self.end - self.start + 1);
            let offset = (self.stats.accepted * span / self.target) as u32;
            self.today = (self.start + offset).clamp(self.today, self.end);
            self.run_due_actions()?;
            if self.done() {
                break;
            }
            match self.rng.random_range(0..10_000u32) {
                0..8_250 => self.shipment()?,
                8_250..9_250 => self.transfer()?,
                9_250..9_550 => self.decommission()?,
                9_550..9_650 => self.inventory(None, self.today)?,
                9_650..9_900 => self.weights_hosting()?,
                9_900..9_950 => self.void()?,
                9_950..9_976 => self.late_record()?,
                _ => self.spontaneous_certification()?,
            }
        }
        Ok(())
    }

    /// Before the window: the added chip models and the initial entities, in date order; on
    /// its first day, their declared inventory and the first AIA certifications.
    fn setup(&mut self) -> Result<(), BoxError> {
        let mut early: Vec<(u32, usize, bool)> = Vec::new();
        for (index, chip) in self.chips.iter().enumerate() {
            if let Some(added) = chip.added.filter(|added| day(added) < self.start) {
                early.push((day(added), index, true));
            }
        }
        for (index, entity) in self.entities.iter().enumerate() {
            if entity.join < self.start {
                early.push((entity.join, index, false));
            }
        }
        early.sort_unstable();
        for (when, index, is_chip) in early {
            if is_chip {
                self.chip_model(index, when)?;
            } else {
                self.register(index, when)?;
            }
        }
        let start = self.start;
        self.today = start;
        for index in 0..self.entities.len() {
            if !self.entities[index].registered {
                continue;
            }
            match self.entities[index].class {
                Class::Exporter => {}
                Class::Hyperscaler => {
                    self.hyperscaler_base(index)?;
                    self.certify(index, start)?;
                }
                Class::TierOne => {
                    if self.rng.random_ratio(1, 2) {
                        self.inventory(Some(index), start)?;
                    }
                    if self.rng.random_ratio(3, 10) {
                        self.certify(index, start)?;
                    }
                }
                Class::TierThree => {
                    if self.rng.random_ratio(3, 5) {
                        self.inventory(Some(index), start)?;
                    }
                }
                Class::NationalVeu | Class::TierTwo => {
                    if self.rng.random_ratio(3, 10) {
                        self.inventory(Some(index), start)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn plan_schedule(&mut self) {
        for index in 0..self.chips.len() {
            if let Some(added) = self.chips[index].added.filter(|a| day(a) >= self.start) {
                self.at(day(added), Action::ChipModel(index));
            }
        }
        let upgrades = if self.target >= 1_000_000 { 5 } else { 2 };
        for (code, when) in TIER_UPGRADES.iter().take(upgrades) {
            self.at(day(when), Action::TierChange(country(code), 1));
        }
        for (code, when) in G2G.iter() {
            if let Some(when) = when {
                self.at(day(when), Action::Agreement(country(code)));
            }
        }
        for index in 0..self.entities.len() {
            let entity = &self.entities[index];
            let (class, join) = (entity.class, entity.join);
            if join >= self.start {
                self.at(join, Action::Join(index));
            }
            let earliest = join.max(self.start);
            match class {
                Class::Hyperscaler => {
                    let when = earliest + self.rng.random_range(1..=60);
                    self.at(when, Action::Grant(index, true));
                }
                Class::NationalVeu => {
                    let when = (earliest + self.rng.random_range(14..=240)).min(self.end - 30);
                    self.at(when, Action::Grant(index, false));
                }
                _ => {}
            }
        }
    }

    fn run_due_actions(&mut self) -> Result<(), BoxError> {
        while let Some(&(when, _)) = self.schedule.keys().next() {
            if when > self.today || self.done() {
                break;
            }
            let (_, action) = self.schedule.pop_first().expect("a first entry");
            let today = self.today;
            match action {
                Action::Join(index) => {
                    if self.register(index, today)? && self.rng.random_ratio(2, 5) {
                        self.inventory(Some(index), today)?;
                    }
                }
                Action::ChipModel(index) => {
                    self.chip_model(index, today)?;
                }
                Action::TierChange(code, tier) => {
                    let id = self.next_id("TC");
                    let line = format!(
                        r#"{{"type":"tier_change","id":"{id}","effective":"{}","country":"{code}","tier":{tier}}}"#,
                        date_text(today)
                    );
                    if !self.submit("tier_change", today, line)? {
                        self.unuse_id("TC");
                    }
                }
                Action::Agreement(code) => {
                    self.agreement(code)?;
                }
                Action::Grant(index, universal) => {
                    self.grant(index, universal)?;
                }
                Action::Revoke(index) => {
                    self.revoke(index)?;
                }
            }
        }
        Ok(())
    }

    // ---- reference events -------------------------------------------------------------------

    fn chip_model(&mut self, index: usize, when: u32) -> Result<bool, BoxError> {
        let chip = &self.chips[index];
        let line = format!(
            r#"{{"type":"chip_model","id":"M-{}","effective":"{}","chip":"{}","tpp":{},"controlled":{}}}"#,
            chip.name,
            date_text(when),
            chip.name,
            chip.tpp,
            chip.controlled
        );
        self.submit("chip_model", when, line)
    }

    fn register(&mut self, index: usize, when: u32) -> Result<bool, BoxError> {
        let entity = &self.entities[index];
        let parent = match entity.parent {
            Some(parent) if self.entities[parent].registered => {
                format!(r#","parent":"{}""#, self.entities[parent].name)
            }
            _ => String::new(),
        };
        let line = format!(
            r#"{{"type":"entity","id":"E-{}","effective":"{}","entity":"{}","name":"{}","hq":"{}"{parent}}}"#,
            entity.name,
            date_text(when),
            entity.name,
            entity.display,
            entity.hq
        );
        let recorded = self.submit("entity", when, line)?;
        if recorded {
            let entity = &mut self.entities[index];
            entity.registered = true;
            let class = entity.class;
            self.registered[class_slot(class)].push(index);
            if class != Class::Exporter {
                for site in entity.sites.clone() {
                    self.by_site.entry(site).or_default().push(index);
                }
            }
        }
        Ok(recorded)
    }

    fn certify(&mut self, index: usize, when: u32) -> Result<bool, BoxError> {
        if self.entities[index].certified.is_some() {
            return Ok(false);
        }
        let id = self.next_id("C");
        let line = format!(
            r#"{{"type":"aia_certification","id":"{id}","effective":"{}","entity":"{}"}}"#,
            date_text(when),
            self.entities[index].name
        );
        let recorded = self.submit("aia_certification", when, line)?;
        if recorded {
            self.entities[index].certified = Some(when);
        } else {
            self.unuse_id("C");
        }
        Ok(recorded)
    }

    fn spontaneous_certification(&mut self) -> Result<(), BoxError> {
        let Some(index) = self.pick_entity(&[(Class::TierOne, 1)]) else {
            return Ok(());
        };
        let today = self.today;
        self.certify(index, today).map(|_| ())
    }

    fn agreement(&mut self, code: Country) -> Result<(), BoxError> {
        let Some(slot) = self.g2g.iter().position(|(c, _)| *c == code) else {
            return Ok(());
        };
        if self.g2g[slot].1 {
            return Ok(());
        }
        let id = self.next_id("A");
        let today = self.today;
        let line = format!(
            r#"{{"type":"allocation_change","id":"{id}","effective":"{}","country":"{code}","allocation_tpp":{G2G_ALLOCATION_TPP}}}"#,
            date_text(today)
        );
        if self.submit("allocation_change", today, line)? {
            self.g2g[slot].1 = true;
        } else {
            self.unuse_id("A");
        }
        Ok(())
    }

    fn grant(&mut self, index: usize, universal: bool) -> Result<(), BoxError> {
        let entity = &self.entities[index];
        if !entity.registered {
            return Ok(());
        }
        let today = self.today;
        let hq = entity.hq;
        let (veu, scope) = if universal {
            (
                format!("V-U-{}", index + 1),
                r#""scope":"universal""#.to_string(),
            )
        } else {
            (
                format!("V-N-{hq}-{}", index + 1),
                format!(r#""scope":"national","country":"{hq}""#),
            )
        };
        let name = entity.name.clone();
        let id = self.next_id("G");
        let line = format!(
            r#"{{"type":"veu_grant","id":"{id}","effective":"{}","veu":"{veu}","entity":"{name}",{scope}}}"#,
            date_text(today),
        );
        if !self.submit("veu_grant", today, line)? {
            self.unuse_id("G");
            return Ok(());
        }
        if universal {
            self.entities[index].uveu = Some(veu);
            // One universal VEU holder in six loses it in the last year.
            if self.rng.random_ratio(1, 6) {
                let when = self.rng.random_range(day("2027-03-01")..=self.end - 10);
                self.at(when.max(today + 1), Action::Revoke(index));
            }
        } else {
            self.entities[index].nveu = Some((veu, hq));
            self.national_grants += 1;
            // One national VEU in six is revoked later, the first one always.
            if self.rng.random_ratio(1, 6) || self.national_grants == 1 {
                let earliest = (today + 120).max(day("2026-06-01"));
                if earliest < self.end {
                    let when = self.rng.random_range(earliest..=self.end);
                    self.at(when, Action::Revoke(index));
                }
            }
        }
        Ok(())
    }

    fn revoke(&mut self, index: usize) -> Result<(), BoxError> {
        let entity = &self.entities[index];
        let Some(veu) = entity
            .nveu
            .as_ref()
            .map(|(veu, _)| veu.clone())
            .or_else(|| entity.uveu.clone())
        else {
            return Ok(());
        };
        let id = self.next_id("R");
        let today = self.today;
        let line = format!(
            r#"{{"type":"veu_revoke","id":"{id}","effective":"{}","veu":"{veu}"}}"#,
            date_text(today)
        );
        if self.submit("veu_revoke", today, line)? {
            let entity = &mut self.entities[index];
            if entity.nveu.as_ref().is_some_and(|(v, _)| *v == veu) {
                entity.nveu = None;
            } else {
                entity.uveu = None;
            }
        } else {
            self.unuse_id("R");
        }
        Ok(())
    }

    // ---- the rules, as the proposals see them -----------------------------------------------

    /// Whether `holder`'s universal VEU ratios hold after `changes` (country, TPP, arriving),
    /// mirroring framework.md section 8 in integers. A hyperscaler keeps its ratios before its
    /// universal VEU is granted too, so that the grant finds them met.
    fn uveu_ok(&self, holder: usize, date: Date, changes: &[(Country, u64, bool)]) -> bool {
        let state = self.state();
        let id = &self.entities[holder].id;
        if self.entities[holder].class != Class::Hyperscaler
            && !state.facts.has_universal_veu(id, date)
        {
            return true;
        }
        let mut by_country: Vec<(Country, u64)> = state
            .counters
            .entity(id)
            .map(|tpp| tpp.by_country.clone())
            .unwrap_or_default();
        for (place, amount, arriving) in changes {
            match by_country.iter_mut().find(|(c, _)| c == place) {
                Some((_, held)) => {
                    *held = if *arriving {
                        *held + amount
                    } else {
                        held.saturating_sub(*amount)
                    };
                }
                None if *arriving => by_country.push((*place, *amount)),
                None => {}
            }
        }
        let total: u128 = by_country.iter().map(|(_, held)| u128::from(*held)).sum();
        if total == 0 {
            return true;
        }
        let mut tier_one: u128 = 0;
        for (place, held) in &by_country {
            if state.facts.tier(*place, date) == Tier::One {
                tier_one += u128::from(*held);
            } else if 100 * u128::from(*held) > 7 * total {
                return false;
            }
        }
        if 4 * tier_one < 3 * total {
            return false;
        }
        let us = country("US");
        if self.entities[holder].hq == us {
            let home: u128 = by_country
                .iter()
                .filter(|(c, _)| *c == us)
                .map(|(_, held)| u128::from(*held))
                .sum();
            if 2 * home < total {
                return false;
            }
        }
        true
    }

    /// How much controlled TPP `receiver` may receive in `place` on `date` under the basis the
    /// ledger would choose (framework.md section 7), or `None` if nothing may arrive.
    /// `in_country` marks a transfer within one country.
    fn room(
        &self,
        receiver: usize,
        place: Country,
        date: Date,
        wanted_tpp: u64,
        in_country: bool,
    ) -> Option<Room> {
        let state = self.state();
        let facts = &state.facts;
        let counters = &state.counters;
        let ruleset = &facts.params.ruleset;
        let id = &self.entities[receiver].id;
        let tier = facts.tier(place, date);
        let hq_tier = facts.hq_tier(id, date);
        if tier == Tier::Three || hq_tier == Tier::Three {
            return None;
        }
        if tier == Tier::One && hq_tier == Tier::One {
            let max_tpp = if facts.certified_by(id, date) {
                u64::MAX
            } else {
                (ruleset.aia_threshold_tpp - 1).saturating_sub(counters.aia_received(id))
            };
            return Some(Room {
                max_tpp,
                basis: "aia",
            });
        }
        if facts.has_universal_veu(id, date) {
            return Some(Room {
                max_tpp: u64::MAX,
                basis: "uveu",
            });
        }
        if facts.has_national_veu(id, place, date) {
            let cap = facts.params.nveu_cap(date.year()).unwrap_or(0);
            let held = counters
                .entity(id)
                .map(|tpp| tpp.in_country(place))
                .unwrap_or(0);
            return Some(Room {
                max_tpp: cap.saturating_sub(held),
                basis: "nveu",
            });
        }
        let lpp_room = if in_country {
            0
        } else {
            ruleset
                .lpp_limit_tpp
                .saturating_sub(counters.lpp_used(id, date.year()))
        };
        if wanted_tpp <= lpp_room {
            return Some(Room {
                max_tpp: lpp_room,
                basis: "lpp",
            });
        }
        let license_room = if tier == Tier::One {
            u64::MAX
        } else {
            facts
                .allocation(place, date)
                .saturating_sub(counters.allocation_used(place))
        };
        Some(if license_room >= lpp_room {
            Room {
                max_tpp: license_room,
                basis: "license",
            }
        } else {
            Room {
                max_tpp: lpp_room,
                basis: "lpp",
            }
        })
    }

    /// The largest quantity up to `wanted` of `chip` that `receiver` may receive in `place`
    /// today, from `source` (owner, country) for a transfer. May first record an AIA
    /// certification or an allocation agreement that the arrival needs, as a real operator
    /// would. Returns the quantity (0: none) and the expected basis.
    fn fit(
        &mut self,
        receiver: usize,
        place: Country,
        chip: usize,
        wanted: u64,
        source: Option<(usize, Country)>,
    ) -> Result<(u64, &'static str), BoxError> {
        let (tpp, controlled) = (self.chips[chip].tpp, self.chips[chip].controlled);
        if !controlled {
            return Ok((wanted, "uncontrolled"));
        }
        let date = self.date();
        let in_country = source.is_some_and(|(_, from)| from == place);
        let wanted_tpp = wanted * tpp;
        let Some(mut room) = self.room(receiver, place, date, wanted_tpp, in_country) else {
            return Ok((0, ""));
        };
        if room.basis == "aia" && room.max_tpp < wanted_tpp {
            let today = self.today;
            if self.certify(receiver, today)? {
                room.max_tpp = u64::MAX;
            }
        }
        if room.basis == "license" && room.max_tpp < wanted_tpp.saturating_mul(4) {
            self.agreement(place)?;
            if let Some(again) = self.room(receiver, place, date, wanted_tpp, in_country) {
                room = again;
            }
        }
        let mut quantity = wanted.min(room.max_tpp / tpp);
        while quantity > 0 {
            let amount = quantity * tpp;
            let mut ok = self.uveu_ok(receiver, date, &[(place, amount, true)]);
            if let Some((owner, from)) = source {
                if owner == receiver {
                    ok = ok
                        && self.uveu_ok(
                            owner,
                            date,
                            &[(place, amount, true), (from, amount, false)],
                        );
                } else {
                    ok = ok && self.uveu_ok(owner, date, &[(from, amount, false)]);
                }
            }
            if ok {
                break;
            }
            quantity /= 2;
        }
        Ok((quantity, room.basis))
    }

    fn pick_chip(&mut self, controlled: bool) -> usize {
        let year = (self.date().year().clamp(2025, 2027) - 2025) as usize;
        let today = self.today;
        let available: Vec<(usize, u32)> = self
            .chips
            .iter()
            .enumerate()
            .filter(|(_, chip)| chip.added.is_none_or(|added| day(added) <= today))
            .filter_map(|(index, chip)| {
                if controlled {
                    (chip.controlled && chip.weight[year] > 0).then_some((index, chip.weight[year]))
                } else {
                    UNCONTROLLED.contains(&chip.name).then_some((index, 1))
                }
            })
            .collect();
        self.pick_weighted(&available)
    }

    fn chip_index(&self, name: &str) -> usize {
        self.chips
            .iter()
            .position(|chip| chip.name == name)
            .expect("a catalog chip")
    }

    fn holding(&self, owner: usize, place: Country, chip: usize) -> u64 {
        self.state()
            .counters
            .holding(&self.entities[owner].id, place, &self.chips[chip].id)
    }

    fn note_place(&mut self, owner: usize, place: Country, chip: usize) {
        let places = &mut self.entities[owner].places;
        if !places.contains(&(place, chip)) {
            places.push((place, chip));
        }
    }

    // ---- chip movements ---------------------------------------------------------------------

    fn hyperscaler_base(&mut self, index: usize) -> Result<(), BoxError> {
        let start = self.start;
        let sites = self.entities[index].sites.clone();
        let us = country("US");
        let base = self.rng.random_range(60_000..=250_000u64) / 8 * 8;
        for (share, chip) in [(60u64, "H100"), (30, "H200"), (10, "A100")] {
            let chip = self.chip_index(chip);
            self.declare(index, us, chip, base * share / 100, start)?;
        }
        for site in sites.iter().skip(1) {
            let tier_one = TIER1_HQ.iter().any(|(c, _)| *c == site.as_str());
            let quantity = if tier_one {
                base * self.rng.random_range(3..=8) / 100
            } else {
                base * self.rng.random_range(1..=2) / 200
            };
            let chip = self.chip_index("H100");
            self.declare(index, *site, chip, quantity.max(8), start)?;
        }
        Ok(())
    }

    fn declare(
        &mut self,
        index: usize,
        place: Country,
        chip: usize,
        quantity: u64,
        when: u32,
    ) -> Result<bool, BoxError> {
        if quantity == 0 {
            return Ok(false);
        }
        let id = self.next_id("I");
        let line = format!(
            r#"{{"type":"inventory","id":"{id}","effective":"{}","entity":"{}","chip":"{}","quantity":{quantity},"country":"{place}"}}"#,
            date_text(when),
            self.entities[index].name,
            self.chips[chip].name,
        );
        let recorded = self.submit("inventory", when, line)?;
        if recorded {
            self.note_place(index, place, chip);
        } else {
            self.unuse_id("I");
        }
        Ok(recorded)
    }

    /// An inventory declaration: installed chips an entity reports (at registration, or found
    /// later). `who` defaults to a random entity.
    fn inventory(&mut self, who: Option<usize>, when: u32) -> Result<(), BoxError> {
        let index = match who {
            Some(index) => index,
            None => match self.pick_entity(&[
                (Class::Hyperscaler, 2),
                (Class::TierOne, 4),
                (Class::NationalVeu, 2),
                (Class::TierTwo, 5),
                (Class::TierThree, 3),
            ]) {
                Some(index) => index,
                None => return Ok(()),
            },
        };
        let entity = &self.entities[index];
        let class = entity.class;
        let place = if class == Class::Hyperscaler {
            country("US")
        } else {
            entity.sites[self.rng.random_range(0..entity.sites.len())]
        };
        let chip = if class == Class::TierThree {
            let names = ["H20", "H20", "A800", "H800", "L20"];
            let name = names[self.rng.random_range(0..names.len())];
            self.chip_index(name)
        } else {
            let legacy: Vec<(usize, u32)> = self
                .chips
                .iter()
                .enumerate()
                .filter(|(_, chip)| chip.legacy && chip.controlled)
                .filter(|(_, chip)| chip.added.is_none_or(|added| day(added) <= when))
                .map(|(index, _)| (index, 1))
                .collect();
            self.pick_weighted(&legacy)
        };
        let mut quantity = match class {
            Class::Hyperscaler => self.quantity(1_000, 20_000),
            Class::TierOne | Class::NationalVeu => self.quantity(64, 4_000),
            Class::TierThree => self.quantity(256, 20_000),
            _ => self.quantity(8, 512),
        };
        if self.chips[chip].controlled {
            let date = to_date(when);
            let tpp = self.chips[chip].tpp;
            while quantity > 0 && !self.uveu_ok(index, date, &[(place, quantity * tpp, true)]) {
                quantity /= 2;
            }
        }
        self.declare(index, place, chip, quantity, when).map(|_| ())
    }

    fn shipment(&mut self) -> Result<(), BoxError> {
        let classes = [
            (Class::Hyperscaler, 14),
            (Class::TierOne, 30),
            (Class::NationalVeu, 12),
            (Class::TierTwo, 32),
            (Class::TierThree, 12),
        ];
        let date = self.date();
        let mut last = None;
        for _ in 0..4 {
            let Some(consignee) = self.pick_entity(&classes) else {
                return Ok(());
            };
            let entity = &self.entities[consignee];
            let class = entity.class;
            let place = match class {
                Class::Hyperscaler => {
                    let roll = self.rng.random_range(0..100);
                    let sites = &entity.sites;
                    if roll < 55 || sites.len() == 1 {
                        sites[0]
                    } else {
                        sites[self.rng.random_range(1..sites.len())]
                    }
                }
                _ if entity.sites.len() > 1 && self.rng.random_ratio(1, 4) => {
                    entity.sites[self.rng.random_range(1..entity.sites.len())]
                }
                _ => entity.hq,
            };
            let facts = &self.state().facts;
            let allowed = facts.tier(place, date) != Tier::Three
                && facts.hq_tier(&self.entities[consignee].id, date) != Tier::Three;
            last = Some((consignee, place));
            if !allowed {
                break;
            }
            let chip = self.pick_chip(true);
            let wanted = match class {
                Class::Hyperscaler => self.quantity(64, 8_192),
                Class::TierOne => self.quantity(8, 2_048),
                Class::NationalVeu => self.quantity(64, 4_096),
                _ => self.quantity(1, 128),
            };
            let (quantity, basis) = self.fit(consignee, place, chip, wanted, None)?;
            if quantity > 0 {
                return self.ship(consignee, place, chip, quantity, Some(basis));
            }
        }
        // Nothing controlled fits: uncontrolled chips, which only need the references.
        let Some((consignee, place)) = last else {
            return Ok(());
        };
        let chip = self.pick_chip(false);
        let quantity = self.quantity(8, 2_048);
        self.ship(consignee, place, chip, quantity, None)
    }

    fn ship(
        &mut self,
        consignee: usize,
        place: Country,
        chip: usize,
        quantity: u64,
        basis: Option<&'static str>,
    ) -> Result<(), BoxError> {
        let exporter = self
            .pick_entity(&[(Class::Exporter, 1)])
            .expect("exporters are registered first");
        // One shipment in twenty-five names its basis explicitly.
        let basis = match basis {
            Some(basis) if basis != "uncontrolled" && self.rng.random_ratio(1, 25) => {
                format!(r#","basis":"{basis}""#)
            }
            _ => String::new(),
        };
        let id = self.next_id("S");
        let today = self.today;
        let line = format!(
            r#"{{"type":"shipment","id":"{id}","effective":"{}","exporter":"{}","consignee":"{}","country":"{place}","chip":"{}","quantity":{quantity}{basis}}}"#,
            date_text(today),
            self.entities[exporter].name,
            self.entities[consignee].name,
            self.chips[chip].name,
        );
        if self.submit("shipment", today, line)? {
            self.note_place(consignee, place, chip);
            self.recent_shipments
                .push_back((id, consignee, self.stats.accepted));
            if self.recent_shipments.len() > 64 {
                self.recent_shipments.pop_front();
            }
        } else {
            self.unuse_id("S");
        }
        Ok(())
    }

    /// An entity and one of its places where it holds chips: (owner, country, chip, held).
    fn pick_holding(&mut self, classes: &[(Class, u32)]) -> Option<(usize, Country, usize, u64)> {
        for _ in 0..6 {
            let owner = self.pick_entity(classes)?;
            let places = &self.entities[owner].places;
            if places.is_empty() {
                continue;
            }
            let (place, chip) = places[self.rng.random_range(0..places.len())];
            let held = self.holding(owner, place, chip);
            if held > 0 {
                return Some((owner, place, chip, held));
            }
        }
        None
    }

    fn transfer(&mut self) -> Result<(), BoxError> {
        let Some((owner, from, chip, held)) = self.pick_holding(&[
            (Class::Hyperscaler, 25),
            (Class::TierOne, 30),
            (Class::NationalVeu, 10),
            (Class::TierTwo, 25),
            (Class::TierThree, 10),
        ]) else {
            return Ok(());
        };
        let entity = &self.entities[owner];
        let roll = self.rng.random_range(0..100);
        let (receiver, to) = if roll < 55 {
            // Between its own sites.
            let others: Vec<Country> = entity
                .sites
                .iter()
                .copied()
                .filter(|c| *c != from)
                .collect();
            if others.is_empty() {
                return Ok(());
            }
            (owner, others[self.rng.random_range(0..others.len())])
        } else {
            // To another company: a subsidiary or parent when it has one, in the same country
            // mostly.
            let family: Vec<usize> = entity
                .children
                .iter()
                .copied()
                .chain(entity.parent)
                .filter(|other| self.entities[*other].registered)
                .collect();
            let tier_three_owner = entity.class == Class::TierThree;
            let receiver = if !family.is_empty() && self.rng.random_ratio(2, 3) {
                family[self.rng.random_range(0..family.len())]
            } else {
                // Another company operating in the same country (a Tier 3 company's chips
                // stay with Tier 3 companies).
                let neighbours = self.by_site.get(&from).map_or(&[][..], Vec::as_slice);
                if neighbours.is_empty() {
                    return Ok(());
                }
                let candidate = neighbours[self.rng.random_range(0..neighbours.len())];
                let candidate_class = self.entities[candidate].class;
                if candidate == owner || (tier_three_owner && candidate_class != Class::TierThree) {
                    return Ok(());
                }
                candidate
            };
            let to = if roll < 85
                || (tier_three_owner && self.entities[receiver].class != Class::TierThree)
            {
                from
            } else {
                self.entities[receiver].hq
            };
            if receiver == owner && to == from {
                return Ok(());
            }
            (receiver, to)
        };
        let wanted = if held <= 8 {
            self.rng.random_range(1..=held)
        } else {
            self.log_uniform(1, held / 2)
        };
        let (quantity, _) = self.fit(receiver, to, chip, wanted, Some((owner, from)))?;
        let quantity = quantity.min(self.holding(owner, from, chip));
        if quantity == 0 {
            return Ok(());
        }
        let to_entity = if receiver == owner {
            String::new()
        } else {
            format!(r#","to_entity":"{}""#, self.entities[receiver].name)
        };
        let id = self.next_id("T");
        let today = self.today;
        let line = format!(
            r#"{{"type":"transfer","id":"{id}","effective":"{}","entity":"{}","from_country":"{from}","to_country":"{to}"{to_entity},"chip":"{}","quantity":{quantity}}}"#,
            date_text(today),
            self.entities[owner].name,
            self.chips[chip].name,
        );
        if self.submit("transfer", today, line)? {
            self.note_place(receiver, to, chip);
        } else {
            self.unuse_id("T");
        }
        Ok(())
    }

    fn decommission(&mut self) -> Result<(), BoxError> {
        let Some((owner, place, chip, held)) = self.pick_holding(&[
            (Class::Hyperscaler, 3),
            (Class::TierOne, 4),
            (Class::NationalVeu, 1),
            (Class::TierTwo, 3),
            (Class::TierThree, 1),
        ]) else {
            return Ok(());
        };
        let mut quantity = if held <= 4 {
            held
        } else {
            self.log_uniform(1, held / 3)
        };
        let date = self.date();
        let tpp = self.chips[chip].tpp;
        if self.chips[chip].controlled {
            while quantity > 0 && !self.uveu_ok(owner, date, &[(place, quantity * tpp, false)]) {
                quantity /= 2;
            }
        }
        if quantity == 0 {
            return Ok(());
        }
        let id = self.next_id("D");
        let today = self.today;
        let line = format!(
            r#"{{"type":"decommission","id":"{id}","effective":"{}","entity":"{}","chip":"{}","quantity":{quantity},"country":"{place}"}}"#,
            date_text(today),
            self.entities[owner].name,
            self.chips[chip].name,
        );
        if !self.submit("decommission", today, line)? {
            self.unuse_id("D");
        }
        Ok(())
    }

    fn weights_hosting(&mut self) -> Result<(), BoxError> {
        let Some(host) = self.pick_entity(&[
            (Class::Hyperscaler, 6),
            (Class::TierOne, 6),
            (Class::NationalVeu, 3),
            (Class::TierTwo, 3),
            (Class::TierThree, 1),
        ]) else {
            return Ok(());
        };
        let date = self.date();
        let entity = &self.entities[host];
        let place = entity.sites[self.rng.random_range(0..entity.sites.len())];
        let secured = self.rng.random_ratio(7, 10);
        let facts = &self.state().facts;
        let hq_tier = facts.hq_tier(&entity.id, date);
        let tier = facts.tier(place, date);
        let may_host_controlled = hq_tier != Tier::Three
            && match tier {
                Tier::One => true,
                Tier::Two => {
                    facts.has_universal_veu(&entity.id, date)
                        || facts.has_national_veu(&entity.id, place, date)
                        || (hq_tier == Tier::One && secured)
                }
                Tier::Three => false,
            };
        let (ops, open) = if may_host_controlled && self.rng.random_ratio(3, 5) {
            (OPS_ABOVE[self.rng.random_range(0..OPS_ABOVE.len())], false)
        } else if self.rng.random_ratio(1, 2) {
            (OPS_ABOVE[self.rng.random_range(0..OPS_ABOVE.len())], true)
        } else {
            (
                OPS_BELOW[self.rng.random_range(0..OPS_BELOW.len())],
                self.rng.random_ratio(1, 3),
            )
        };
        let model = self.rng.random_range(1..=self.models);
        let id = self.next_id("W");
        let today = self.today;
        let line = format!(
            r#"{{"type":"weights_hosting","id":"{id}","effective":"{}","entity":"{}","model":"model-{model}","training_ops":"{ops}","open_weights":{open},"country":"{place}","secured":{secured}}}"#,
            date_text(today),
            self.entities[host].name,
        );
        if self.submit("weights_hosting", today, line)? {
            self.recent_weights.push_back((id, self.stats.accepted));
            if self.recent_weights.len() > 16 {
                self.recent_weights.pop_front();
            }
        } else {
            self.unuse_id("W");
        }
        Ok(())
    }

    /// Voids a shipment recorded a moment ago (mostly), or a recent weights hosting.
    fn void(&mut self) -> Result<(), BoxError> {
        let target = if self.rng.random_ratio(1, 10) && !self.recent_weights.is_empty() {
            let slot = self.rng.random_range(0..self.recent_weights.len());
            self.recent_weights.remove(slot).map(|(id, _)| id)
        } else {
            // Not a universal VEU holder's: taking chips away could break its ratios.
            let candidates: Vec<usize> = self
                .recent_shipments
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, (_, consignee, at))| {
                    self.entities[*consignee].uveu.is_none() && self.stats.accepted - at < 2_000
                })
                .map(|(slot, _)| slot)
                .take(8)
                .collect();
            if candidates.is_empty() {
                return Ok(());
            }
            let slot = candidates[self.rng.random_range(0..candidates.len())];
            self.recent_shipments.remove(slot).map(|(id, _, _)| id)
        };
        let Some(target) = target else {
            return Ok(());
        };
        let reason = VOID_REASONS[self.rng.random_range(0..VOID_REASONS.len())];
        let id = self.next_id("X");
        let today = self.today;
        let line = format!(
            r#"{{"type":"void","id":"{id}","effective":"{}","target":"{target}","reason":"{reason}"}}"#,
            date_text(today)
        );
        if !self.submit("void", today, line)? {
            self.unuse_id("X");
        }
        Ok(())
    }

    /// A shipment reported late: dated up to 30 days before today, to an entity that holds no
    /// VEU (its limits, checked against today's totals, then hold at the earlier date too).
    fn late_record(&mut self) -> Result<(), BoxError> {
        // Lags of 1 to 30 days, most of them short (median about 4.6 days, mean about 8).
        let lag = 1 + (29 * self.rng.random_range(0..=1_000u64).pow(3) / 1_000_000_000) as u32;
        let when = self.today.saturating_sub(lag).max(self.start);
        if when >= self.today {
            return Ok(());
        }
        let date = to_date(when);
        let Some(consignee) = self.pick_entity(&[
            (Class::TierOne, 3),
            (Class::TierTwo, 3),
            (Class::TierThree, 1),
        ]) else {
            return Ok(());
        };
        let entity = &self.entities[consignee];
        if entity.join > when || entity.uveu.is_some() || entity.nveu.is_some() {
            return Ok(());
        }
        let place = entity.hq;
        let facts = &self.state().facts;
        let controlled_ok = facts.tier(place, date) != Tier::Three
            && facts.hq_tier(&entity.id, date) != Tier::Three;
        let (chip, quantity) = if controlled_ok {
            let chip = self.pick_chip(true);
            if self.chips[chip]
                .added
                .is_some_and(|added| day(added) > when)
            {
                return Ok(());
            }
            let tpp = self.chips[chip].tpp;
            let wanted = self.quantity(1, 64);
            let Some(room) = self.room(consignee, place, date, wanted * tpp, false) else {
                return Ok(());
            };
            if !matches!(room.basis, "aia" | "lpp") {
                return Ok(());
            }
            (chip, wanted.min(room.max_tpp / tpp))
        } else {
            let chip = self.chip_index("H20");
            (chip, self.quantity(8, 1_024))
        };
        if quantity == 0 {
            return Ok(());
        }
        let exporter = self
            .pick_entity(&[(Class::Exporter, 1)])
            .expect("exporters are registered first");
        let id = self.next_id("S");
        let line = format!(
            r#"{{"type":"shipment","id":"{id}","effective":"{}","exporter":"{}","consignee":"{}","country":"{place}","chip":"{}","quantity":{quantity}}}"#,
            date_text(when),
            self.entities[exporter].name,
            self.entities[consignee].name,
            self.chips[chip].name,
        );
        if self.submit("shipment", when, line)? {
            self.note_place(consignee, place, chip);
        } else {
            self.unuse_id("S");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate_text(events: u64, seed: u64) -> (String, Stats) {
        let mut out = Vec::new();
        let config = Config {
            events,
            seed,
            scratch: None,
            progress: false,
        };
        let stats = generate(&config, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), stats)
    }

    #[test]
    fn the_same_seed_gives_the_same_file() {
        let (first, stats) = generate_text(3_000, 7);
        let (second, _) = generate_text(3_000, 7);
        assert_eq!(first, second);
        assert_eq!(stats.accepted, 3_000);
        assert_eq!(first.lines().count(), 3_000);
        let (other, _) = generate_text(3_000, 8);
        assert_ne!(first, other);
    }

    #[test]
    fn every_line_parses_every_type_appears_and_most_proposals_pass() {
        let (text, stats) = generate_text(12_000, 1);
        let mut ids = std::collections::HashSet::new();
        let last_day = Date::parse("2027-12-31").unwrap();
        for line in text.lines() {
            let submission = input::parse_event(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(submission.effective <= last_day, "{line}");
            assert!(
                ids.insert(submission.event.id.clone()),
                "duplicate id: {line}"
            );
        }
        for kind in chipledger::codec::INPUT_TYPES {
            assert!(
                stats.by_type.get(kind).copied().unwrap_or(0) > 0,
                "no {kind} in {:?}",
                stats.by_type
            );
        }
        assert!(stats.late > 0);
        assert!(
            stats.acceptance_rate() > 0.9,
            "acceptance {:.3}: {:?}",
            stats.acceptance_rate(),
            stats.refused
        );
    }

    #[test]
    fn the_file_imports_into_a_fresh_ledger() {
        let (text, _) = generate_text(2_000, 3);
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::parse("2028-01-01").unwrap();
        let (mut ledger, _) =
            Ledger::create(&dir.path().join("l"), Some("test.example/x"), now).unwrap();
        for line in text.lines() {
            let submission = input::parse_event(line).unwrap();
            match ledger.submit(&submission, now).unwrap() {
                Ok(Admitted::Recorded(_)) => {}
                other => panic!("{line}: {other:?}"),
            }
        }
        ledger.commit().unwrap();
    }

    #[test]
    fn quantities_stay_in_range() {
        let mut out = Vec::new();
        let config = Config {
            events: 1,
            seed: 0,
            scratch: None,
            progress: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::parse(NOW).unwrap();
        let (ledger, _) = Ledger::create(&dir.path().join("l"), Some(ORIGIN), now).unwrap();
        let mut generator = Generator::new(&config, ledger, now, &mut out);
        for (low, high) in [(1, 1), (1, 128), (8, 2_048), (64, 8_192), (5, 7)] {
            for _ in 0..500 {
                let q = generator.log_uniform(low, high);
                assert!((low..=high).contains(&q), "{q} not in {low}..={high}");
            }
        }
    }

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(day("1970-01-01"), 0);
        assert_eq!(day("2025-01-13") + 1082, day("2027-12-31"));
        for text in [
            "2015-01-05",
            "2024-02-29",
            "2025-01-13",
            "2026-12-31",
            "2027-12-31",
        ] {
            assert_eq!(date_text(day(text)), text);
        }
        assert_eq!(date_text(day("2024-02-28") + 1), "2024-02-29");
    }

    #[test]
    fn entity_count_scales_and_is_capped() {
        assert_eq!(entity_count(10_000), 50);
        assert_eq!(entity_count(100_000), 200);
        assert_eq!(entity_count(1_000_000), 2_000);
        assert_eq!(entity_count(10_000_000), 2_000);
        assert_eq!(entity_count(100_000_000), 2_000);
    }
}
