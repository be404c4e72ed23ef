//! Command-line interface (clap derive). Each command's help says what it does, with examples.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const MAIN_EXAMPLES: &str = "\
Examples:
  bulwark serve --config /etc/bulwark/bulwark.toml
  bulwark config check bulwark.toml
  bulwark domain add example.test
  echo 'correct horse battery staple' | bulwark account add alice@example.test --password-stdin --name 'Alice'
  bulwark alias add sales@example.test alice@example.test
  bulwark account app-password add alice@example.test --name phone
  bulwark queue list
  bulwark import alice@example.test ~/Maildir
  bulwark export alice@example.test /backup/alice --format archive
  bulwark migrate alice@example.test --from imaps://alice@imap.old.example
  bulwark calendar import alice@example.test holidays.ics
  bulwark contacts export alice@example.test alice.vcf

Every command reads the same config file: --config FILE, else $BULWARK_CONFIG, else ./bulwark.toml.
Administration commands work on the data directory while the server runs.

Exit codes: 0 success, 1 the operation failed, 2 bad command line, 78 invalid config file.";

#[derive(Debug, Parser)]
#[command(
    name = "bulwark",
    version,
    about = "Bulwark: mail, calendar and contacts in one binary — SMTP (inbound MX and submission), IMAP, POP3, JMAP with push, CalDAV and CardDAV, ManageSieve (Sieve filters), and a web client — on an embedded store or a shared PostgreSQL",
    after_help = MAIN_EXAMPLES
)]
pub struct Cli {
    /// Config file (TOML). Relative `data_dir`, `tls.cert` and `tls.key` are resolved
    /// against this file's directory.
    #[arg(long, short = 'c', global = true, value_name = "FILE", env = crate::config::CONFIG_ENV, default_value = crate::config::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,

    /// This node's name among several sharing one store (overrides `node_id` in the config).
    #[arg(long, global = true, value_name = "NAME", env = "BULWARK_NODE_ID")]
    pub node_id: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mail server with every listener of the config file (SMTP, submission, IMAP,
    /// POP3, ManageSieve, HTTP: web client, JMAP, CalDAV/CardDAV, autoconfiguration).
    ///
    /// Prints one line per listener ("listening: imap 127.0.0.1:2143") once all are bound
    /// (with port 0 in the config, the port the system chose). Stops cleanly on SIGTERM or
    /// SIGINT. Logs go to standard error; RUST_LOG overrides [log] level.
    #[command(after_help = "Example:\n  bulwark serve --config bulwark.toml")]
    Serve,

    /// Check a config file, or make the running server re-read it.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Control the running server of this data directory (found by its pid file).
    #[command(subcommand)]
    Node(NodeCommand),

    /// Print this node's id, its store backend, and whether the running server is ready.
    #[command(after_help = "Example:\n  bulwark status --config bulwark.toml")]
    Status,

    /// Manage the local mail domains (mail for these is delivered here).
    #[command(subcommand)]
    Domain(DomainCommand),

    /// Manage accounts, their passwords and app passwords.
    #[command(subcommand)]
    Account(AccountCommand),

    /// Manage aliases: extra addresses that deliver to an account.
    #[command(subcommand)]
    Alias(AliasCommand),

    /// Inspect and steer the outbound delivery queue.
    #[command(subcommand)]
    Queue(QueueCommand),

    /// Token signing keys, shared by every node through the store.
    #[command(subcommand)]
    Auth(AuthCommand),

    /// Import mail into an account: an mbox, a Maildir (with its folders), one .eml file, a
    /// directory of .eml or .mbox files, or a Bulwark archive (from `bulwark export --format
    /// archive`).
    ///
    /// Flags, keywords, internal dates and folders are kept; missing folders are created.
    /// Running it again imports nothing twice: a message whose exact bytes are already in its
    /// folder is skipped, so an interrupted import is resumed by running the same command.
    /// Prints a progress line on a terminal and a summary at the end (imported, skipped,
    /// failed with why, messages per second); exit status 1 if any message failed. Works
    /// while the server runs.
    #[command(after_help = IMPORT_EXAMPLES)]
    Import(ImportArgs),

    /// Export an account's mail into a new (or empty) directory: as a Maildir, as mbox files,
    /// or as a Bulwark archive that `bulwark import` restores exactly.
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),

