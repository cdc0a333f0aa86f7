//! Compliance bundles: everything a third party needs to check one company's or one country's
//! figures with nothing but the file and the ledger's verifier key (`schemas/PROOFS.md`).
//!
//! A bundle holds a signed checkpoint whose last record is a commitment; the commitment's
//! subject-tree leaves for the subject and for `tiers`, with their proofs; every record of those
//! subjects (reached through the records' back-links from each leaf's latest record), the
//! genesis record, the commitment record, and the registrations of the entity's parents, each
//! with its inclusion proof; and the figures as of a date. The verifier folds the records with
//! the same rules as the ledger: leaving out or changing any record of the subject changes its
//! digest, which the signed commitment fixes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Verified};
use super::{canonical_json, commitment, failed, hash32, rfc6962};
use crate::codec::{self, Body, Record, Subject};
use crate::date::Date;
use crate::error::Error;
use crate::ledger::Reader;
use crate::rules::subject::{digest, leaf_bytes, project};
use crate::rules::{State, TimelineKey};
use crate::view::{self, CountryView, EntityView, VeuView, base64};

pub const FORMAT: &str = "chipledger/compliance-bundle@v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "chipledger compliance bundle")]
pub struct Bundle {
    /// Always `chipledger/compliance-bundle@v1`.
    pub format: String,
    /// `entity:<id>` or `country:<code>`.
    pub subject: String,
    /// The date the figures are as of.
    pub as_of: String,
    /// The signed checkpoint, verbatim. Its last record is the commitment.
    pub checkpoint: String,
    /// The commitment leaves of the subject and of `tiers`, in that order.
    pub subjects: Vec<SubjectProof>,
    /// Every record the bundle rests on, in sequence order, each with its inclusion proof.
    pub records: Vec<ProvenRecord>,
    /// The figures, as the ledger computed them; the verifier recomputes them.
    #[schemars(with = "Figures")]
    pub figures: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectProof {
    pub subject: String,
    /// The subject's latest record before the commitment, if it has one.
    pub latest: Option<u64>,
    /// base64 BLAKE3 digest of the subject's part of the state.
    pub digest: String,
    /// The leaf's index in the commitment's subject tree.
    pub index: u64,
    /// RFC 6962 inclusion proof of the leaf in the subject tree.
    pub proof: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvenRecord {
    pub seq: u64,
    /// base64 of the record's canonical bytes.
    pub record: String,
    /// RFC 6962 inclusion proof of the record in the checkpoint's tree.
    pub proof: Vec<String>,
}

/// One rule evaluated for the subject as of the bundle's date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RuleCheck {
    /// The refusal code of the rule.
    pub rule: String,
    pub pass: bool,
    pub detail: String,
}

/// What the bundle shows about its subject.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Figures {
    pub as_of: Date,
    pub entity: Option<EntityView>,
    pub country: Option<CountryView>,
    pub veus: BTreeMap<String, VeuView>,
    pub rules: Vec<RuleCheck>,
}

fn percent(basis_points: u64) -> String {
    format!("{}.{:02}%", basis_points / 100, basis_points % 100)
}

