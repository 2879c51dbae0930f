//! `portcullis init`: a config, a data directory, a self-signed certificate and a first
//! account; and the dev instance behind `portcullis serve --dev`, made the same way.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use portcullis_auth::{derive_secrets, generate_password, PasswordHasher};
use portcullis_config::{is_hostname, Config};
use portcullis_store::{Quota, SqliteStore, Store};

use crate::cli::runtime::block_on;
use crate::cli::Failure;

/// Where `serve --dev` keeps its instance.
pub const DEV_DIR: &str = "portcullis-dev";
const DEV_HOSTNAME: &str = "localhost";
/// A reserved name (RFC 2606): obviously not a real domain.
const DEV_DOMAIN: &str = "example.test";

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
    private_dir(dir)?;
    private_dir(&dir.join("tls"))?;
    private_dir(&dir.join("data"))?;

    let mut names = vec![hostname.clone()];
    if args.dev {
        names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        names.dedup();
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    write_file(&dir.join("tls/cert.pem"), certified.cert.pem().as_bytes(), 0o644)?;
    write_file(&dir.join("tls/key.pem"), certified.signing_key.serialize_pem().as_bytes(), 0o600)?;

    write_file(&config_path, config_text(&hostname, args.dev).as_bytes(), 0o644)?;
    let config = Config::load(&config_path)?;

    let account = format!("postmaster@{domain}");
    let password = generate_password();
    let hasher = PasswordHasher::new(&config.passwords)?;
    let secrets = derive_secrets(&hasher, &password, config.passwords.scram_iterations)?;
    let store = SqliteStore::open(&config.store.sqlite_path, config.store.default_quota)?;
    block_on(async {
        store.add_domain(&domain).await?;
        store.add_account(&account, &secrets, Quota::Default).await?;
        store.close();
        Ok::<_, Failure>(())
    })?;

    let shown = |p: &Path| p.display().to_string();
    println!("Portcullis is set up in {}:", shown(dir));
    println!("  config       {}", shown(&config_path));
    println!("  certificate  {} (self-signed for {hostname}; replace it with a real one)", shown(&config.tls.cert));
    println!("  store        {}", shown(&config.store.sqlite_path));
    println!("  domain       {domain}");
    println!("  account      {account}");
    println!("  password     {password}");
    println!("The password is shown only this once; change it with `portcullis account passwd {account}`.");
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
        init(&InitArgs { hostname: None, domain: None, dir: dir.to_path_buf(), dev: true })?
    };
    println!("Listening on loopback only:");
    for (what, addrs) in [
        ("SMTP submission, implicit TLS", &config.listen.submissions),
        ("SMTP submission, STARTTLS", &config.listen.submission),
        ("IMAP, implicit TLS", &config.listen.imaps),
        ("POP3, implicit TLS", &config.listen.pop3s),
    ] {
        for addr in addrs {
            println!("  {what:<30} {addr}");
        }
    }
    for addr in &config.listen.admin {
        println!("  {:<30} http://{addr}/", "Dashboard, admin API, /metrics");
    }
    if let portcullis_config::AdminToken::File(path) = &config.admin.token {
        if !config.listen.admin.is_empty() {
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

fn config_text(hostname: &str, dev: bool) -> String {
    let root = nix::unistd::Uid::effective().is_root();
    let (listen, process, log) = if dev {
        (
            "submissions = [\"127.0.0.1:10465\"]\nsubmission = [\"127.0.0.1:10587\"]\nimaps = [\"127.0.0.1:10993\"]\npop3s = [\"127.0.0.1:10995\"]\n\
             admin = [\"127.0.0.1:18080\"]               # admin API, /metrics, dashboard\n",
            if root {
                // A dev instance on loopback, started by root (a container): stay root rather
                // than lose access to a home directory only root may enter.
                "# A loopback-only dev instance started as root stays root. Never do this on a real server.\nallow_root = true\n"
            } else {
                ""
            },
            "[log]\nformat = \"text\"\n",
        )
    } else {
        (
            "submissions = [\"0.0.0.0:465\"]       # add \"[::]:465\" for IPv6\nsubmission = [\"0.0.0.0:587\"]\nimaps = [\"0.0.0.0:993\"]\npop3s = [\"0.0.0.0:995\"]\n\
             # Admin API, /metrics and the dashboard; the token is in data/admin.token (made at the\n\
             # first start). Off loopback, set admin.tls = true.\n\
             admin = [\"127.0.0.1:8080\"]\n",
            "# Started as root, `serve` binds its ports and then runs as this user\n# (create it with `useradd --system --home-dir /var/lib/portcullis portcullis`).\nuser = \"portcullis\"\n",
            "",
        )
    };
    format!(
        "# Portcullis configuration. Reference: docs/configuration.md.\n\
         hostname = \"{hostname}\"\n\
         data_dir = \"data\"\n\
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
         url = \"sqlite:data/mail.db\"\n\
         default_quota = \"2GiB\"\n\
         \n\
         [process]\n\
         {process}\
         \n\
         {log}"
    )
}

fn private_dir(path: &Path) -> Result<(), Failure> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Failure> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
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
            let text = config_text("mail.example.org", dev);
            let config = Config::parse(Path::new("/srv/p/portcullis.toml"), &text).unwrap();
            assert_eq!(config.listen.submissions.len(), 1);
            assert_eq!(config.listen.admin.len(), 1);
            assert!(config.listen.admin[0].ip().is_loopback());
            assert_eq!(config.store.sqlite_path, PathBuf::from("/srv/p/data/mail.db"));
        }
    }
}
