//! The data directory between root and the service user: root hands it over without ever
//! being steered by that user, and the user keeps it private.
//!
//! Once the server has run, the service user owns the data directory and can change anything
//! in it: swap a directory for a symbolic link to one of root's, or add a hard link to a file of
//! root's (where the kernel allows it). A walk by path names (`lchown("data/x/y")`) follows such
//! a link in every component but the last, and so hands root's files over. Here root takes every
//! step through a descriptor: each entry is opened with O_PATH|O_NOFOLLOW, looked at through
//! that descriptor (fstat), and changed through it (fchownat with AT_EMPTY_PATH), so what is
//! changed is what was looked at. Symbolic links, devices, FIFOs and sockets are left alone, and
//! so are files with more than one link (a hard link to a file elsewhere), other file systems,
//! and anything root does not own: what root made there is all that needs handing over.
//!
//! The path to the data directory is resolved the same way, one component at a time from `/`:
//! a symbolic link on the way is followed only if the service user could not have made it, and
//! every directory on the way must let the service user through (otherwise serving fails after
//! the drop with a puzzling "Permission denied").
//!
//! Modes are the service user's business, after the drop: it can only change its own files, so
//! its walk by path names cannot be turned against anyone else.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Group, Uid, User};

/// Symbolic links followed while resolving one path (the kernel's own limit).
const MAX_LINKS: usize = 40;
/// Directories nested deeper than this below the data directory are left as they are: the store
/// makes none, and a service user's million-deep tree must not exhaust root's descriptors.
const MAX_DEPTH: usize = 16;

/// Who the server becomes, as far as file permissions go: after the drop it has this user and
/// this one group, no supplementary groups.
pub struct ServiceUser<'a> {
    pub name: &'a str,
    pub uid: Uid,
    pub gid: Gid,
}

impl ServiceUser<'_> {
    /// Whether the service user has all of `want` (4 read, 2 write, 1 search) on `st`: the
    /// owner's bits if it owns it, else the group's if its group does, else the others'.
    fn may(&self, st: &FileStat, want: u32) -> bool {
        let mode = st.st_mode;
        let bits = if st.st_uid == self.uid.as_raw() {
            mode >> 6
        } else if st.st_gid == self.gid.as_raw() {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }

    /// Whether the service user could have put (or replaced) the entry `entry` in `dir`.
    fn could_have_made(&self, dir: &FileStat, entry: &FileStat) -> bool {
        let sticky = dir.st_mode & 0o1000 != 0;
        // In a sticky directory (/tmp) only an entry's owner may replace it.
        self.may(dir, 0o2) && !(sticky && entry.st_uid == 0)
    }
}

fn is(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

fn shown_owner(st: &FileStat) -> String {
    let user = User::from_uid(Uid::from_raw(st.st_uid)).ok().flatten().map(|u| u.name);
    let group = Group::from_gid(Gid::from_raw(st.st_gid)).ok().flatten().map(|g| g.name);
    format!("{}:{}", user.unwrap_or_else(|| st.st_uid.to_string()), group.unwrap_or_else(|| st.st_gid.to_string()))
}

/// Opens the directory `path` as root and returns a descriptor to read it, with the path it
/// resolved to. Follows only symbolic links the service user could not have made; fails when a
/// directory on the way does not let the service user through. With `create`, makes what is
/// missing: the directory itself mode 0700 (handed over afterwards), the ones above it 0755.
pub fn open_dir(path: &Path, user: &ServiceUser, create: bool) -> Result<(OwnedFd, PathBuf), String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| format!("cannot tell the current directory: {e}"))?.join(path)
    };
    let root = nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open /: {e}"))?;
    // The directories walked so far (from `/`), and the components still to walk, last first.
    let mut walked: Vec<(OwnedFd, PathBuf)> = vec![(root, PathBuf::from("/"))];
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, &absolute);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            if walked.len() > 1 {
                walked.pop();
            }
            continue;
        }
        let (dir, dir_path) = walked.last().expect("/ is never popped");
        let here = dir_path.join(&name);
        let dir_stat = fstat(dir).map_err(|e| format!("cannot examine {}: {e}", dir_path.display()))?;
        if !user.may(&dir_stat, 0o1) {
            return Err(unreachable(user, path, dir_path, &dir_stat));
        }
        let last = todo.is_empty();
        let entry =
            match openat(dir, name.as_os_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) {
                Err(Errno::ENOENT) if create => make_dir(dir, &name, if last { 0o700 } else { 0o755 })
                    .map_err(|e| format!("cannot create {}: {e}", here.display()))?,
                Err(e) => return Err(format!("cannot open {}: {e}", here.display())),
                Ok(fd) => fd,
            };
        let st = fstat(&entry).map_err(|e| format!("cannot examine {}: {e}", here.display()))?;
        if is(&st, SFlag::S_IFDIR) {
            walked.push((entry, here));
        } else if is(&st, SFlag::S_IFLNK) {
            links += 1;
            if links > MAX_LINKS {
                return Err(format!("{}: too many symbolic links", path.display()));
            }
            if user.could_have_made(&dir_stat, &st) {
                return Err(format!(
                    "{} is a symbolic link in a directory the service user {} can change; root will not follow it: point the setting at the real directory",
                    here.display(),
                    user.name
                ));
            }
            let target = readlinkat(dir, name.as_os_str())
                .map_err(|e| format!("cannot read the link {}: {e}", here.display()))?;
            if Path::new(&target).is_absolute() {
                walked.truncate(1);
            }
            push_components(&mut todo, Path::new(&target));
        } else {
            return Err(format!("{} is not a directory", here.display()));
        }
    }
    let (dir, resolved) = walked.pop().expect("/ is never popped");
    if walked.is_empty() {
        return Err(format!("{}: refusing to hand the root directory to the service user", path.display()));
    }
    let readable = openat(&dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot read {}: {e}", resolved.display()))?;
    Ok((readable, resolved))
}

