//! Migration from a running IMAP server (`bulwark migrate --from imaps://…`): the client
//! ([`client`], over the sans-I/O [`frame`]r and `imap-proto`) and the copy itself
//! ([`copy`]).

pub mod client;
pub mod copy;
pub mod frame;
