//! The configuration error: one type for the plugin configuration and each of its parts
//! (policies, attribution, streaming, audit delivery, every sink), so that the module that
//! reads the document and the modules that check its parts need not import each other.

use std::fmt;

/// What is wrong with a configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The document is not JSON, or not of the expected shape where no field can be named
    /// (a missing field, an unknown one: serde's message names it).
    Document(String),
    /// A field's value is wrong: its path (`audit.s3.prefix`) and why.
    Field { at: String, message: String },
}

impl ConfigError {
    /// An error about the field at `at` (relative to whoever checks it). Not generic and
    /// not inlined: there are dozens of call sites, and each copy costs the module bytes.
    #[inline(never)]
    pub fn field(at: &str, message: &str) -> ConfigError {
        ConfigError::Field {
            at: at.to_string(),
            message: message.to_string(),
        }
    }

    /// The same error seen from the object that holds the checked part under `parent`:
    /// `token` checked by the HEC sink is `audit.splunk_hec.token` in the document.
    pub fn within(self, parent: &str) -> ConfigError {
        match self {
            ConfigError::Field { at, message } => ConfigError::Field {
                at: if at.is_empty() {
                    parent.to_string()
                } else {
                    format!("{parent}.{at}")
                },
                message,
            },
            document => document,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Document(message) => write!(f, "plugin configuration: {message}"),
            ConfigError::Field { at, message } if at.is_empty() => f.write_str(message),
            ConfigError::Field { at, message } => write!(f, "{at}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn paths_grow_from_the_part_to_the_document() {
        let e = ConfigError::field("token", "must not be empty")
            .within("splunk_hec")
            .within("audit");
        assert_eq!(e.to_string(), "audit.splunk_hec.token: must not be empty");
        let e = ConfigError::field("", "bad").within("policy");
        assert_eq!(e.to_string(), "policy: bad");
        let e = ConfigError::Document("EOF while parsing".into()).within("audit");
        assert_eq!(e.to_string(), "plugin configuration: EOF while parsing");
    }
}
