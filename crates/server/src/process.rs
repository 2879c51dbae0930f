//! Process hygiene: a server started as root binds its ports, then becomes an unprivileged
//! user for good, before it reads a byte from the network.

use std::path::Path;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
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
/// the data directory to that user. Refuses to stay root unless `process.allow_root` says so.
/// Does nothing when not started as root.
pub fn drop_privileges(config: &Config) -> Result<(), String> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let Some(name) = &config.process.user else {
        if config.process.allow_root {
            return Ok(());
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
    let data_dir = &config.data_dir;
    if data_dir.parent().is_none() {
        return Err("data_dir: refusing to hand the root directory to the service user".into());
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    give_tree(data_dir, user.uid, gid)?;
    // A database kept outside data_dir: hand over its files, not the directory around them.
    if !config.store.sqlite_path.starts_with(data_dir) {
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", config.store.sqlite_path.display());
            if Path::new(&file).exists() {
                give_tree(Path::new(&file), user.uid, gid)?;
            }
        }
    }
    setgroups(&[gid]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
    setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    setuid(user.uid).map_err(|e| format!("cannot switch to user {name}: {e}"))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err("privileges could be regained after dropping them; refusing to run".into());
    }
    Ok(())
}

/// Makes `path` and everything below it owned by `uid:gid` (the store's files must stay
/// writable after the drop).
fn give_tree(path: &Path, uid: Uid, gid: Gid) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))
        .map_err(|e| format!("cannot hand {} to the service user: {e}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for entry in entries.flatten() {
            give_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}
