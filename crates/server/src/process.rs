//! Process hygiene: a server started as root binds its ports, then becomes an unprivileged
//! user for good, before it reads a byte from the network; what it stores is for that user
//! alone.

mod data_dir;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgid, setgroups, setuid, Gid, Group, Uid, User};
use portcullis_config::Config;

/// Descriptors the server needs beyond one per connection: listeners, the store's
/// connections, the log file, the admin listener's clients.
const SPARE_DESCRIPTORS: u64 = 256;

/// Raises the soft limit on open files to the hard one: the common soft default (1024) is below
/// the default `limits.max_connections`, and hitting it makes accept fail for everyone at once.
/// Returns a warning when even the hard limit is too low for `limits.max_connections`.
pub fn raise_open_file_limit(config: &Config) -> Option<String> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        // Failure leaves the soft limit as it was; the check below still warns.
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let needed = config.limits.max_connections as u64 + SPARE_DESCRIPTORS;
    (soft < needed).then(|| {
        format!(
            "warning: the process may open only {soft} files (ulimit -n), fewer than limits.max_connections ({}) needs ({needed}); raise the limit (LimitNOFILE= in the systemd unit) or lower limits.max_connections",
            config.limits.max_connections
        )
    })
}

/// Drops root to `process.user` (and `process.group`, default the user's group), first handing
/// the data directory to that user (see `process/data_dir.rs`: through descriptors, never
/// following what the user could have changed). Refuses to stay root unless
/// `process.allow_root` says so.
///
/// Root or not, the process's umask becomes 077 and, when it runs as an unprivileged user, the
/// data directory and the store's files are made its owner's alone (0700 and 0600): the store
/// holds password hashes, TOTP secrets and everyone's mail.
pub fn drop_privileges(config: &Config) -> Result<(), String> {
    // Whatever the process creates from now on is for its owner alone (the binary sets this at
    // start too; a server started from elsewhere gets it here).
    umask(Mode::from_bits_truncate(0o077));
    if Uid::effective().is_root() {
        let Some((user, gid)) = service_user(config)? else {
            // process.allow_root: nothing to hand over, and modes stay as root made them.
            return Ok(());
        };
        become_service_user(config, &user, gid)?;
    }
    data_dir::keep_private(&config.data_dir)?;
    if let Some((dir, names)) = store_outside(config) {
        for name in names {
            data_dir::keep_private(&dir.join(name))?;
        }
    }
    Ok(())
}

/// The account to run as (and its group), or None when root may stay root.
fn service_user(config: &Config) -> Result<Option<(User, Gid)>, String> {
    let Some(name) = &config.process.user else {
        if config.process.allow_root {
            return Ok(None);
        }
        return Err(format!(
            "{}: refusing to serve as root; set process.user to an unprivileged account (for example \"portcullis\", created with `useradd --system --home-dir /var/lib/portcullis portcullis`), or process.allow_root = true",
            config.path.display()
        ));
    };
    let user = User::from_name(name).map_err(|e| format!("process.user: cannot look up \"{name}\": {e}"))?.ok_or_else(
        || format!("process.user: there is no user \"{name}\"; create it (useradd --system {name}) or name another"),
    )?;
    let gid = match &config.process.group {
        None => user.gid,
        Some(group) => {
            Group::from_name(group)
                .map_err(|e| format!("process.group: cannot look up \"{group}\": {e}"))?
                .ok_or_else(|| format!("process.group: there is no group \"{group}\""))?
                .gid
        }
    };
    Ok(Some((user, gid)))
}

/// Hands the data directory (and a store kept outside it) over, then becomes the user for good.
fn become_service_user(config: &Config, user: &User, gid: Gid) -> Result<(), String> {
    let service = data_dir::ServiceUser { name: &user.name, uid: user.uid, gid };
    let (dir, resolved) = data_dir::open_dir(&config.data_dir, &service, true).map_err(|e| format!("data_dir: {e}"))?;
    data_dir::hand_over(dir, &resolved, &service)?;
    // A database kept outside data_dir: hand over its files, not the directory around them.
    if let Some((dir, names)) = store_outside(config) {
        if dir.exists() {
            data_dir::hand_over_files(&dir, &names, &service).map_err(|e| format!("store.url: {e}"))?;
        }
    }
    setgroups(&[gid]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
    setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    setuid(user.uid).map_err(|e| format!("cannot switch to user {}: {e}", user.name))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err("privileges could be regained after dropping them; refusing to run".into());
    }
    Ok(())
}

/// The directory and file names of a SQLite store kept outside data_dir (the database, its
/// write-ahead log and shared memory), or None when it is inside or the store is not SQLite.
fn store_outside(config: &Config) -> Option<(PathBuf, Vec<OsString>)> {
    let path = config.store.sqlite_path()?;
    if path.starts_with(&config.data_dir) {
        return None;
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name = path.file_name()?;
    let names = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut n = name.to_os_string();
            n.push(suffix);
            n
        })
        .collect();
    Some((dir, names))
}
