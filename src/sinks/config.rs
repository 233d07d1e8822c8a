//! Audit delivery's configuration, `audit` in the plugin configuration: batching, the
//! per-worker buffer bound, the call timeout and the sinks. Each sink's configuration and its
//! checks live in the sink's own file; this file only lists them.

use serde_json::Value;

use super::azure_monitor::AzureConfig;
use super::datadog_logs::DatadogConfig;
use super::delivery::Limits;
use super::elasticsearch::ElasticsearchConfig;
use super::s3::S3Config;
use super::splunk_hec::SplunkHecConfig;
use super::Sink;
use crate::audit::chain::TrailConfig;
use crate::config::read::{self, Fields, Path, ReadError};
use crate::error::ConfigError;

/// Batching and buffering of audit records, and the sinks (several at a time).
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub flush_interval_ms: u64,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    pub buffer_max_bytes: usize,
    pub timeout_ms: u64,
    /// A VM whose ledger (`sinks::ledger`) was not written for this long is presumed dead.
    pub vm_stale_ms: u64,
    /// The hash chain's checkpoints: cadence and signing key (`audit::chain`).
    pub trail: TrailConfig,
    pub splunk_hec: Option<SplunkHecConfig>,
    pub datadog: Option<DatadogConfig>,
    pub elasticsearch: Option<ElasticsearchConfig>,
    pub s3: Option<S3Config>,
    pub azure_monitor: Option<AzureConfig>,
}

crate::deserialize_by_hand!(AuditConfig);

impl AuditConfig {
    /// `audit` (every field optional, unknown fields refused).
    pub fn read(v: Value, path: Path<'_>) -> Result<AuditConfig, ReadError> {
        let mut f = Fields::new(
            v,
            path,
            "struct AuditConfig",
            &[
                "flush_interval_ms",
                "batch_max_records",
                "batch_max_bytes",
                "buffer_max_bytes",
                "timeout_ms",
                "vm_stale_ms",
                "trail",
                "splunk_hec",
                "datadog",
                "elasticsearch",
                "s3",
                "azure_monitor",
            ],
        )?;
        let d = AuditConfig::default();
        Ok(AuditConfig {
            flush_interval_ms: f.or("flush_interval_ms", read::u64, d.flush_interval_ms)?,
            batch_max_records: f.or("batch_max_records", read::usize, d.batch_max_records)?,
            batch_max_bytes: f.or("batch_max_bytes", read::usize, d.batch_max_bytes)?,
            buffer_max_bytes: f.or("buffer_max_bytes", read::usize, d.buffer_max_bytes)?,
            timeout_ms: f.or("timeout_ms", read::u64, d.timeout_ms)?,
            vm_stale_ms: f.or("vm_stale_ms", read::u64, d.vm_stale_ms)?,
            trail: f.or("trail", TrailConfig::read, d.trail)?,
            splunk_hec: f.opt("splunk_hec", SplunkHecConfig::read)?,
            datadog: f.opt("datadog", DatadogConfig::read)?,
            elasticsearch: f.opt("elasticsearch", ElasticsearchConfig::read)?,
            s3: f.opt("s3", S3Config::read)?,
            azure_monitor: f.opt("azure_monitor", AzureConfig::read)?,
        })
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            flush_interval_ms: 1000,
            batch_max_records: 500,
            batch_max_bytes: 1_000_000,
            buffer_max_bytes: 8 * 1024 * 1024,
            timeout_ms: 5000,
            vm_stale_ms: 10_000,
            trail: TrailConfig::default(),
            splunk_hec: None,
            datadog: None,
            elasticsearch: None,
            s3: None,
            azure_monitor: None,
        }
    }
}

/// A sink's configuration, as delivery sees every sink.
pub trait SinkConfig {
    /// The sink's name: its key under `audit`, and its name in metrics, ledgers and `gap`
    /// records.
    fn name(&self) -> &'static str;
    /// Checks the fields; errors name the field within the sink's object (`token`).
    fn validate(&self) -> Result<(), ConfigError>;
    /// The sink of one worker. `gateway` is the gateway's instance id (what the sink names
    /// it by unless configured otherwise); `seed` differs per VM and sink.
    fn build(&self, gateway: &str, seed: u64) -> Box<dyn Sink>;
}

impl AuditConfig {
    /// The configured sinks, always in this order (it seeds each worker's sinks).
    pub fn sinks(&self) -> Vec<&dyn SinkConfig> {
        let mut out: Vec<&dyn SinkConfig> = Vec::new();
        if let Some(c) = &self.splunk_hec {
            out.push(c);
        }
        if let Some(c) = &self.datadog {
            out.push(c);
        }
        if let Some(c) = &self.elasticsearch {
            out.push(c);
        }
        if let Some(c) = &self.s3 {
            out.push(c);
        }
        if let Some(c) = &self.azure_monitor {
            out.push(c);
        }
        out
    }

    /// How each sink's delivery batches and buffers.
    pub fn limits(&self) -> Limits {
        Limits {
            batch_max_records: self.batch_max_records,
            batch_max_bytes: self.batch_max_bytes,
            buffer_max_bytes: self.buffer_max_bytes,
            flush_interval_ms: self.flush_interval_ms,
        }
    }

    /// Checks the bounds, then each sink; errors name the field within `audit`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: &str| Err(ConfigError::field(field, message));
        if self.flush_interval_ms < 10 || self.flush_interval_ms > 60_000 {
            return bad("flush_interval_ms", "must be between 10 and 60000");
        }
        if self.batch_max_records == 0 || self.batch_max_records > 10_000 {
            return bad("batch_max_records", "must be between 1 and 10000");
        }
        if self.batch_max_bytes < 1024 {
            return bad("batch_max_bytes", "must be at least 1024");
        }
        if self.buffer_max_bytes < self.batch_max_bytes {
            return bad("buffer_max_bytes", "must be at least audit.batch_max_bytes");
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return bad("timeout_ms", "must be between 1 and 60000");
        }
        if self.vm_stale_ms < 1_000 || self.vm_stale_ms > 3_600_000 {
            return bad("vm_stale_ms", "must be between 1000 and 3600000");
        }
        self.trail.validate().map_err(|e| e.within("trail"))?;
        for sink in self.sinks() {
            sink.validate().map_err(|e| e.within(sink.name()))?;
        }
        Ok(())
    }
}
