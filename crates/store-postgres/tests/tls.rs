//! TLS to the database as `sslmode` says, against a private cluster with `ssl = on` and a
//! certificate made for the test: `verify-full` checks the chain and the name, `require`
//! encrypts without checking, `disable` never encrypts.

use std::sync::OnceLock;

use portcullis_store_postgres::PgStore;
use portcullis_testpg::{PgCluster, ServerTls};

struct TlsCluster {
    cluster: PgCluster,
    /// The certificate's PEM, in a file for `sslrootcert`.
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// One cluster for the binary, with a self-signed certificate for 127.0.0.1 and localhost.
fn tls_cluster() -> Option<&'static TlsCluster> {
    static CLUSTER: OnceLock<Option<TlsCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let certified =
                rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
            let cert_pem = certified.cert.pem();
            let key_pem = certified.signing_key.serialize_pem();
            let cluster = PgCluster::start_tls(ServerTls { cert_pem: &cert_pem, key_pem: &key_pem })?;
            let dir = tempfile::tempdir().unwrap();
            let ca_file = dir.path().join("ca.pem");
            std::fs::write(&ca_file, &cert_pem).unwrap();
            Some(TlsCluster { cluster, ca_file, _dir: dir })
        })
        .as_ref()
}

/// Whether the store's connections to the server are encrypted (pg_stat_ssl of its own).
async fn encrypted(store: &PgStore) -> bool {
    store.connection_uses_tls().await.unwrap()
}

#[tokio::test]
async fn verify_full_accepts_the_right_certificate_and_name() {
    let Some(tls) = tls_cluster() else { return };
    let url = tls.cluster.fresh_database();
    let store = PgStore::connect(&format!("{url}?sslmode=verify-full&sslrootcert={}", tls.ca_file.display()), None)
        .await
        .unwrap();
    assert!(encrypted(&store).await);
}

#[tokio::test]
async fn verify_full_refuses_an_unknown_issuer_and_a_wrong_name() {
    let Some(tls) = tls_cluster() else { return };
    let url = tls.cluster.fresh_database();
    // The webpki roots do not know the test's certificate.
    let err = PgStore::connect(&format!("{url}?sslmode=verify-full"), None).await.err().expect("refused");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    // The right issuer, but the server is reached by a name the certificate does not hold.
    // (hostaddr: the connection still goes to 127.0.0.1, TLS checks the name in the URL.)
    let other_name = url.replace("127.0.0.1", "db.example");
    let other_name =
        format!("{other_name}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}", tls.ca_file.display());
    let err = PgStore::connect(&other_name, None).await.err().expect("a certificate for another name");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn require_encrypts_without_checking_and_disable_never_encrypts() {
    let Some(tls) = tls_cluster() else { return };
    let url = tls.cluster.fresh_database();
    let required = PgStore::connect(&format!("{url}?sslmode=require"), None).await.unwrap();
    assert!(encrypted(&required).await);
    let preferred = PgStore::connect(&url, None).await.unwrap();
    assert!(encrypted(&preferred).await, "prefer takes TLS when the server offers it");
    let plain = PgStore::connect(&format!("{url}?sslmode=disable"), None).await.unwrap();
    assert!(!encrypted(&plain).await);
}

/// A node on the database's own machine reaches it through its Unix socket (the socket's
/// directory as the URL's host): no TLS there, which `disable` and `prefer` accept and
/// `require` refuses with a reason.
#[tokio::test]
async fn a_unix_socket_connects_without_tls_and_require_refuses_it() {
    let Some(tls) = tls_cluster() else { return };
    let url = tls.cluster.fresh_database();
    let name = url.rsplit('/').next().unwrap();
    let socket = tls.cluster.socket_url(name);
    for mode in ["disable", "prefer"] {
        let store = PgStore::connect(&format!("{socket}?sslmode={mode}"), None).await.unwrap();
        assert!(!encrypted(&store).await, "{mode}");
    }
    let err = PgStore::connect(&format!("{socket}?sslmode=require"), None).await.err().expect("refused");
    assert!(err.to_string().contains("does not support TLS"), "{err}");
}
