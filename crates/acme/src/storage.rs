//! The files in the ACME directory (under the data directory), all 0600:
//! - `account.json`: the account's key and URL at one directory (instant-acme's credentials);
//! - `certificate.pem`: the private key followed by the certificate chain, in one file, so
//!   that replacing it is one atomic rename and a crash can never leave a key beside a
//!   certificate it does not fit. `[tls]`-style loaders read it as both the cert and the key
//!   file (PEM readers pick the sections they want).
//!
//! Every write goes to a temporary file in the same directory, is synced, then renamed.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::validity::Validity;

pub const ACCOUNT_FILE: &str = "account.json";
pub const CERTIFICATE_FILE: &str = "certificate.pem";

/// The account as stored: which directory it belongs to, and instant-acme's credentials.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredAccount {
    pub(crate) directory: String,
    pub(crate) credentials: instant_acme::AccountCredentials,
}

/// A certificate in service: the chain, its key ready for rustls, and its validity.
#[derive(Clone, Debug)]
pub struct Issued {
    pub key: Arc<CertifiedKey>,
    pub validity: Validity,
}

/// The ACME directory on disk.
#[derive(Debug, Clone)]
pub struct CertStore {
    dir: PathBuf,
}

impl CertStore {
    /// Uses (creating it, 0700) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CertStore, String> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
        Ok(CertStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the key and the chain (give it as both `cert` and `key`).
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join(CERTIFICATE_FILE)
    }

    pub(crate) fn load_account(&self) -> Result<Option<StoredAccount>, String> {
        let path = self.dir.join(ACCOUNT_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} does not parse ({e}); remove it to register a new account", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub(crate) fn save_account(&self, account: &StoredAccount) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(account).map_err(|e| format!("cannot encode the account: {e}"))?;
        self.write_atomically(ACCOUNT_FILE, &json)
    }

    /// The stored certificate, if there is one that parses and fits its key.
    pub fn load_certificate(&self) -> Result<Option<Issued>, String> {
        let path = self.certificate_path();
        let pem = match fs::read(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        issued_from_pem(&pem).map(Some).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Replaces the stored certificate with `key_pem` + `chain_pem` (checked first).
    pub(crate) fn save_certificate(&self, key_pem: &str, chain_pem: &str) -> Result<Issued, String> {
        let mut pem = key_pem.trim_end().to_string();
        pem.push('\n');
        pem.push_str(chain_pem.trim_end());
        pem.push('\n');
        let issued = issued_from_pem(pem.as_bytes())?;
        self.write_atomically(CERTIFICATE_FILE, pem.as_bytes())?;
        Ok(issued)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let target = self.dir.join(name);
        let temporary = self.dir.join(format!(".{name}.new"));
        let write = || -> std::io::Result<()> {
            let mut file =
                fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, &target)?;
            // The rename is durable once the directory is.
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| format!("cannot write {}: {e}", target.display()))
    }
}

/// Reads a key and its chain from one PEM text and checks that they fit.
pub fn issued_from_pem(pem: &[u8]) -> Result<Issued, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate chain does not parse: {e}"))?;
    let first = chain.first().ok_or("no certificate in the PEM text")?;
    let validity = Validity::of(first)?;
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key: {e}"))?;
    Ok(Issued { key: Arc::new(certified_key(chain, key)?), validity })
}

/// A chain and its key as rustls serves them, the key checked against the certificate.
pub fn certified_key(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<CertifiedKey, String> {
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("unusable private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    Ok(certified)
}
