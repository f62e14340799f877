//! Typed records of the list responses the coordinator reads. Unknown fields
//! are ignored; enum values CloudStack may add later are kept as `Other`.

use serde::{Deserialize, Deserializer};

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this crate does not know (kept verbatim).
            Other(String),
        }

        impl $name {
            /// The value as CloudStack spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => stringify!($variant),)*
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $(stringify!($variant) => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::from(s.as_str()))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `allocationstate` of a zone, pod or cluster.
    AllocationState { Enabled, Disabled }
);
string_enum!(
    /// `managedstate` of a cluster.
    ManagedState { Managed, PrepareUnmanaged, Unmanaged, PrepareUnmanagedError }
);
string_enum!(
    /// Host `state` (CloudStack's host `Status`: the agent's connection).
    HostStatus { Creating, Connecting, Up, Down, Disconnected, Alert, Removed, Error, Rebalancing, Unknown }
);
string_enum!(
    /// Host `resourcestate`.
    ResourceState {
        Creating, Enabled, Disabled, PrepareForMaintenance, ErrorInPrepareForMaintenance,
        Maintenance, ErrorInMaintenance, Error, Degraded
    }
);

/// A string field CloudStack sometimes sends as a number (e.g. OOBM `port`).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// A zone (`listZones`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Zone {
    /// UUID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Enabled or Disabled.
    pub allocationstate: AllocationState,
}

/// A pod (`listPods`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pod {
    /// UUID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// The zone's UUID.
    pub zoneid: String,
    /// Enabled or Disabled.
    pub allocationstate: AllocationState,
}

/// A cluster (`listClusters`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterInfo {
    /// UUID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// The pod's UUID.
    pub podid: String,
    /// The zone's UUID.
    pub zoneid: String,
    /// Enabled or Disabled.
    pub allocationstate: AllocationState,
    /// Managed, Unmanaged, ...; absent is read as "not managed" (do not act).
    #[serde(default)]
    pub managedstate: Option<ManagedState>,
    /// `KVM`, `VMware`, ...
    #[serde(default)]
    pub hypervisortype: Option<String>,
}

/// A host's out-of-band management (BMC) configuration as CloudStack keeps it.
/// CloudStack never returns the password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Oobm {
    /// OOBM enabled for the host.
    #[serde(default)]
    pub enabled: bool,
    /// `ipmitool` or `redfish`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub driver: Option<String>,
    /// BMC address.
    #[serde(default, deserialize_with = "lenient_string")]
    pub address: Option<String>,
    /// BMC port (a string in CloudStack's response).
    #[serde(default, deserialize_with = "lenient_string")]
    pub port: Option<String>,
    /// BMC user name.
    #[serde(default, deserialize_with = "lenient_string")]
    pub username: Option<String>,
    /// `On`, `Off`, `Unknown`, `Disabled`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub powerstate: Option<String>,
}

/// CloudStack's own Host HA configuration of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HostHa {
    /// CloudStack's Host HA is enabled for this host: it may fence it itself.
    #[serde(default)]
    pub haenable: bool,
    /// CloudStack's HA state (`Available`, `Fencing`, ...).
    #[serde(default, deserialize_with = "lenient_string")]
    pub hastate: Option<String>,
    /// The HA provider (`kvmhaprovider`).
    #[serde(default, deserialize_with = "lenient_string")]
    pub haprovider: Option<String>,
}

/// A host (`listHosts`), the fields the coordinator uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HostInfo {
    /// UUID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Agent connection state.
    pub state: HostStatus,
    /// Resource (administrative) state.
    pub resourcestate: ResourceState,
    /// Management IP address (also names the storage heartbeat file `hb-<ip>`).
    #[serde(default)]
    pub ipaddress: Option<String>,
    /// Cluster UUID.
    #[serde(default)]
    pub clusterid: Option<String>,
    /// Pod UUID.
    #[serde(default)]
    pub podid: Option<String>,
    /// Zone UUID.
    #[serde(default)]
    pub zoneid: Option<String>,
    /// Last ping, as CloudStack prints it (a date derived from its internal
    /// ms>>10 counter, so only its changes mean anything).
    #[serde(default, deserialize_with = "lenient_string")]
    pub lastpinged: Option<String>,
    /// The management server holding the agent's connection.
    #[serde(default, deserialize_with = "lenient_string")]
    pub managementserverid: Option<String>,
    /// `KVM`, ...
    #[serde(default)]
    pub hypervisor: Option<String>,
    /// `Routing` for hypervisor hosts.
    #[serde(default, rename = "type")]
    pub host_type: Option<String>,
    /// OOBM (BMC) configuration.
    #[serde(default)]
    pub outofbandmanagement: Option<Oobm>,
    /// CloudStack Host HA configuration.
    #[serde(default)]
    pub hostha: Option<HostHa>,
}

/// A global setting (`listConfigurations`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Configuration {
    /// Setting name.
    pub name: String,
    /// Value (absent when unset).
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: Option<String>,
    /// Scope (`global`, `cluster`, ...).
    #[serde(default, deserialize_with = "lenient_string")]
    pub scope: Option<String>,
    /// Category.
    #[serde(default, deserialize_with = "lenient_string")]
    pub category: Option<String>,
}
