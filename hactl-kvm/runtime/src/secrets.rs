//! The secrets file: CloudStack's secret key and the BMC passwords / Kg,
//! kept apart from the configuration. It must be owned by root and not
//! readable by group or others (mode 0600 or stricter); anything else is
//! refused with the reason. `Debug` never shows a secret.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the secrets file was refused.
#[derive(Debug, Error)]
pub enum SecretsError {
    /// Cannot read it.
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Owned by someone else than root.
    #[error(
        "secrets file {path} is owned by uid {uid}, must be owned by root (chown root:root {path})"
    )]
    Owner {
        /// File.
        path: PathBuf,
        /// Owner.
        uid: u32,
    },
    /// Group or others may read or write it.
    #[error("secrets file {path} has mode {mode:04o}, must be 0600 (chmod 0600 {path}): group and others must not read it")]
    Mode {
        /// File.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
    },
    /// Not valid TOML for the schema. The decoder's message is not shown:
    /// it may quote a secret value.
    #[error(
        "secrets file {path}: invalid TOML or unknown key (check its syntax against the README)"
    )]
    Parse {
        /// File.
        path: PathBuf,
    },
}

/// A secret string: `Debug` prints `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// The value (only for handing it to the one place that needs it).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One BMC's credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcSecret {
    /// Password.
    pub password: Option<SecretString>,
    /// BMC key Kg, hexadecimal.
    pub kg_hex: Option<SecretString>,
}

/// `[cloudstack]` of the secrets file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudStackSecret {
    /// The API secret key.
    pub secret_key: SecretString,
}

/// The whole secrets file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// CloudStack.
    #[serde(default)]
    pub cloudstack: CloudStackSecret,
    /// Credentials for every BMC without its own entry.
    #[serde(default)]
    pub bmc: BmcSecret,
    /// Per host (CloudStack host name or id).
    #[serde(default)]
    pub host: BTreeMap<String, BmcSecret>,
}

impl Secrets {
    /// Reads the file after checking its owner and mode.
    pub fn load(path: &Path) -> Result<Secrets, SecretsError> {
        let meta = std::fs::metadata(path).map_err(|source| SecretsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.uid() != 0 {
            return Err(SecretsError::Owner {
                path: path.to_path_buf(),
                uid: meta.uid(),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::Mode {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|_| SecretsError::Parse {
            path: path.to_path_buf(),
        })
    }

    /// The BMC credentials of a host: its own entry (by name, then id),
    /// else the default.
    pub fn bmc_for(&self, name: &str, id: &str) -> &BmcSecret {
        self.host
            .get(name)
            .or_else(|| self.host.get(id))
            .unwrap_or(&self.bmc)
    }
}
