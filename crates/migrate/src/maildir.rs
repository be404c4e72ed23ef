//! Maildir reading and writing (<https://cr.yp.to/proto/maildir.html>, Maildir++ and
//! Dovecot's conventions).
//!
//! * Messages are the files of `cur/` and `new/` (`tmp/` holds unfinished deliveries).
//! * Flags: the letters after `:2,` in the file name: `D` draft, `F` flagged, `P` passed
//!   (forwarded), `R` replied, `S` seen, `T` trashed (deleted); lowercase letters are
//!   Dovecot keywords, `a` being line `0` of the folder's `dovecot-keywords` file.
//! * Folders: Maildir++ `.Sub.Folder` directories beside `cur/` (`.` separates levels), and
//!   the fs layout `Sub/Folder/` (a directory with `cur/` or `new/`), nested either way.
//! * Internal date: the file's mtime, as Dovecot keeps it; the file name's leading
//!   timestamp when the mtime cannot be read.

use crate::flags::{self, MAILDIR_FLAGS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One folder found in a Maildir tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// `/`-separated path below the root (`""` for the root itself); `Err` with a lossy
    /// rendering when a directory name is not UTF-8.
    pub name: Result<String, String>,
    pub dir: PathBuf,
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Every folder of the Maildir at `root` (the root first, then by name).
pub fn folders(root: &Path) -> std::io::Result<Vec<Folder>> {
    let mut out = Vec::new();
    if is_maildir(root) {
        out.push(Folder {
            name: Ok(String::new()),
            dir: root.to_path_buf(),
        });
    }
    walk(root, Ok(String::new()), &mut out, 0)?;
    out[usize::from(is_maildir(root))..].sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}

fn walk(
    dir: &Path,
    parent: Result<String, String>,
    out: &mut Vec<Folder>,
    depth: usize,
) -> std::io::Result<()> {
    // A deeper tree is a loop or hostile; 64 levels is far beyond any real one.
    if depth > 64 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file_name = entry.file_name();
        if matches!(file_name.to_str(), Some("cur" | "new" | "tmp" | "." | "..")) {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let own = match file_name.to_str() {
            Some(s) => {
                // Dovecot writes folder names in modified UTF-7 (RFC 3501 §5.1.3); a name
                // that is not valid modified UTF-7 (`R&D`) is taken as written. A `.`
                // within a level is `\2e` (Dovecot's listescape plugin).
                let levels: Vec<String> = s
                    .strip_prefix('.')
                    .unwrap_or(s)
                    .split('.')
                    .map(|level| {
                        let level = bulwark_core::imap_string::mutf7_decode(level)
                            .unwrap_or_else(|| level.to_string());
                        unescape_level(&level)
                    })
                    .collect();
                Ok(levels.join("/"))
            }
            None => Err(file_name.to_string_lossy().into_owned()),
        };
        let name = match (&parent, own) {
            (Ok(p), Ok(o)) if p.is_empty() => Ok(o),
            (Ok(p), Ok(o)) => Ok(format!("{p}/{o}")),
            (Ok(p), Err(o)) | (Err(p), Err(o)) | (Err(p), Ok(o)) => {
                Err(if p.is_empty() { o } else { format!("{p}/{o}") })
            }
        };
        if is_maildir(&path) {
            out.push(Folder {
                name: name.clone(),
                dir: path.clone(),
            });
        }
        walk(&path, name, out, depth + 1)?;
    }
    Ok(())
}

/// The files of a folder's `cur/` and `new/`, ordered by name (delivery time for the usual
/// `time.unique.host` names).
pub fn message_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            // Symbolic links count (a dangling one is reported as unreadable).
            if entry
                .file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .unwrap_or(false)
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                out.push(entry.path());
            }
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

/// The `dovecot-keywords` file of a folder: letter index → keyword.
pub fn read_keywords(dir: &Path) -> BTreeMap<usize, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("dovecot-keywords")) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let (n, k) = l.trim().split_once(' ')?;
            Some((n.parse().ok()?, k.trim().to_string()))
        })
        .collect()
}

