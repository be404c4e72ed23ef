//! The account's signed-in sessions (devices). The list lives in `bulwark_jmap::devices` so
//! that web sign-ins and JMAP clients that took tokens from `POST /auth/token` share one list:
//! both are shown in the client's settings, and revoking either revokes its session id.

pub use bulwark_jmap::devices::*;