    /// Copy every folder of a running IMAP server into an account (or, with --csv, into many
    /// accounts), incrementally, like imapsync.
    ///
    /// The source is only read (EXAMINE, BODY.PEEK[]: its \Seen flags stay). Folders keep
    /// their names (special-use folders go to ours: the source's \Sent to our Sent), flags
    /// and internal dates are kept. What was copied is remembered per folder in the account,
    /// by UID: running it again copies only what is new and syncs the flags of what was
    /// copied before, so an interrupted migration is resumed by running the same command.
    /// The password is read from --password-file, $BULWARK_MIGRATE_PASSWORD, or asked on a
    /// terminal; never put it in the URL. Works while the server runs.
    #[command(after_help = MIGRATE_EXAMPLES)]
    Migrate(MigrateArgs),

    /// Import or export an account's calendars as .ics files (iCalendar, RFC 5545).
    #[command(subcommand)]
    Calendar(CalendarCommand),

    /// Import or export an account's address books as .vcf files (vCard, RFC 6350).
    #[command(subcommand)]
    Contacts(ContactsCommand),

    /// Outage drills: real PostgreSQL and nodes on loopback, load, one fault, a figure table.
    Drill(bulwark_drill::DrillArgs),

    /// ACME (RFC 8555) certificates obtained by `serve` when `[acme] directory` is set.
    #[command(subcommand)]
    Acme(AcmeCommand),
}

#[derive(Debug, Subcommand)]
pub enum AcmeCommand {
    /// The stored certificate for `[acme] domains`: its names, issuer, validity and when it
    /// is renewed, and which node is ordering one now (if any).
    Status,
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Import an .ics file into a calendar: one calendar object per UID (a recurring event's
    /// changed instances stay with it, the time zones it uses are copied in), stored with
    /// the same checks as a CalDAV PUT.
    ///
    /// Running it again adds nothing: an event whose UID is already in the calendar is
    /// updated when its data differs and skipped when it is the same. Entries that cannot be
    /// read or are refused are listed with their line; the summary line says how many were
    /// imported, updated, unchanged and failed (exit status 1 if any failed). Works while
    /// the server runs.
    #[command(
        after_help = "Examples:\n  bulwark calendar import alice@example.test holidays.ics\n  bulwark calendar import alice@example.test work.ics --calendar work"
    )]
    Import {
        /// The account, e.g. alice@example.test.
        account: String,
        /// The .ics file.
        file: PathBuf,
        /// The calendar's id (its path segment under /dav/calendars/USER/); it must exist.
        #[arg(long, value_name = "ID", default_value = bulwark_dav::store::DEFAULT_ID)]
        calendar: String,
    },
    /// Export a whole calendar as one .ics file (each time zone once), to FILE or standard
    /// output.
    #[command(
        after_help = "Examples:\n  bulwark calendar export alice@example.test alice.ics\n  bulwark calendar export alice@example.test --calendar work - | less"
    )]
    Export {
        /// The account, e.g. alice@example.test.
        account: String,
        /// Where to write (replaced if it exists); `-` or nothing: standard output.
        file: Option<PathBuf>,
        /// The calendar's id.
        #[arg(long, value_name = "ID", default_value = bulwark_dav::store::DEFAULT_ID)]
        calendar: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Import a .vcf file (one or more vCards, each with a UID) into an address book, with
    /// the same checks as a CardDAV PUT.
    ///
    /// Running it again adds nothing: a card whose UID is already there is updated when it
    /// differs and skipped when it is the same. Cards that cannot be read are listed with
    /// their line; the summary line says how many were imported, updated, unchanged and
    /// failed (exit status 1 if any failed).
    #[command(after_help = "Example:\n  bulwark contacts import alice@example.test contacts.vcf")]
    Import {
        /// The account, e.g. alice@example.test.
        account: String,
        /// The .vcf file.
        file: PathBuf,
        /// The address book's id (its path segment under /dav/addressbooks/USER/).
        #[arg(long, value_name = "ID", default_value = bulwark_dav::store::DEFAULT_ID)]
        addressbook: String,
    },
    /// Export a whole address book as one .vcf file, to FILE or standard output.
    #[command(after_help = "Example:\n  bulwark contacts export alice@example.test alice.vcf")]
    Export {
        /// The account, e.g. alice@example.test.
        account: String,
        /// Where to write (replaced if it exists); `-` or nothing: standard output.
        file: Option<PathBuf>,
        /// The address book's id.
        #[arg(long, value_name = "ID", default_value = bulwark_dav::store::DEFAULT_ID)]
        addressbook: String,
    },
}