/// The keywords of a message file name: its `:2,` letters (also `!2,` and `;2,`, used where
/// `:` cannot be in a file name).
pub fn name_keywords(file_name: &str, keywords: &BTreeMap<usize, String>) -> Vec<String> {
    let Some(pos) = [":2,", "!2,", ";2,"]
        .iter()
        .filter_map(|sep| file_name.rfind(sep))
        .max()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in file_name[pos + 3..].chars() {
        let k = if c.is_ascii_lowercase() {
            keywords
                .get(&((c as u8 - b'a') as usize))
                .and_then(|k| flags::keyword(k))
        } else {
            MAILDIR_FLAGS
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, k)| k.to_string())
        };
        if let Some(k) = k
            && !out.iter().any(|o: &String| o.eq_ignore_ascii_case(&k))
        {
            out.push(k);
        }
    }
    out.sort();
    out
}

/// The leading unix timestamp of a `time.unique.host` file name.
pub fn name_timestamp(file_name: &str) -> Option<i64> {
    let digits: String = file_name
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits.parse().ok()
}

/// The internal date of a message file: its mtime, else its name's timestamp.
pub fn internal_date(path: &Path, meta: Option<&std::fs::Metadata>) -> Option<i64> {
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    mtime.or_else(|| name_timestamp(&path.file_name()?.to_string_lossy()))
}

/// The directory of folder `name` (`/`-separated; `""` or INBOX is the root) in a
/// Maildir++ tree at `root`: `.Sub.Folder`, in modified UTF-7 as Dovecot names them
/// (`Entwürfe` → `.Entw&APw-rfe`).
/// A `.` inside a level (`v1.2`) is written `\2e` and `\` as `\5c`, as Dovecot's
/// listescape plugin does, so it does not start a new level.
pub fn folder_dir(root: &Path, name: &str) -> PathBuf {
    if name.is_empty() || name == "INBOX" {
        root.to_path_buf()
    } else {
        let levels: Vec<String> = name
            .split('/')
            .map(|level| {
                let escaped = level.replace('\\', "\\5c").replace('.', "\\2e");
                bulwark_core::imap_string::mutf7_encode(&escaped)
            })
            .collect();
        root.join(format!(".{}", levels.join(".")))
    }
}

/// Undoes the listescape `\NN` (two hex digits) escapes of one folder level.
fn unescape_level(level: &str) -> String {
    if !level.contains('\\') {
        return level.to_string();
    }
    let mut out = Vec::with_capacity(level.len());
    let bytes = level.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(hex) = level.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| level.to_string())
}

/// Writes one folder as a Maildir (`cur/`, `new/`, `tmp/`, `dovecot-keywords`, Maildir++'s
/// `maildirfolder` marker below the root). Each message goes to
/// `cur/TIME.UNIQUE.bulwark,S=SIZE:2,FLAGS` with the internal date as its mtime.
pub struct FolderWriter {
    dir: PathBuf,
    letters: Vec<String>,
    /// Custom keywords that could not be kept (a folder has 26 keyword letters).
    pub dropped_keywords: usize,
}

impl FolderWriter {
    pub fn create(dir: &Path, is_root: bool) -> std::io::Result<FolderWriter> {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        if !is_root {
            std::fs::write(dir.join("maildirfolder"), b"")?;
        }
        Ok(FolderWriter {
            dir: dir.to_path_buf(),
            letters: Vec::new(),
            dropped_keywords: 0,
        })
    }

