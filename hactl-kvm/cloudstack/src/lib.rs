//! CloudStack API client for hactl-kvm, and the mapping of CloudStack's
//! inventory onto the coordinator core.
//!
//! * [`Client`]: async (tokio, reqwest with rustls) client. Every request is
//!   signed as CloudStack's `ApiServer.verifyRequest` checks it ([`sign`]),
//!   with `signatureversion=3` and `expires`. HTTP and HTTPS; HTTPS trusts
//!   the system CA store plus an optional CA file, and verification is never
//!   turned off. Per-request timeouts; bounded retries only for reads and
//!   only after transport errors. List calls are paged until every item is
//!   read; async commands are polled with `queryAsyncJobResult`, bounded.
//! * [`Error`] names the cause: credentials refused, API unreachable, API
//!   error with its `errorcode`, job failure or timeout, malformed answer.
//!   No error, log line or `Debug` output carries the secret key.
//! * [`inventory`]: pure mapping of zones/pods/clusters/hosts onto
//!   [`hactl_core::Inventory`], changes as [`hactl_core::InventoryChange`],
//!   and health per host; its docs hold the table of every state mapped.

pub mod client;
pub mod error;
pub mod inventory;
pub mod sign;
pub mod types;

pub use client::{Client, ClientConfig, Credentials, Params};
pub use error::Error;
pub use types::{
    AllocationState, ClusterInfo, Configuration, HostHa, HostInfo, HostStatus, ManagedState, Oobm,
    Pod, ResourceState, Zone,
};
