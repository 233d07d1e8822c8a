//! The audit trail: the record schema, record ids and timestamps.

pub mod ecs;
pub mod id;
pub mod policy_change;
pub mod record;
pub mod time;

pub use id::IdGenerator;
pub use record::{AuditRecord, SCHEMA_VERSION};