    /// Writes one message; `unique` must be unique in the folder.
    pub fn add(
        &mut self,
        unique: &str,
        raw: &[u8],
        keywords: &[String],
        date: i64,
    ) -> std::io::Result<()> {
        let mut info: Vec<char> = Vec::new();
        for k in keywords {
            if let Some((c, _)) = MAILDIR_FLAGS
                .iter()
                .find(|(_, f)| f.eq_ignore_ascii_case(k))
            {
                info.push(*c);
                continue;
            }
            let pos = match self.letters.iter().position(|l| l.eq_ignore_ascii_case(k)) {
                Some(p) => p,
                None if self.letters.len() < 26 => {
                    self.letters.push(k.clone());
                    self.letters.len() - 1
                }
                None => {
                    self.dropped_keywords += 1;
                    continue;
                }
            };
            info.push((b'a' + pos as u8) as char);
        }
        info.sort_unstable();
        info.dedup();
        let info: String = info.into_iter().collect();
        let date = date.max(0);
        let name = format!("{date}.{unique}.bulwark,S={}:2,{info}", raw.len());
        let file = std::fs::File::create(self.dir.join("cur").join(name))?;
        std::io::Write::write_all(&mut &file, raw)?;
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(date as u64))
    }

    /// Writes `dovecot-keywords` (line `N keyword` for letter `a` + N).
    pub fn finish(self) -> std::io::Result<usize> {
        if !self.letters.is_empty() {
            let text: String = self
                .letters
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{i} {k}\n"))
                .collect();
            std::fs::write(self.dir.join("dovecot-keywords"), text)?;
        }
        Ok(self.dropped_keywords)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_dovecot_keywords_from_file_names() {
        let kw: BTreeMap<usize, String> = [(0, "Work".to_string()), (1, "$Later".into())].into();
        assert_eq!(
            name_keywords("1700000000.M1P2.host,S=10:2,FRSab", &kw),
            ["$Later", "$answered", "$flagged", "$seen", "Work"]
        );
        assert_eq!(
            name_keywords("1700000000.M1P2.host:2,DPT", &kw),
            ["$deleted", "$draft", "$forwarded"]
        );
        // Unknown letters and a missing info part give nothing.
        assert!(name_keywords("1700000000.M1P2.host:2,z", &kw).is_empty());
        assert!(name_keywords("1700000000.M1P2.host", &kw).is_empty());
        assert_eq!(
            name_timestamp("1700000000.M1P2.host:2,S"),
            Some(1_700_000_000)
        );
        assert_eq!(name_timestamp("abc"), None);
    }

    #[test]
    fn folders_in_both_layouts_and_writer_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let kws = vec!["$seen".to_string(), "project".into()];
        let none: Vec<String> = vec![];
        let mut w = FolderWriter::create(r, true).unwrap();
        w.add("a", b"m1\r\n", &kws, 1_000).unwrap();
        assert_eq!(w.finish().unwrap(), 0);
        let mut w = FolderWriter::create(&folder_dir(r, "Work/2024"), false).unwrap();
        w.add("b", b"m2\r\n", &none, 2_000).unwrap();
        w.finish().unwrap();
        FolderWriter::create(&folder_dir(r, "Entwürfe"), false)
            .unwrap()
            .finish()
            .unwrap();
        // A dot inside a level stays inside it (listescape).
        FolderWriter::create(&folder_dir(r, "Releases/v1.2"), false)
            .unwrap()
            .finish()
            .unwrap();
        assert!(r.join(".Releases.v1\\2e2/cur").is_dir());
        assert!(r.join(".Entw&APw-rfe/cur").is_dir());
        std::fs::create_dir_all(r.join(".R&D/cur")).unwrap();
        // The fs layout, below a Maildir++ folder.
        std::fs::create_dir_all(r.join(".Work.2024/Deep/new")).unwrap();
        std::fs::create_dir_all(r.join("Lists/rust/cur")).unwrap();
        let names: Vec<_> = folders(r).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                Ok(String::new()),
                Ok("Entwürfe".to_string()),
                Ok("R&D".to_string()),
                Ok("Releases/v1.2".to_string()),
                Ok("Work/2024".to_string()),
                Ok("Work/2024/Deep".into()),
                Ok("Lists/rust".into()),
            ]
        );
        let files = message_files(r).unwrap();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(":2,Sa"), "{name}");
        let keywords = read_keywords(r);
        assert_eq!(name_keywords(&name, &keywords), kws);
        let meta = std::fs::metadata(&files[0]).unwrap();
        assert_eq!(internal_date(&files[0], Some(&meta)), Some(1_000));
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"m1\r\n");
        assert!(r.join(".Work.2024/maildirfolder").exists());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_folder_names_are_reported() {
        use std::os::unix::ffi::OsStrExt;
        let root = tempfile::tempdir().unwrap();
        let bad = std::ffi::OsStr::from_bytes(b".Caf\xe9");
        std::fs::create_dir_all(root.path().join(bad).join("cur")).unwrap();
        let found = folders(root.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert!(
            matches!(&found[0].name, Err(n) if n.starts_with(".Caf")),
            "{found:?}"
        );
    }
}
