//! chipledger: an append-only, hash-chained ledger of AI compute under the AI diffusion
//! export-control framework. See ARCHITECTURE.md for the map of the modules.

pub mod codec;
pub mod country;
pub mod date;
pub mod input;
pub mod name;
pub mod rules;
