//! Spam and phishing scoring of inbound mail (issue 16), a stage of the delivery pipeline
//! after the authentication checks:
//!
//! * [`rules`]: the score of a message from its content and the `Authentication-Results`
//!   the trust stage wrote — GTUBE, SPF/DKIM/DMARC failures, missing or odd header fields,
//!   and phishing signals (a display name carrying another address, look-alike (IDN) or
//!   mixed-script names, `Reply-To` elsewhere, "verify your account" wording);
//! * [`dnsbl`]: the client's IP in the configured DNS block lists;
//! * [`hook`]: the thresholds — an `X-Spam-Status` field on every scored copy, Junk from
//!   `junk_score`, `550 5.7.1` from `reject_score`.
//!
//! * [`bayes`] and [`trainer`]: each account's own classifier, taught by moving mail into
//!   and out of Junk, worth ±points per recipient;
//! * [`clamav`]: viruses, by ClamAV's daemon over its socket (`[spam] clamav`): refused.
//!
//! Mail from authenticated clients and mail this server makes is not scored (it is scanned
//! for viruses).

pub mod bayes;
pub mod clamav;
pub mod dnsbl;
pub mod hook;
pub mod rules;
pub mod senders;
pub mod trainer;

pub use clamav::ClamAvHook;
pub use hook::{SpamConfig, SpamHook};
pub use rules::{Context, Score, score_message, score_message_with};
