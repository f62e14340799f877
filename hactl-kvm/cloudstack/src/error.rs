//! Errors that name their cause. None of them carries the secret key, the
//! signature or the request URL.

use std::time::Duration;

/// Why a CloudStack call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// CloudStack refused the credentials: 401 (unknown API key, bad
    /// signature, expired request) or 432 (command not available to this
    /// account, e.g. not an admin key).
    #[error("CloudStack refused the request to {command} (errorcode {errorcode}): {errortext}")]
    AuthRefused {
        /// The command.
        command: String,
        /// 401 or 432.
        errorcode: u32,
        /// CloudStack's text.
        errortext: String,
    },
    /// No answer: connection refused or dropped, DNS, TLS handshake or
    /// certificate verification failure, or the request timed out.
    #[error("CloudStack API unreachable for {command}{}: {detail}", if *.timed_out { " (timed out)" } else { "" })]
    Unreachable {
        /// The command.
        command: String,
        /// True when the request timed out.
        timed_out: bool,
        /// The transport error with its causes (e.g. the TLS verification
        /// failure), without the URL.
        detail: String,
        /// The transport error (its URL stripped).
        #[source]
        source: reqwest::Error,
    },
    /// CloudStack answered with an API error.
    #[error("CloudStack API error for {command}: errorcode {errorcode}, cserrorcode {cserrorcode:?}: {errortext}")]
    Api {
        /// The command.
        command: String,
        /// `errorcode` (also the HTTP status): 431 parameter error, 530 internal ...
        errorcode: u32,
        /// `cserrorcode`, CloudStack's exception code, when given.
        cserrorcode: Option<u32>,
        /// `errortext`.
        errortext: String,
    },
    /// An async job ended with `jobstatus` 2.
    #[error("CloudStack job {jobid} ({command}) failed: errorcode {errorcode}: {errortext}")]
    JobFailed {
        /// The command that started the job.
        command: String,
        /// The job id.
        jobid: String,
        /// `jobresult.errorcode` (or `jobresultcode`).
        errorcode: u32,
        /// `jobresult.errortext`.
        errortext: String,
    },
    /// An async job was still pending when the polling bound ran out.
    #[error("CloudStack job {jobid} ({command}) still pending after {waited:?}")]
    JobTimeout {
        /// The command that started the job.
        command: String,
        /// The job id.
        jobid: String,
        /// How long it was polled.
        waited: Duration,
    },
    /// The answer was not what CloudStack sends.
    #[error("malformed CloudStack response to {command}: {detail}")]
    Malformed {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// Bad client configuration (endpoint URL, CA file).
    #[error("CloudStack client configuration: {0}")]
    Config(String),
}

impl Error {
    /// True for errors worth retrying for an idempotent read: the API could
    /// not be reached.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }
}