const IMPORT_EXAMPLES: &str = "\
Examples:
  bulwark import alice@example.test ~/mail/old-inbox.mbox
  bulwark import alice@example.test ~/mail/lists.mbox --folder Lists/rust
  bulwark import alice@example.test ~/Maildir
  bulwark import alice@example.test message.eml --folder Archive
  bulwark import alice@example.test ./alice-archive     # from `bulwark export --format archive`

What is recognised:
  a file starting with a \"From \" line   mbox (mboxo or mboxrd); the From line's date is the
                                        internal date, Status/X-Status/X-Keywords the flags
  any other file                        one message (.eml); its mtime is the internal date
  a directory with cur/ and new/        Maildir: :2, flags, dovecot-keywords, Maildir++
                                        (.Sub.Folder) and fs (Sub/Folder) subfolders, mtime
                                        as internal date
  a directory of *.eml files            one message each
  a directory of *.mbox files           one folder per file, named by its path
                                        (what `bulwark export --format mbox` writes)
  a directory with manifest.json        a Bulwark archive (folders, roles, subscriptions,
                                        flags, dates, identities, vacation response)";

const EXPORT_EXAMPLES: &str = "\
Examples:
  bulwark export alice@example.test /backup/alice --format archive
  bulwark export alice@example.test ~/alice-maildir --format maildir
  bulwark export alice@example.test ~/alice-mbox --format mbox

Formats:
  maildir   INBOX in DIR itself, other folders as Maildir++ DIR/.Sub.Folder; flags in the
            file names (:2,DFPRST), custom keywords as dovecot-keywords letters, the
            internal date as the file's mtime
  mbox      one mboxrd file per folder (DIR/INBOX.mbox, DIR/Sub/Folder.mbox); flags as
            Status/X-Status/X-Keywords, the internal date in the From line
  archive   DIR/manifest.json (folders with roles, subscriptions and sort order; per message
            its folders, keywords and internal date; identities and vacation response) and
            the messages byte for byte in DIR/messages/; `bulwark import` reads it back";

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The account to import into, e.g. alice@example.test.
    pub account: String,
    /// What to import: an mbox file, a Maildir, an .eml file, a directory of .eml files, or
    /// a Bulwark archive directory, e.g. ~/mail/inbox.mbox.
    pub path: PathBuf,
    /// The folder to import into, created when missing, e.g. --folder Lists/rust. An mbox or
    /// .eml goes to INBOX without it; a Maildir's top level goes here and its subfolders
    /// below it (without it: INBOX, and the subfolders at the top). Not for archives.
    #[arg(long, value_name = "NAME")]
    pub folder: Option<String>,
}

const MIGRATE_EXAMPLES: &str = "Examples:
  bulwark migrate alice@example.test --from imaps://alice@imap.old-provider.example
  bulwark migrate alice@example.test --from imaps://alice@old.example --dry-run
  BULWARK_MIGRATE_PASSWORD=... bulwark migrate bob@example.test --from imap://bob@127.0.0.1:143
  bulwark migrate --csv accounts.csv --password-file master.txt

--from: imaps://USER@HOST[:PORT] (TLS, 993) or imap://USER@HOST[:PORT] (STARTTLS, 143;
        plaintext only to a loopback address). A USER holding @ may be written as is or as %40.
