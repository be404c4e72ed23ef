//! Getting a new password from the operator: standard input for scripts, a no-echo prompt on
//! a terminal, and a minimal strength check.

use anyhow::{Context, bail};
use std::io::{BufRead, IsTerminal};

// The account password rules live in `bulwark_auth` (shared with the web password change).

/// Reads the password: first line of stdin with `--password-stdin`, else a prompt on a TTY.
pub fn read_new_password(from_stdin: bool, address: &str) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!(
                "no terminal to prompt for a password on; pass --password-stdin and write the password to standard input"
            );
        }
        let first = rpassword::prompt_password(format!("New password for {address}: "))
            .context("cannot read the password")?;
        let again =
            rpassword::prompt_password("Repeat it: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    };
    check_strength(&password, address)?;
    Ok(password)
}

/// Refuses empty, short, overlong and address-equal passwords.
pub fn check_strength(password: &str, address: &str) -> anyhow::Result<()> {
    bulwark_auth::check_password_strength(password, address).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_check_refuses_empty_short_and_address_passwords() {
        assert!(check_strength("", "alice@example.test").is_err());
        assert!(check_strength("   ", "alice@example.test").is_err());
        assert!(check_strength("short", "alice@example.test").is_err());
        assert!(check_strength("alice@example.test", "alice@example.test").is_err());
        assert!(check_strength("ALICEBOB", "alicebob@example.test").is_err());
        assert!(check_strength("correct horse", "alice@example.test").is_ok());
    }
}
