//! The `log` crate's records to the host's log, through [`super::abi::log`]: the SDK's own
//! logger `unwrap`s the host's answer, so a refused log call would trap the VM, and the
//! shipper's VM, which Envoy never restarts, logs from every callback. A log line the host
//! refuses is dropped; nothing else is.

struct HostLog;

static LOGGER: HostLog = HostLog;

/// The level logged: info and above.
const LEVEL: log::LevelFilter = log::LevelFilter::Info;

impl log::Log for HostLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= LEVEL
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // proxy-wasm's levels: 0 trace … 4 error.
        let level = match record.level() {
            log::Level::Trace => 0,
            log::Level::Debug => 1,
            log::Level::Info => 2,
            log::Level::Warn => 3,
            log::Level::Error => 4,
        };
        let _ = super::abi::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Installs the logger (once per VM; a second call changes nothing).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LEVEL);
    }
}