--csv:  one account per line, `ACCOUNT,FROM[,PASSWORD]` (a first line `account,from,...` and
        lines starting with # are skipped); a row without PASSWORD uses --password-file or
        $BULWARK_MIGRATE_PASSWORD (for a source's master-user login). Accounts are migrated one
        after the other; one that fails does not stop the others, and the exit status is 1
        if any failed.";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The account to copy into, e.g. alice@example.test (not with --csv).
    #[arg(required_unless_present = "csv", conflicts_with = "csv")]
    pub account: Option<String>,
    /// The source server and user, e.g. --from imaps://alice@imap.example.com.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "csv",
        conflicts_with = "csv"
    )]
    pub from: Option<String>,
    /// Migrate many accounts, from a CSV file (see below).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// A file whose first line is the source password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Trust only this CA (PEM) for the source's certificate, e.g. a self-signed server's.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any certificate from the source (encrypted, but not authenticated).
    #[arg(long)]
    pub insecure_tls: bool,
    /// Say what would be copied and created; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Folders copied at once, each over its own connection (1-16).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub jobs: u8,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The account to export, e.g. alice@example.test.
    pub account: String,
    /// The directory to write, new or empty, e.g. /backup/alice.
    pub dir: PathBuf,
    /// maildir, mbox or archive (see below), e.g. --format archive.
    #[arg(long, value_name = "maildir|mbox|archive")]
    pub format: bulwark_migrate::ExportFormat,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file in full: prints "ok", or every problem as FILE:LINE: KEY: WHY
    /// and exits with status 78.
    #[command(
        after_help = "Examples:\n  bulwark config check bulwark.toml\n  bulwark config check   # checks --config / $BULWARK_CONFIG / ./bulwark.toml"
    )]
    Check {
        /// The file to check (default: the --config file).
        file: Option<PathBuf>,
    },
    /// Make the running server re-read its config file (like SIGHUP) and print the outcome.
    ///
    /// A valid file is applied at once where it can be (log level, limits, auth throttling,
    /// outbound relay and retries, TLS certificate files, drain timeout); the output names the
    /// keys that only a restart applies. An invalid file is refused with every problem as
    /// FILE:LINE: KEY: WHY (exit status 78), and the server keeps its last good config.
    #[command(after_help = "Example:\n  bulwark config reload --config /etc/bulwark/bulwark.toml")]
    Reload,
    /// Print the reference of every config key as Markdown (the table in docs/config.md).
    #[command(hide = true)]
    Reference,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Drain the running server (like SIGTERM): /readyz answers 503 "draining" at once,
    /// listeners stop accepting, sessions finish their current command or transaction and
    /// are closed; the server exits when all have ended or the timeout passes.
    #[command(after_help = "Examples:\n  bulwark node drain\n  bulwark node drain --timeout 60")]
    Drain {
        /// Seconds sessions may take to end (default: `drain_timeout` of the config).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Add a new token signing key. Every node starts verifying with it within a minute and
    /// signs with it after a short activation delay; older keys keep verifying for 31 days, so
    /// no access or refresh token stops working and nobody has to sign in again.
    #[command(after_help = "Example:\n  bulwark auth rotate-key --config bulwark.toml")]
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a local domain.
    #[command(after_help = "Example:\n  bulwark domain add example.test")]
    Add {
        /// Domain name, e.g. example.test.
        domain: String,
    },
    /// List the local domains.
    List,
    /// Delete a local domain (refused while accounts or aliases use it).
    #[command(after_help = "Example:\n  bulwark domain delete example.test")]
    Delete {
        /// Domain name.
        domain: String,
    },
    /// DKIM signing keys of a domain (kept in the store, shared by every node).
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Print the DNS records the domain needs, as zone-file lines (NAME TTL IN TYPE VALUE):
    /// MX, SPF, DKIM (every published selector), DMARC, MTA-STS, TLS-RPT, SRV records for
    /// client autoconfiguration, autoconfig/autodiscover. With --check, ask DNS (through
    /// `[dns] servers`) and say per record whether it is there; exit status 1 if any is
    /// missing or wrong.
    #[command(
        after_help = "Examples:\n  bulwark domain dns example.test\n  bulwark domain dns example.test --check"
    )]
    Dns {
        /// Domain name.
        domain: String,
        /// Compare with what DNS answers.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Create the domain's first DKIM key; mail from the domain is signed with it at once.
    /// Publish the TXT record it prints (also in `bulwark domain dns`).
    #[command(
        after_help = "Examples:\n  bulwark domain dkim generate example.test\n  bulwark domain dkim generate example.test --algorithm rsa --selector mail2026"
    )]
    Generate {
        /// Domain name.
        domain: String,
        /// ed25519 (RFC 8463; small) or rsa (2048 bits; verified everywhere).
        #[arg(long, default_value = "rsa", value_name = "ed25519|rsa")]
        algorithm: String,
        /// Selector (one DNS label); default bYYYYMMDD.
        #[arg(long, value_name = "S")]
        selector: Option<String>,
    },
    /// Replace the signing key: a new key with a new selector signs from now on; the old one
    /// stays published for 7 days so mail signed just before still verifies. Publish the
    /// new TXT record first if receivers must never see an unknown selector.
    #[command(after_help = "Example:\n  bulwark domain dkim rotate example.test")]
    Rotate {
        domain: String,
        /// Algorithm of the new key (default: the current key's).
        #[arg(long, value_name = "ed25519|rsa")]
        algorithm: Option<String>,
        #[arg(long, value_name = "S")]
        selector: Option<String>,
    },
    /// The domain's keys: selector, algorithm, created, active or retired, and the TXT record.
    #[command(after_help = "Example:\n  bulwark domain dkim list example.test")]
    List { domain: String },
}