/// The figures of `subject` in `state` as of `date`.
pub fn figures(state: &State, subject: &Subject, date: Date) -> Figures {
    let ruleset = &state.facts.params.ruleset;
    let mut rules = Vec::new();
    let mut figures = Figures {
        as_of: date,
        entity: None,
        country: None,
        veus: BTreeMap::new(),
        rules: Vec::new(),
    };
    match subject {
        Subject::Entity(id) => {
            let entity = view::entity_view(state, id, date);
            if let Some(entity) = &entity {
                rules.push(RuleCheck {
                    rule: "HQ_TIER3".into(),
                    pass: entity.hq_tier < 3,
                    detail: format!(
                        "headquarters, through every parent, in Tier {}",
                        entity.hq_tier
                    ),
                });
                if let Some(ratios) = &entity.uveu_ratios {
                    rules.push(RuleCheck {
                        rule: "UVEU_TIER1_SHARE".into(),
                        pass: ratios.tier1_margin_tpp >= 0,
                        detail: format!(
                            "{} in Tier 1 (minimum {}), margin {} TPP",
                            percent(ratios.tier1_share_bp),
                            percent(ratios.tier1_share_min_bp),
                            ratios.tier1_margin_tpp
                        ),
                    });
                    rules.push(RuleCheck {
                        rule: "UVEU_COUNTRY_SHARE".into(),
                        pass: ratios.country_margin_tpp >= 0,
                        detail: format!(
                            "largest non-Tier-1 country {} at {} (maximum {}), margin {} TPP",
                            ratios
                                .largest_other_country
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "none".into()),
                            percent(ratios.largest_other_share_bp),
                            percent(ratios.country_share_max_bp),
                            ratios.country_margin_tpp
                        ),
                    });
                    if let (Some(share), Some(minimum), Some(margin)) = (
                        ratios.home_share_bp,
                        ratios.home_share_min_bp,
                        ratios.home_margin_tpp,
                    ) {
                        rules.push(RuleCheck {
                            rule: "UVEU_US_SHARE".into(),
                            pass: margin >= 0,
                            detail: format!(
                                "{} in {} (minimum {}), margin {margin} TPP",
                                percent(share),
                                ruleset.uveu_home_country,
                                percent(minimum)
                            ),
                        });
                    }
                }
                for (year, used) in &entity.lpp_used_tpp {
                    rules.push(RuleCheck {
                        rule: "LPP_ANNUAL_LIMIT".into(),
                        pass: *used <= entity.lpp_limit_tpp,
                        detail: format!("{year}: {used} of {} TPP", entity.lpp_limit_tpp),
                    });
                }
                rules.push(RuleCheck {
                    rule: "AIA_CERTIFICATION_REQUIRED".into(),
                    pass: entity.aia_received_tpp < entity.aia_threshold_tpp
                        || entity.aia_certified,
                    detail: format!(
                        "{} TPP received under the AIA, threshold {} TPP, certified: {}",
                        entity.aia_received_tpp,
                        entity.aia_threshold_tpp,
                        if entity.aia_certified { "yes" } else { "no" }
                    ),
                });
            }
            for (veu, fact) in state.facts.active_veus(id, date) {
                if let crate::codec::Scope::National(country) = fact.scope {
                    let held = state
                        .counters
                        .entity(id)
                        .map_or(0, |tpp| tpp.in_country(country));
                    let cap = state.facts.params.nveu_cap(date.year());
                    rules.push(RuleCheck {
                        rule: "NVEU_CAP_EXCEEDED".into(),
                        pass: cap.is_none_or(|cap| held <= cap),
                        detail: format!(
                            "{veu}: {held} TPP in {country}, {} cap {}",
                            date.year(),
                            cap.map(|cap| format!("{cap} TPP"))
                                .unwrap_or_else(|| "none".into())
                        ),
                    });
                }
            }
            let mut ids: Vec<_> = state
                .facts
                .veus_by_holder
                .get(id)
                .into_iter()
                .flatten()
                .collect();
            ids.sort();
            for veu in ids {
                if let Some(view) = view::veu_view(state, veu, date) {
                    figures.veus.insert(veu.to_string(), view);
                }
            }
            figures.entity = entity;
        }
        Subject::Country(country) => {
            let view = view::country_view(state, *country, date);
            if let (Some(allocation), 2) = (view.allocation_tpp, view.tier) {
                rules.push(RuleCheck {
                    rule: "COUNTRY_ALLOCATION_EXCEEDED".into(),
                    pass: view.allocation_used_tpp <= allocation,
                    detail: format!("{} of {allocation} TPP used", view.allocation_used_tpp),
                });
            }
            rules.push(RuleCheck {
                rule: "TIER3_DESTINATION".into(),
                pass: view.tier < 3 || view.installed_tpp == 0,
                detail: format!(
                    "Tier {} on {date}, {} TPP of controlled chips installed",
                    view.tier, view.installed_tpp
                ),
            });
            figures.country = Some(view);
        }
        _ => {}
    }
    figures.rules = rules;
    figures
}

