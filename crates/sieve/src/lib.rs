//! Sieve mail filters (RFC 5228 with the registered extensions, through `sieve-rs`):
//!
//! * [`scripts`]: the account's scripts and which one is active, as items of the account
//!   collection `sieve` (every node and every protocol — ManageSieve, JMAP Sieve, the web
//!   client — sees the same), with the checks and limits every writer shares;
//! * [`filter`]: running the active script on a message being delivered, turned into what
//!   the delivery pipeline does with the account's copy (folders, flags, discard, reject,
//!   redirect, vacation).

pub mod filter;
pub mod limits;
pub mod scripts;

pub use filter::SieveFilter;

/// The Sieve extensions a script may `require` here and that do what they say on delivery
/// (ManageSieve `SIEVE` capability, JMAP `sieveExtensions`): the interpreter knows more, but
/// these are the ones whose actions and tests the filter carries out.
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "comparator-i;ascii-numeric",
    "body",
    "copy",
    "date",
    "index",
    "duplicate",
    "variables",
    "relational",
    "subaddress",
    "vacation",
    "vacation-seconds",
    "imap4flags",
    "include",
    "mailbox",
    "special-use",
    "regex",
    "environment",
    "mime",
    "foreverypart",
    "extracttext",
];
pub use scripts::{ScriptError, ScriptInfo};

/// For the fuzz target: compiles `data` as a script with the writers' checks and, if it
/// compiles, runs it once on a small message, answering every question "no".
pub fn fuzz_script(data: &[u8]) {
    let Ok(script) = scripts::check(data) else {
        return;
    };
    let runtime = sieve::Runtime::new().with_cpu_limit(limits::CPU_LIMIT);
    let raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: x\r\n\r\nbody\r\n";
    let mut instance = runtime.filter(raw);
    let mut input = sieve::Input::script("fuzz", script);
    let mut steps = 0;
    while let Some(result) = instance.run(input) {
        steps += 1;
        if result.is_err() || steps > 10_000 {
            break;
        }
        input = sieve::Input::False;
    }
}
