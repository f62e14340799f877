//! What the local Corosync runs with, read from its cmap, and the check of the `[cluster]`
//! settings against it at start: a configuration that disagrees with Corosync is refused before
//! the node joins the group, because each mismatch breaks an assumption of the safety argument
//! (`hactl-kvm/docs/replication.md`).

use std::time::Duration;

use rust_corosync::cmap;
use thiserror::Error;

use crate::node::NodeError;

/// The facts of the running Corosync that the `[cluster]` settings depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorosyncFacts {
    /// Effective token timeout (`runtime.config.totem.token`: Corosync stretches the configured
    /// one by `token_coefficient` per node beyond two).
    pub token_ms: u32,
    /// Effective consensus timeout (`runtime.config.totem.consensus`).
    pub consensus_ms: u32,
    /// Nodes in corosync.conf's nodelist.
    pub nodelist: usize,
    /// votequorum's `two_node` mode.
    pub two_node: bool,
}

impl CorosyncFacts {
    /// How long Corosync may take to tell a member cut off the ring that it lost it.
    pub fn split_detection(&self) -> Duration {
        Duration::from_millis(u64::from(self.token_ms) + u64::from(self.consensus_ms))
    }
}

/// A `[cluster]` setting that disagrees with the running Corosync.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterMismatch {
    /// A majority is counted against the wrong number of nodes.
    #[error(
        "[cluster] cluster_size = {configured} but Corosync's nodelist has {nodelist} node(s): \
         a majority would be counted against the wrong number; set cluster_size = {nodelist}"
    )]
    ClusterSize {
        /// `cluster_size`.
        configured: usize,
        /// Nodes in the nodelist.
        nodelist: usize,
    },
    /// A new active could act before a cut-off former active has seen the split.
    #[error(
        "[cluster] takeover_grace_ms = {grace_ms} does not exceed Corosync's token ({token_ms} ms) \
         + consensus ({consensus_ms} ms) = {} ms: a cut-off former active might not yet have \
         closed its power gate when the new one acts; raise takeover_grace_ms above it",
        token_ms + consensus_ms
    )]
    GraceTooShort {
        /// `takeover_grace_ms`.
        grace_ms: u64,
        /// Effective token timeout.
        token_ms: u64,
        /// Effective consensus timeout.
        consensus_ms: u64,
    },
}

/// Checks the `[cluster]` settings against `facts`.
pub fn check(
    cluster_size: usize,
    takeover_grace: Duration,
    facts: &CorosyncFacts,
) -> Result<(), ClusterMismatch> {
    if cluster_size != facts.nodelist {
        return Err(ClusterMismatch::ClusterSize {
            configured: cluster_size,
            nodelist: facts.nodelist,
        });
    }
    if takeover_grace <= facts.split_detection() {
        return Err(ClusterMismatch::GraceTooShort {
            grace_ms: takeover_grace.as_millis() as u64,
            token_ms: facts.token_ms.into(),
            consensus_ms: facts.consensus_ms.into(),
        });
    }
    Ok(())
}

fn number(h: &cmap::Handle, key: &str) -> Result<u64, NodeError> {
    let data = cmap::get(h, key).map_err(|err| NodeError::Corosync {
        call: "cmap_get",
        err,
    })?;
    match data {
        cmap::Data::UInt8(v) => Ok(v.into()),
        cmap::Data::UInt16(v) => Ok(v.into()),
        cmap::Data::UInt32(v) => Ok(v.into()),
        cmap::Data::UInt64(v) => Ok(v),
        _ => Err(NodeError::Config(
            "a Corosync timing key in cmap is not an unsigned number",
        )),
    }
}

/// Reads the facts from the local Corosync's cmap.
pub fn read() -> Result<CorosyncFacts, NodeError> {
    let h = cmap::initialize(cmap::Map::Icmap).map_err(|err| NodeError::Corosync {
        call: "cmap_initialize",
        err,
    })?;
    let result = (|| {
        let token_ms = number(&h, "runtime.config.totem.token")? as u32;
        let consensus_ms = number(&h, "runtime.config.totem.consensus")? as u32;
        // Absent when votequorum runs without it (older versions): off.
        let two_node = number(&h, "runtime.votequorum.two_node").unwrap_or(0) != 0;
        let iter =
            cmap::CmapIterStart::new(&h, "nodelist.node.").map_err(|err| NodeError::Corosync {
                call: "cmap_iter_init",
                err,
            })?;
        let nodelist = iter
            .into_iter()
            .filter(|e| e.key_name().ends_with(".nodeid"))
            .count();
        Ok(CorosyncFacts {
            token_ms,
            consensus_ms,
            nodelist,
            two_node,
        })
    })();
    let _ = cmap::finalize(&h);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three nodes with token 1000 ms as measured: Corosync runs token 1650, consensus 1980.
    const THREE: CorosyncFacts = CorosyncFacts {
        token_ms: 1650,
        consensus_ms: 1980,
        nodelist: 3,
        two_node: false,
    };

    #[test]
    fn the_defaults_fit_a_three_node_cluster_with_a_one_second_token() {
        assert_eq!(check(3, Duration::from_millis(4000), &THREE), Ok(()));
    }

    #[test]
    fn a_cluster_size_other_than_the_nodelist_is_refused() {
        let e = check(2, Duration::from_millis(4000), &THREE).unwrap_err();
        assert_eq!(
            e,
            ClusterMismatch::ClusterSize {
                configured: 2,
                nodelist: 3
            }
        );
        assert!(e.to_string().contains("set cluster_size = 3"), "{e}");
        assert!(check(5, Duration::from_millis(4000), &THREE).is_err());
    }

    #[test]
    fn a_grace_not_above_token_plus_consensus_is_refused() {
        for grace in [0, 3000, 3630] {
            let e = check(3, Duration::from_millis(grace), &THREE).unwrap_err();
            assert!(
                matches!(e, ClusterMismatch::GraceTooShort { grace_ms, .. } if grace_ms == grace),
                "{e}"
            );
            assert!(e.to_string().contains("= 3630 ms"), "{e}");
        }
        assert_eq!(check(3, Duration::from_millis(3631), &THREE), Ok(()));
    }
}