/// Adds the components of `path` to `todo` (which is walked from its end).
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let mut names: Vec<OsString> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name.to_os_string()),
            Component::ParentDir => names.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    todo.extend(names.into_iter().rev());
}

fn make_dir(dir: &OwnedFd, name: &OsStr, mode: u32) -> nix::Result<OwnedFd> {
    mkdirat(dir, name, Mode::from_bits_truncate(0o700))?;
    let made =
        openat(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
    // Exactly this mode, whatever the umask.
    fchmod(&made, Mode::from_bits_truncate(mode))?;
    Ok(made)
}

fn unreachable(user: &ServiceUser, wanted: &Path, blocking: &Path, st: &FileStat) -> String {
    let group = Group::from_gid(user.gid).ok().flatten().map(|g| g.name).unwrap_or_else(|| user.gid.to_string());
    format!(
        "the service user {} cannot reach {}: {} (mode {:04o}, owner {}) does not let it through; allow it with `chgrp {group} {} && chmod g+x {}` (or `chmod o+x {}`)",
        user.name,
        wanted.display(),
        blocking.display(),
        st.st_mode & 0o7777,
        shown_owner(st),
        blocking.display(),
        blocking.display(),
        blocking.display(),
    )
}

/// Makes the directory `dir` (from [`open_dir`]) the service user's, and with it every
/// directory and singly-linked regular file below it that root owns.
pub fn hand_over(dir: OwnedFd, shown: &Path, user: &ServiceUser) -> Result<(), String> {
    let st = fstat(&dir).map_err(|e| format!("cannot examine {}: {e}", shown.display()))?;
    if st.st_uid != user.uid.as_raw() || st.st_gid != user.gid.as_raw() {
        give(&dir, shown, user)?;
    }
    walk(dir, shown, st.st_dev, 0, user)
}

fn give(fd: &OwnedFd, shown: &Path, user: &ServiceUser) -> Result<(), String> {
    fchownat(fd, "", Some(user.uid), Some(user.gid), AtFlags::AT_EMPTY_PATH)
        .map_err(|e| format!("cannot hand {} to the service user: {e}", shown.display()))
}

fn walk(dir: OwnedFd, shown: &Path, device: u64, depth: usize, user: &ServiceUser) -> Result<(), String> {
    let mut listing = Dir::from_fd(dir).map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
    let names: Vec<CString> = listing
        .iter()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_owned())
        .filter(|name| name.as_bytes() != b"." && name.as_bytes() != b"..")
        .collect();
    for name in names {
        let here = shown.join(OsStr::from_bytes(name.as_bytes()));
        // Gone since the listing: nothing to hand over.
        let Ok(entry) =
            openat(&listing, name.as_c_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        else {
            continue;
        };
        let st = fstat(&entry).map_err(|e| format!("cannot examine {}: {e}", here.display()))?;
        if st.st_dev != device {
            continue;
        }
        if is(&st, SFlag::S_IFDIR) {
            if st.st_uid == 0 {
                give(&entry, &here, user)?;
            }
            if depth + 1 < MAX_DEPTH {
                let readable =
                    openat(&entry, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                        .map_err(|e| format!("cannot read {}: {e}", here.display()))?;
                walk(readable, &here, device, depth + 1, user)?;
            }
        } else if is(&st, SFlag::S_IFREG) && st.st_uid == 0 && st.st_nlink == 1 {
            give(&entry, &here, user)?;
        }
    }
    Ok(())
}

/// Hands over the files `names` in the directory `dir` (a store kept outside the data
/// directory), the same way; missing ones are skipped.
pub fn hand_over_files(dir: &Path, names: &[OsString], user: &ServiceUser) -> Result<(), String> {
    let (fd, shown) = open_dir(dir, user, false)?;
    for name in names {
        let here = shown.join(name);
        let entry =
            match openat(&fd, name.as_os_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) {
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(format!("cannot open {}: {e}", here.display())),
                Ok(fd) => fd,
            };
        let st = fstat(&entry).map_err(|e| format!("cannot examine {}: {e}", here.display()))?;
        if is(&st, SFlag::S_IFREG) && st.st_uid == 0 && st.st_nlink == 1 {
            give(&entry, &here, user)?;
        }
    }
    Ok(())
}

/// As the (unprivileged) owner, after the drop: the directory `path` and everything below it
/// that this process owns, for its owner alone (directories 0700, files without group and other
/// bits). Symbolic links are not followed; a missing `path` is left for the store to create.
pub fn keep_private(path: &Path) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let mut todo = vec![(path.to_path_buf(), 0)];
    while let Some((here, depth)) = todo.pop() {
        let meta = match std::fs::symlink_metadata(&here) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot examine {}: {e}", here.display())),
            Ok(meta) => meta,
        };
        if meta.uid() != me || !(meta.is_dir() || meta.is_file()) {
            continue;
        }
        let mode = meta.mode() & 0o7777;
        let private = if meta.is_dir() { 0o700 } else { mode & 0o700 };
        if mode != private {
            std::fs::set_permissions(&here, std::fs::Permissions::from_mode(private))
                .map_err(|e| format!("cannot make {} private: {e}", here.display()))?;
        }
        if meta.is_dir() && depth < MAX_DEPTH {
            let entries = std::fs::read_dir(&here).map_err(|e| format!("cannot read {}: {e}", here.display()))?;
            todo.extend(entries.filter_map(Result::ok).map(|e| (e.path(), depth + 1)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// True when the test may go on as root; fails when not root, unless skipping was asked for.
    fn root_or_skip(test: &str) -> bool {
        if Uid::effective().is_root() {
            return true;
        }
        if std::env::var("PORTCULLIS_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPED {test}: it needs root, and PORTCULLIS_SKIP_ROOT_TESTS=1");
            return false;
        }
        panic!("{test} needs root (it changes owners); run it as root, or set PORTCULLIS_SKIP_ROOT_TESTS=1 to skip it");
    }

    /// A made-up service user: owners are numbers, the account need not exist.
    const SERVICE: ServiceUser<'static> =
        ServiceUser { name: "svc", uid: Uid::from_raw(64000), gid: Gid::from_raw(64001) };

    fn owner(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().uid()
    }

    #[test]
    fn root_hands_over_what_it_made_and_nothing_it_is_pointed_at() {
        if !root_or_skip("root_hands_over_what_it_made_and_nothing_it_is_pointed_at") {
            return;
        }
        let dir = tempfile_dir("handover");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (victim, data) = (dir.join("victim"), dir.join("data"));
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("secret"), "root's").unwrap();
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("mail.db"), "root made it").unwrap();
        std::fs::write(data.join("sub/old"), "root made it").unwrap();
        // What a service user could have put there: a link to root's directory and a hard link
        // to root's file (root plants them here; the user would where the kernel lets it).
        std::os::unix::fs::symlink(&victim, data.join("link")).unwrap();
        std::fs::hard_link(victim.join("secret"), data.join("hard")).unwrap();
        let (fd, shown) = open_dir(&data, &SERVICE, false).unwrap();
        assert_eq!(shown, data);
        hand_over(fd, &shown, &SERVICE).unwrap();
        for handed in ["", "sub", "mail.db", "sub/old"] {
            assert_eq!(owner(&data.join(handed)), 64000, "{handed:?}");
        }
        assert_eq!(owner(&data.join("link")), 0, "the link itself is left alone");
        for kept in [victim.clone(), victim.join("secret")] {
            assert_eq!(owner(&kept), 0, "{}", kept.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_outside_the_data_dir_hands_over_its_files_only() {
        if !root_or_skip("a_store_outside_the_data_dir_hands_over_its_files_only") {
            return;
        }
        let dir = tempfile_dir("store-files");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "root's").unwrap();
        std::fs::write(dir.join("mail.db"), "db").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("mail.db-shm")).unwrap();
        let names: Vec<OsString> = ["mail.db", "mail.db-wal", "mail.db-shm"].map(OsString::from).to_vec();
        hand_over_files(&dir, &names, &SERVICE).unwrap();
        assert_eq!(owner(&dir.join("mail.db")), 64000);
        assert_eq!(owner(&dir), 0, "the directory around it stays as it was");
        assert_eq!(owner(&victim), 0, "a link is not followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_path_follows_only_links_the_service_user_could_not_have_made() {
        if !root_or_skip("the_path_follows_only_links_the_service_user_could_not_have_made") {
            return;
        }
        let dir = tempfile_dir("resolve");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let real = dir.join("real");
        std::fs::create_dir(&real).unwrap();
        // root's link in root's directory: followed, and missing directories are created.
        std::os::unix::fs::symlink("real", dir.join("by-root")).unwrap();
        let (_, resolved) = open_dir(&dir.join("by-root/a/data"), &SERVICE, true).unwrap();
        assert_eq!(resolved, real.join("a/data"));
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!((mode(&real.join("a")), mode(&real.join("a/data"))), (0o755, 0o700));
        // A link in a directory the service user owns: refused, named.
        let users = dir.join("users");
        std::fs::create_dir(&users).unwrap();
        nix::unistd::chown(&users, Some(SERVICE.uid), Some(SERVICE.gid)).unwrap();
        std::os::unix::fs::symlink(&real, users.join("x")).unwrap();
        let err = open_dir(&users.join("x/a/data"), &SERVICE, false).unwrap_err();
        assert!(err.contains("symbolic link") && err.contains("users/x"), "{err}");
        // A directory on the way the service user cannot pass: refused, with the fix.
        let closed = dir.join("closed");
        std::fs::create_dir_all(closed.join("data")).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = open_dir(&closed.join("data"), &SERVICE, false).unwrap_err();
        assert!(err.contains("cannot reach") && err.contains("chmod g+x") && err.contains("0700"), "{err}");
        assert!(open_dir(Path::new("/"), &SERVICE, false).unwrap_err().contains("root directory"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn stat(uid: u32, gid: u32, mode: u32) -> FileStat {
        // A real stat (of /), with the fields that matter replaced.
        let mut st: FileStat = fstat(std::fs::File::open("/").unwrap().as_fd()).unwrap();
        st.st_uid = uid;
        st.st_gid = gid;
        st.st_mode = mode;
        st
    }

    #[test]
    fn permissions_are_read_as_the_kernel_does() {
        let user = ServiceUser { name: "svc", uid: Uid::from_raw(500), gid: Gid::from_raw(600) };
        // The owner's bits apply to the owner, even when the group's would allow more.
        assert!(!user.may(&stat(500, 600, 0o0070), 0o1));
        assert!(user.may(&stat(0, 600, 0o0750), 0o1));
        assert!(!user.may(&stat(0, 0, 0o0750), 0o1));
        assert!(user.may(&stat(0, 0, 0o0711), 0o1));
        // Who could have made an entry: a directory it can write, unless sticky and root's entry.
        assert!(user.could_have_made(&stat(500, 500, 0o0700), &stat(0, 0, 0o777)));
        assert!(!user.could_have_made(&stat(0, 0, 0o0755), &stat(0, 0, 0o777)));
        assert!(!user.could_have_made(&stat(0, 0, 0o1777), &stat(0, 0, 0o777)));
        assert!(user.could_have_made(&stat(0, 0, 0o1777), &stat(500, 600, 0o777)));
    }

    #[test]
    fn keep_private_tightens_what_it_owns_and_follows_no_link() {
        let dir = tempfile_dir("private");
        let data = dir.join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("mail.db"), "x").unwrap();
        std::fs::write(data.join("sub/file"), "x").unwrap();
        let outside = dir.join("outside");
        std::fs::write(&outside, "x").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
        for (p, mode) in [(&data, 0o755), (&data.join("sub"), 0o775), (&data.join("mail.db"), 0o644), (&outside, 0o644)]
        {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        keep_private(&data).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("sub")), 0o700);
        assert_eq!(mode(&data.join("mail.db")), 0o600);
        assert_eq!(mode(&data.join("sub/file")) & 0o077, 0);
        assert_eq!(mode(&outside), 0o644, "a link's target outside is not touched");
        keep_private(&dir.join("missing")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portcullis-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