/// The records a bundle includes for `subject`: its chain, the tier changes, the genesis and
/// commitment records, and the registrations of an entity's parents.
fn chain(reader: &Reader, subject: &Subject, latest: Option<u64>) -> Result<Vec<u64>, Error> {
    let mut seqs = Vec::new();
    let mut next = latest;
    while let Some(seq) = next {
        let record = reader.record(seq)?;
        let position = record
            .subjects()
            .iter()
            .position(|other| other == subject)
            .ok_or_else(|| failed(format!("record {seq} does not concern {subject}")))?;
        seqs.push(seq);
        // Stored records are decoded without checking their back-links against their subjects
        // (`verify` does): a short list is an error here, not a panic.
        next = *record
            .links
            .get(position)
            .ok_or_else(|| failed(format!("record {seq} has no back-link for {subject}")))?;
        if next.is_some_and(|previous| previous >= seq) {
            return Err(failed(format!("record {seq} links forward")));
        }
    }
    Ok(seqs)
}

/// Builds a compliance bundle for `subject` as of `date`, at a signed checkpoint whose last
/// record is a commitment.
pub fn build(
    reader: &Reader,
    subject: &Subject,
    date: Date,
    checkpoint: &Verified,
) -> Result<String, Error> {
    let size = checkpoint.size;
    if size < 2 || size > reader.size() || reader.root_at(size)? != checkpoint.root {
        return Err(failed(format!(
            "the checkpoint of {size} records does not match this ledger"
        )));
    }
    let commitment_record = reader.record(size - 1)?;
    let Body::Commitment(commitment_event) = &commitment_record.event.body else {
        return Err(Error::Usage(format!(
            "record {} is not a commitment: sign a checkpoint (`chipledger checkpoint`) and use it",
            size - 1
        )));
    };
    let (state, links) = reader.prefix_state(size - 1)?;
    let leaves = commitment::leaves(&state, &links);
    let tree = commitment::tree(&leaves);
    if tree.root() != commitment_event.subjects_root {
        return Err(failed(
            "the commitment record does not match a replay of the log",
        ));
    }
    let mut included: BTreeSet<u64> = [0, size - 1].into_iter().collect();
    let mut subjects = Vec::new();
    for wanted in [subject.clone(), Subject::Tiers] {
        let index = leaves
            .iter()
            .position(|leaf| leaf.subject == wanted)
            .ok_or_else(|| Error::Usage(format!("no record concerns {wanted}")))?;
        let leaf = &leaves[index];
        included.extend(chain(reader, &wanted, leaf.latest)?);
        subjects.push(SubjectProof {
            subject: wanted.to_string(),
            latest: leaf.latest,
            digest: base64(&leaf.digest),
            index: index as u64,
            proof: tree
                .prove(index as u64)
                .map_err(failed)?
                .iter()
                .map(|hash| base64(hash))
                .collect(),
        });
    }
    if let Subject::Entity(id) = subject {
        let mut next = state
            .facts
            .entities
            .get(id)
            .and_then(|fact| fact.parent.clone());
        while let Some(parent) = next {
            let fact = state
                .facts
                .entities
                .get(&parent)
                .ok_or_else(|| failed(format!("parent {parent} is not registered")))?;
            if !included.insert(fact.seq) {
                break;
            }
            next = fact.parent.clone();
        }
    }
    let tree_at = reader.tree_at(size)?;
    let proofs = tree_at.reader(reader);
    let mut records = Vec::with_capacity(included.len());
    for seq in included {
        let (bytes, _) = reader.record_with_bytes(seq)?;
        let proof = tlog_tiles::prove_record(size, seq, &proofs)
            .map_err(|error| failed(format!("cannot prove record {seq}: {error}")))?;
        records.push(ProvenRecord {
            seq,
            record: base64(&bytes),
            proof: proof.iter().map(|hash| base64(&hash.0)).collect(),
        });
    }
    let as_of_state = reader.state_at(date, size)?;
    let figures =
        serde_json::to_value(figures(&as_of_state, subject, date)).expect("figures serialize");
    let bundle = Bundle {
        format: FORMAT.to_string(),
        subject: subject.to_string(),
        as_of: date.to_string(),
        checkpoint: checkpoint.note.clone(),
        subjects,
        records,
        figures,
    };
    Ok(serde_json::to_string(&bundle).expect("bundles serialize") + "\n")
}