#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input (for scripts). Without
    /// this flag the password is prompted for on a terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account (its domain must exist) with INBOX, Sent, Drafts, Trash, Junk, Archive.
    #[command(
        after_help = "Examples:\n  bulwark account add alice@example.test            # prompts for the password\n  printf '%s\\n' \"$PASS\" | bulwark account add alice@example.test --password-stdin --name 'Alice Liddell'"
    )]
    Add {
        /// The account's primary address (its user name for IMAP, POP3 and SMTP).
        address: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List accounts with their aliases, the mail they keep and their storage quota.
    List,
    /// Show or set an account's storage quota (how much mail it may keep).
    ///
    /// Without SIZE: shows the usage and the limit that applies. SIZE is bytes or a number
    /// with K, M, G or T (binary units); `unlimited` lifts the limit for this account and
    /// `default` goes back to `[quota] default_storage`. Running nodes apply it at once.
    /// Over the limit, new mail is deferred with 452 4.2.2 (the sender retries), IMAP
    /// APPEND/COPY get NO [OVERQUOTA] and JMAP overQuota; nothing already stored is touched.
    #[command(
        after_help = "Examples:\n  bulwark account quota alice@example.test\n  bulwark account quota alice@example.test 10G\n  bulwark account quota alice@example.test unlimited\n  bulwark account quota alice@example.test default"
    )]
    Quota {
        /// The account's address.
        address: String,
        /// The new limit: a size (`500M`, `10G`), `unlimited` or `default`.
        size: Option<String>,
    },
    /// Set a new password.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PASS\" | bulwark account passwd alice@example.test --password-stdin"
    )]
    Passwd {
        /// The account's address.
        address: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Delete an account with all its mail, aliases, app passwords, settings and stored data.
    ///
    /// Says what it will remove and asks to type the address to confirm; without a terminal
    /// (scripts) it refuses unless --yes is given. It cannot be undone.
    #[command(
        after_help = "Examples:\n  bulwark account delete alice@example.test\n  bulwark account delete alice@example.test --yes"
    )]
    Delete {
        /// The account's address.
        address: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Manage app passwords: generated passwords for one device each, revocable alone.
    #[command(subcommand, name = "app-password")]
    AppPassword(AppPasswordCommand),
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordCommand {
    /// Generate an app password; it is printed once on standard output, and only its hash is kept.
    #[command(
        after_help = "Example:\n  bulwark account app-password add alice@example.test --name phone"
    )]
    Add {
        /// The account's address.
        address: String,
        /// What the password is for (a device or program), unique per account.
        #[arg(long)]
        name: String,
    },
    /// List an account's app passwords (names and ids, never the passwords).
    #[command(after_help = "Example:\n  bulwark account app-password list alice@example.test")]
    List {
        /// The account's address.
        address: String,
    },
    /// Revoke an app password by name or id.
    #[command(
        after_help = "Example:\n  bulwark account app-password delete alice@example.test phone"
    )]
    Delete {
        /// The account's address.
        address: String,
        /// The name given at creation, or the id from `list`.
        name_or_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Make ALIAS deliver to the account TARGET (ALIAS's domain must be local).
    #[command(after_help = "Example:\n  bulwark alias add sales@example.test alice@example.test")]
    Add {
        /// The new address, in a local domain.
        alias: String,
        /// The account it delivers to.
        target: String,
    },
    /// List aliases as "ALIAS -> ACCOUNT".
    List,
    /// Delete an alias.
    #[command(after_help = "Example:\n  bulwark alias delete sales@example.test")]
    Delete {
        /// The alias address.
        alias: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued outbound messages with their recipients and last errors.
    List,
    /// Make one queued message due for delivery now.
    #[command(after_help = "Example:\n  bulwark queue retry 42")]
    Retry {
        /// Queue id from `bulwark queue list`.
        id: i64,
    },
    /// Remove a queued message without delivering it (no bounce is sent).
    #[command(after_help = "Example:\n  bulwark queue delete 42")]
    Delete {
        /// Queue id from `bulwark queue list`.
        id: i64,
    },
    /// Make every queued message due now.
    Flush,
}
