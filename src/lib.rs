//! chipledger: an append-only, hash-chained ledger of AI compute under the AI diffusion
//! export-control framework. See ARCHITECTURE.md for the map of the modules.

pub mod affinity;
pub mod audit;
pub mod cli;
pub mod codec;
pub mod country;
pub mod date;
pub mod demo;
pub mod error;
pub mod input;
pub mod keys;
pub mod ledger;
pub mod merkle;
pub mod name;
pub mod proof;
pub mod report;
pub mod rules;
pub mod schema;
pub mod store;
pub mod verify;
pub mod view;