/// What a verified bundle shows.
#[derive(Debug)]
pub struct Shown {
    pub checkpoint: Verified,
    pub subject: Subject,
    pub as_of: Date,
    pub records: usize,
    pub figures: serde_json::Value,
}

/// Verifies a compliance bundle with the ledger's verifier key.
pub fn verify(text: &str, vkey: &str) -> Result<Shown, Error> {
    let bundle: Bundle = canonical_json(text, "compliance bundle")?;
    if bundle.format != FORMAT {
        return Err(failed(format!(
            "the format is `{}`, not {FORMAT}",
            bundle.format
        )));
    }
    let subject = Subject::parse(&bundle.subject).map_err(failed)?;
    if !matches!(subject, Subject::Entity(_) | Subject::Country(_)) {
        return Err(failed("a bundle proves an entity or a country"));
    }
    let as_of = Date::parse(&bundle.as_of).map_err(failed)?;
    let checkpoint = checkpoint::verify(&bundle.checkpoint, vkey)?;
    let size = checkpoint.size;

    // Every record: in the checkpoint's tree, canonical, in order, once.
    let mut records: BTreeMap<u64, Record> = BTreeMap::new();
    for proven in &bundle.records {
        let bytes = crate::view::from_base64(&proven.record)
            .map_err(|error| failed(format!("record {}: {error}", proven.seq)))?;
        let proof = proven
            .proof
            .iter()
            .enumerate()
            .map(|(index, hash)| {
                hash32(hash, &format!("record {} proof hash {index}", proven.seq))
                    .map(|h| h.to_vec())
            })
            .collect::<Result<Vec<_>, _>>()?;
        rfc6962::verify_inclusion(
            proven.seq,
            size,
            &checkpoint.root,
            &codec::leaf_hash(&bytes),
            &proof,
        )
        .map_err(|error| failed(format!("record {}: {error}", proven.seq)))?;
        let record = codec::decode_record(&bytes)
            .map_err(|error| failed(format!("record {}: {error}", proven.seq)))?;
        if record.seq != proven.seq {
            return Err(failed(format!(
                "record {} says it is record {}",
                proven.seq, record.seq
            )));
        }
        if let Some((last, _)) = records.last_key_value() {
            if *last >= proven.seq {
                return Err(failed(format!(
                    "record {} is out of order or repeated",
                    proven.seq
                )));
            }
        }
        records.insert(proven.seq, record);
    }
    let genesis = records
        .get(&0)
        .filter(|record| matches!(record.event.body, Body::Genesis(_)))
        .ok_or_else(|| failed("the bundle lacks the genesis record"))?;
    let commitment = match records.get(&(size - 1)).map(|record| &record.event.body) {
        Some(Body::Commitment(commitment)) if commitment.size == size - 1 => commitment.clone(),
        _ => {
            return Err(failed(format!(
                "record {} is not the commitment of the checkpoint",
                size - 1
            )));
        }
    };

    // The subject leaves: in the commitment, and each one's records all present.
    let expected: Vec<String> = vec![subject.to_string(), Subject::Tiers.to_string()];
    let listed: Vec<&String> = bundle.subjects.iter().map(|proof| &proof.subject).collect();
    if listed != expected.iter().collect::<Vec<_>>() {
        return Err(failed(format!(
            "the bundle must prove {} and tiers",
            subject
        )));
    }
    let mut belongs: BTreeSet<u64> = [0, size - 1].into_iter().collect();
    let mut leaves = Vec::new();
    for proof in &bundle.subjects {
        let leaf_subject = Subject::parse(&proof.subject).map_err(failed)?;
        let leaf_digest = hash32(&proof.digest, &format!("the digest of {}", proof.subject))?;
        let hashes = proof
            .proof
            .iter()
            .enumerate()
            .map(|(index, hash)| {
                hash32(hash, &format!("{} leaf proof hash {index}", proof.subject))
                    .map(|h| h.to_vec())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = codec::leaf_hash(&leaf_bytes(&leaf_subject, proof.latest, &leaf_digest));
        rfc6962::verify_inclusion(
            proof.index,
            commitment.subject_count,
            &commitment.subjects_root,
            &leaf,
            &hashes,
        )
        .map_err(|error| {
            failed(format!(
                "{} is not in the commitment: {error}",
                proof.subject
            ))
        })?;
        let mut next = proof.latest;
        while let Some(seq) = next {
            if seq >= size - 1 {
                return Err(failed(format!(
                    "{}'s latest record {seq} is not before the commitment",
                    proof.subject
                )));
            }
            let record = records.get(&seq).ok_or_else(|| {
                failed(format!(
                    "record {seq} of {} is missing: the bundle is incomplete",
                    proof.subject
                ))
            })?;
            let position = record
                .subjects()
                .iter()
                .position(|other| *other == leaf_subject)
                .ok_or_else(|| {
                    failed(format!("record {seq} does not concern {}", proof.subject))
                })?;
            belongs.insert(seq);
            next = record.links[position];
            if next.is_some_and(|previous| previous >= seq) {
                return Err(failed(format!("record {seq} links forward")));
            }
        }
        leaves.push((leaf_subject, leaf_digest));
    }
    // The parents' registrations, for the headquarters tier.
    if let Subject::Entity(id) = &subject {
        let registration = |entity: &crate::name::Id| {
            records
                .iter()
                .find_map(|(seq, record)| match &record.event.body {
                    Body::Entity(event) if event.entity == *entity => {
                        Some((*seq, event.parent.clone()))
                    }
                    _ => None,
                })
        };
        let mut next = registration(id).and_then(|(_, parent)| parent);
        while let Some(parent) = next {
            let (seq, grandparent) = registration(&parent)
                .ok_or_else(|| failed(format!("the registration of parent {parent} is missing")))?;
            if !belongs.insert(seq) {
                break;
            }
            next = grandparent;
        }
    }
    if let Some(extra) = records.keys().find(|seq| !belongs.contains(seq)) {
        return Err(failed(format!(
            "record {extra} does not belong to the bundle"
        )));
    }

    // The records add up to what the commitment says, and to the figures.
    let mut state = State::from_genesis(genesis).map_err(|error| failed(error.0))?;
    state.counters.lenient = true;
    let mut as_of_state = state.clone();
    for record in records.values() {
        state
            .apply(record)
            .map_err(|error| failed(format!("record {}: {error}", record.seq)))?;
        if TimelineKey::of(record).date <= as_of {
            as_of_state
                .apply(record)
                .map_err(|error| failed(format!("record {}: {error}", record.seq)))?;
        }
    }
    for (leaf_subject, leaf_digest) in &leaves {
        if digest(&project(&state, leaf_subject)) != *leaf_digest {
            return Err(failed(format!(
                "the records of {leaf_subject} do not add up to what the commitment says: a record was left out or changed"
            )));
        }
    }
    let recomputed =
        serde_json::to_value(figures(&as_of_state, &subject, as_of)).expect("figures serialize");
    if recomputed != bundle.figures {
        return Err(failed(
            "the bundle's figures differ from the figures its records give",
        ));
    }
    Ok(Shown {
        checkpoint,
        subject,
        as_of,
        records: records.len(),
        figures: recomputed,
    })
}
