//! `portcullis init`: a config, a data directory, a self-signed certificate and a first
//! account; and the dev instance behind `portcullis serve --dev`, made the same way.
//!
//! Who may read what `init` writes: everything is for its owner alone, except when root makes
//! an instance for a service user that exists (the README's way to production). Then the
//! config and the certificate stay root's but the user's group may read them (the server reads
//! them again on SIGHUP, after it has dropped root), every directory lets that group through,
//! and the store is created as the user, in a data directory that becomes the user's.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Gid;

use portcullis_auth::{derive_secrets, generate_password, PasswordHasher};
use portcullis_config::{is_hostname, Config, Listener};
use portcullis_server::dkim::add_first_pair;
use portcullis_store::Quota;

use crate::cli::runtime::block_on;
use crate::cli::store_access::open;
use crate::cli::units::now;
use crate::cli::Failure;

/// Where `serve --dev` keeps its instance.
pub const DEV_DIR: &str = "portcullis-dev";
const DEV_HOSTNAME: &str = "localhost";
/// A reserved name (RFC 2606): obviously not a real domain.
const DEV_DOMAIN: &str = "example.test";
/// The account `serve` becomes when started as root, unless `--user` names another.
const SERVICE_USER: &str = "portcullis";

#[derive(clap::Args)]
pub struct InitArgs {
    /// The name clients connect to [default: this machine's name; "localhost" with --dev]
    #[arg(long)]
    hostname: Option<String>,
    /// The first mail domain [default: the hostname without its first label; "example.test" with --dev]
    #[arg(long)]
    domain: Option<String>,
    /// Where to write portcullis.toml, tls/ and data/
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Loopback-only listeners on 10000 + the standard ports (10465, 10587, 10993, 10995)
    #[arg(long)]
    dev: bool,
    /// The account `serve` becomes when started as root; create it first (useradd --system)
    /// [default: portcullis]
    #[arg(long, value_name = "NAME", conflicts_with = "dev")]
    user: Option<String>,
    /// Where the store and the server's state go, e.g. /var/lib/portcullis [default: DIR/data]
    #[arg(long, value_name = "PATH")]
    data_dir: Option<PathBuf>,
}

/// Creates an instance; prints what it made, and the first account's password once.
pub fn init(args: &InitArgs) -> Result<Config, Failure> {
    let hostname = match &args.hostname {
        Some(h) => h.to_ascii_lowercase(),
        None if args.dev => DEV_HOSTNAME.to_string(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| h.contains('.'))
            .ok_or_else(|| Failure("cannot tell this machine's public name; pass --hostname mail.example.org".into()))?
            .to_ascii_lowercase(),
    };
    if !is_hostname(&hostname) {
        return Err(Failure(format!("\"{hostname}\" is not a host name; pass --hostname mail.example.org")));
    }
    let domain = match &args.domain {
        Some(d) => d.to_ascii_lowercase(),
        None if args.dev => DEV_DOMAIN.to_string(),
        None => default_domain(&hostname),
    };
    if !is_hostname(&domain) {
        return Err(Failure(format!("\"{domain}\" is not a domain name; pass --domain example.org")));
    }

    let dir = &args.dir;
    let config_path = dir.join("portcullis.toml");
    if config_path.exists() {
        return Err(Failure(format!("{} already exists; remove it or pick another --dir", config_path.display())));
    }
    let user = args.user.as_deref().unwrap_or(SERVICE_USER);
    let data_dir = match &args.data_dir {
        None => None,
        Some(path) => Some(absolute(path)?),
    };
    let layout = Layout::for_instance(args.dev, user);
    layout.dir(dir)?;
    layout.dir(&dir.join("tls"))?;
    // The data directory is root's only until the store is opened as the service user.
    Layout::private().dir(data_dir.as_deref().unwrap_or(&dir.join("data")))?;

    let mut names = vec![hostname.clone()];
    if args.dev {
        names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        names.dedup();
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    layout.file(&dir.join("tls/cert.pem"), certified.cert.pem().as_bytes())?;
    layout.file(&dir.join("tls/key.pem"), certified.signing_key.serialize_pem().as_bytes())?;

    layout.file(&config_path, config_text(&hostname, args.dev, user, data_dir.as_deref())?.as_bytes())?;
    let config = Config::load(&config_path)?;

    let account = format!("postmaster@{domain}");
    let password = generate_password();
    let hasher = PasswordHasher::new(&config.passwords)?;
    let secrets = derive_secrets(&hasher, &password, config.passwords.scram_iterations)?;
    // As the service user when root made this for one: the store is that user's from the start.
    let store = open(&config)?;
    let dkim_selectors = block_on(async {
        store.add_domain(&domain).await?;
        store.add_account(&account, &secrets, Quota::Default).await?;
        // The domain's first DKIM pair (its records: `portcullis dns DOMAIN`, printed below).
        let selectors = add_first_pair(&*store, &domain, now()).await.map_err(Failure)?;
        store.close();
        Ok::<_, Failure>(selectors)
    })?;

    let shown = |p: &Path| p.display().to_string();
    println!("Portcullis is set up in {}:", shown(dir));
    println!("  config       {}", shown(&config_path));
    println!("  certificate  {} (self-signed for {hostname}; replace it with a real one)", shown(&config.tls.cert));
    println!("  store        {}", config.store.describe());
    println!("  domain       {domain}");
    println!("  account      {account}");
    println!("  DKIM keys    {} (signing; publish: `portcullis dns {domain}`)", dkim_selectors.join(", "));
    println!("  password     {password}");
    println!("The password is shown only this once; change it with `portcullis account passwd {account}`.");
    if let Some(group) = layout.group {
        let group = nix::unistd::Group::from_gid(group).ok().flatten().map(|g| g.name).unwrap_or(group.to_string());
        println!("The service user {user} owns the store; its group {group} may read the config and the certificate.");
    } else if layout.missing_user {
        eprintln!(
            "warning: there is no user \"{user}\", so all of this is root's alone and `serve` started as root cannot run as that user; create it first (useradd --system --home-dir /var/lib/portcullis --shell /usr/sbin/nologin {user}) and run init again into an empty --dir"
        );
    }
    Ok(config)
}

/// The dev instance in `dir`, created on first use.
pub fn dev_instance(dir: &Path) -> Result<Config, Failure> {
    let config_path = dir.join("portcullis.toml");
    let config = if config_path.exists() {
        let config = Config::load(&config_path)?;
        println!(
            "Using the dev instance in {} (reset a password with `portcullis --config {} account passwd USER`).",
            dir.display(),
            config_path.display()
        );
        config
    } else {
        init(&InitArgs { hostname: None, domain: None, dir: dir.to_path_buf(), dev: true, user: None, data_dir: None })?
    };
    println!("Listening on loopback only:");
    for (listener, addrs) in config.listen.mail() {
        for addr in addrs {
            println!("  {:<46} {addr}", listener.spec().summary);
        }
    }
    for addr in config.listen.addresses(Listener::Https) {
        println!("  {:<46} https://{addr}/", Listener::Https.spec().summary);
    }
    for addr in config.listen.admin() {
        println!("  {:<46} http://{addr}/", Listener::Admin.spec().summary);
    }
    if let portcullis_config::AdminToken::File(path) = &config.admin.token {
        if !config.listen.admin().is_empty() {
            println!("The dashboard's sign-in token is in {} (created at the first start).", path.display());
        }
    }
    println!("The certificate is self-signed: tell clients to trust {}.", config.tls.cert.display());
    Ok(config)
}

/// mail.example.org -> example.org; example.org stays.
fn default_domain(hostname: &str) -> String {
    match hostname.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest.to_string(),
        _ => hostname.to_string(),
    }
}

