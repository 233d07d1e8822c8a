//! The audit trail: the record schema, record ids and timestamps, the hash chain and its
//! checkpoints, and the ECS and OCSF mappings.

mod canonical;
pub mod chain;
pub mod ecs;
mod fields;
pub mod id;
pub mod ocsf;
pub mod policy_change;
pub mod record;
pub mod time;

pub use id::IdGenerator;
pub use record::{AuditRecord, SCHEMA_VERSION};
