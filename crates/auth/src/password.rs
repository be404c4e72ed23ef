//! argon2id hashing (RFC 9106) and app-password generation.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;

/// Hashes with argon2id and the crate's default (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

/// Constant-time verification; a malformed stored hash never verifies.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Shortest acceptable account password (NIST SP 800-63B §5.1.1.2: at least 8).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest acceptable account password; argon2 input beyond this only costs time.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// The rules for a new account password (admin CLI and web alike): not empty, at least
/// [`MIN_PASSWORD_LEN`] and at most [`MAX_PASSWORD_LEN`] characters, not the address itself.
pub fn check_password_strength(password: &str, address: &str) -> Result<(), String> {
    if password.trim().is_empty() {
        return Err("the password is empty".into());
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password is too weak: it has {chars} characters, at least {MIN_PASSWORD_LEN} are needed"
        ));
    }
    if chars > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_LEN} characters"
        ));
    }
    let local = address.split('@').next().unwrap_or(address);
    if password.eq_ignore_ascii_case(address) || password.eq_ignore_ascii_case(local) {
        return Err("the password is too weak: it is the address itself".into());
    }
    Ok(())
}

/// Alphabet without look-alikes (no 0/o, 1/l/i).
const APP_PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A generated app password: four groups of four characters, ~79 bits of entropy.
pub fn generate_app_password() -> String {
    let mut rng = rand::thread_rng();
    let groups: Vec<String> = (0..4)
        .map(|_| {
            (0..4)
                .map(|_| {
                    APP_PASSWORD_ALPHABET[rng.gen_range(0..APP_PASSWORD_ALPHABET.len())] as char
                })
                .collect()
        })
        .collect();
    groups.join("-")
}

/// Whether `s` has the shape of a generated app password (four dash-separated groups of
/// four characters of the app-password alphabet). During a per-account lock-out only such
/// input is checked at all, so the lock-out costs no argon2 work for other input.
pub fn looks_like_app_password(s: &str) -> bool {
    s.len() == 19
        && s.split('-').count() == 4
        && s.split('-')
            .all(|g| g.len() == 4 && g.bytes().all(|b| APP_PASSWORD_ALPHABET.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_and_verifies_only_the_right_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn app_passwords_are_distinct_and_well_formed() {
        let a = generate_app_password();
        let b = generate_app_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 19);
        assert_eq!(a.split('-').count(), 4);
        assert!(looks_like_app_password(&a) && looks_like_app_password(&b));
        assert!(!looks_like_app_password("correct horse battery"));
        assert!(!looks_like_app_password("abcd-efgh-jkmn-pqr1"));
    }
}