/// `path` made absolute (relative to the current directory), as it will be written into the
/// config: refused when it holds what a TOML string would need escaped.
fn absolute(path: &Path) -> Result<PathBuf, Failure> {
    let path = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    match path.to_str() {
        Some(text) if !text.chars().any(|c| c == '"' || c == '\\' || c.is_control()) => Ok(path),
        _ => Err(Failure(format!(
            "--data-dir {}: pick a path without quotes, backslashes or control characters",
            path.display()
        ))),
    }
}

fn config_text(hostname: &str, dev: bool, user: &str, data_dir: Option<&Path>) -> Result<String, Failure> {
    let (data_dir, store_file) = match data_dir {
        None => ("data".to_string(), "data/mail.db".to_string()),
        Some(path) => {
            let text = path.to_str().ok_or_else(|| Failure("--data-dir must be UTF-8".into()))?;
            (text.to_string(), format!("{}/mail.db", text.trim_end_matches('/')))
        }
    };
    let root = nix::unistd::Uid::effective().is_root();
    let (process, log) = if dev {
        (
            if root {
                // A dev instance on loopback, started by root (a container): stay root rather
                // than lose access to a home directory only root may enter.
                "# A loopback-only dev instance started as root stays root. Never do this on a real server.\nallow_root = true\n".to_string()
            } else {
                String::new()
            },
            "[log]\nformat = \"text\"\n",
        )
    } else {
        (
            format!("# Started as root, `serve` binds its ports and then runs as this user\n# (create it with `useradd --system --home-dir /var/lib/portcullis {user}`).\nuser = \"{user}\"\n"),
            "",
        )
    };
    let listen = listen_section(dev);
    Ok(format!(
        "# Portcullis configuration. Reference: docs/configuration.md.\n\
         hostname = \"{hostname}\"\n\
         data_dir = \"{data_dir}\"\n\
         \n\
         [tls]\n\
         # PEM chain and key; SIGHUP reloads them. The key must stay readable by the service user.\n\
         cert = \"tls/cert.pem\"\n\
         key = \"tls/key.pem\"\n\
         min_version = \"1.2\"\n\
         \n\
         [listen]\n\
         {listen}\
         \n\
         [store]\n\
         url = \"sqlite:{store_file}\"\n\
         default_quota = \"2GiB\"\n\
         \n\
         [process]\n\
         {process}\
         \n\
         {log}"
    ))
}

/// `[listen]`: every listener of the table on its standard port (the admin listener on loopback
/// only), or with `--dev` on 127.0.0.1 at 10000 + the standard port.
fn listen_section(dev: bool) -> String {
    let mut section = String::new();
    for listener in Listener::EVERY {
        let spec = listener.spec();
        let (host, port) = match (dev, listener) {
            (true, _) => ("127.0.0.1", listener.dev_port()),
            (false, Listener::Admin) => ("127.0.0.1", spec.port),
            (false, _) => ("0.0.0.0", spec.port),
        };
        if listener == Listener::Admin && !dev {
            section.push_str(
                "# Admin API, /metrics and the dashboard; the token is in admin.token in data_dir (made at the\n\
                 # first start). Off loopback, set admin.tls = true.\n",
            );
        }
        let line = format!("{} = [\"{host}:{port}\"]", spec.name);
        // Port 80 only answers ACME HTTP-01, which TLS-ALPN-01 on 443 makes unnecessary: off
        // unless the operator chooses that challenge.
        if listener == Listener::Http {
            let line = format!("# {line}");
            section.push_str(&format!("{line:<38} # {}, with tls.acme challenge = \"http-01\"\n", spec.summary));
            continue;
        }
        let comment = if dev || listener == Listener::Admin {
            spec.summary.to_string()
        } else {
            format!("{}; add \"[::]:{port}\" for IPv6", spec.summary)
        };
        section.push_str(&format!("{line:<38} # {comment}\n"));
    }
    section
}

/// Modes and group for what `init` creates (see the module comment).
struct Layout {
    /// The service user's group, when root makes the instance for an existing service user.
    group: Option<Gid>,
    /// Root makes a real instance, but the service user does not exist (yet).
    missing_user: bool,
}

impl Layout {
    fn for_instance(dev: bool, user: &str) -> Layout {
        if dev || !nix::unistd::Uid::effective().is_root() {
            return Layout::private();
        }
        match nix::unistd::User::from_name(user).ok().flatten() {
            Some(account) => Layout { group: Some(account.gid), missing_user: false },
            None => Layout { group: None, missing_user: true },
        }
    }

    /// Everything for its owner alone.
    fn private() -> Layout {
        Layout { group: None, missing_user: false }
    }

    /// Creates `path` (mode 0700, or 0750 for the group), and any missing parent 0755; leaves
    /// an existing directory as it is.
    fn dir(&self, path: &Path) -> Result<(), Failure> {
        if path.is_dir() {
            return Ok(());
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            Layout::private().dir(parent)?;
            // A parent holds nothing itself: it only has to let the service user through.
            fs::set_permissions(parent, fs::Permissions::from_mode(0o755))?;
        }
        fs::create_dir(path).map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))?;
        let made = fs::OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW).bits())
            .open(path)
            .map_err(|e| Failure(format!("cannot open {}: {e}", path.display())))?;
        self.own(&made, path, if self.group.is_some() { 0o750 } else { 0o700 })
    }

    /// Writes a new file (mode 0600, or 0640 for the group); refuses to replace one.
    fn file(&self, path: &Path, contents: &[u8]) -> Result<(), Failure> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))?;
        self.own(&file, path, if self.group.is_some() { 0o640 } else { 0o600 })?;
        file.write_all(contents)?;
        file.sync_all()?;
        Ok(())
    }

    /// Sets the mode (whatever the umask) and the group, through the open descriptor.
    fn own(&self, file: &fs::File, path: &Path, mode: u32) -> Result<(), Failure> {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Failure(format!("cannot set the mode of {}: {e}", path.display())))?;
        if let Some(group) = self.group {
            std::os::unix::fs::fchown(file, None, Some(group.as_raw()))
                .map_err(|e| Failure(format!("cannot give {} to group {group}: {e}", path.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_domain_drops_the_host_label() {
        assert_eq!(default_domain("mail.example.org"), "example.org");
        assert_eq!(default_domain("example.org"), "example.org");
        assert_eq!(default_domain("localhost"), "localhost");
    }

    #[test]
    fn generated_configs_parse() {
        for dev in [true, false] {
            let text = config_text("mail.example.org", dev, "mailsvc", None).unwrap();
            let config = Config::parse(Path::new("/srv/p/portcullis.toml"), &text).unwrap();
            assert_eq!(config.listen.addresses(Listener::Submissions).len(), 1);
            assert_eq!(config.listen.admin().len(), 1);
            assert!(config.listen.admin()[0].ip().is_loopback());
            assert_eq!(config.store.sqlite_path(), Some(Path::new("/srv/p/data/mail.db")));
            assert_eq!(config.process.user.as_deref(), (!dev).then_some("mailsvc"));
        }
        let text =
            config_text("mail.example.org", false, "portcullis", Some(Path::new("/var/lib/portcullis"))).unwrap();
        let config = Config::parse(Path::new("/etc/portcullis/portcullis.toml"), &text).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/portcullis"));
        assert_eq!(config.store.sqlite_path(), Some(Path::new("/var/lib/portcullis/mail.db")));
        assert!(absolute(Path::new("/srv/a\"b")).is_err());
    }
}
