//! Sockets: binding listeners (before privileges are dropped) and the stream a session talks
//! over, plain until STARTTLS or TLS from the first byte, with what a session needs to know of
//! its TLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::tls;

const BACKLOG: i32 = 1024;

/// Binds a listening socket. IPv6 sockets are IPv6-only, so that "0.0.0.0:465" and
/// "[::]:465" can both be configured.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tls_connection(&self) -> Option<&rustls::ServerConnection> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => Some(tls.get_ref().1),
        }
    }

    /// The TLS connection's `tls-exporter` channel binding, for SCRAM-SHA-256-PLUS; `None`
    /// before TLS.
    pub fn channel_binding(&self) -> Option<Vec<u8>> {
        self.tls_connection().and_then(tls::channel_binding)
    }

    /// The TLS version and cipher suite apart, once TLS is up (for port 25's event).
    pub fn tls_parts(&self) -> Option<(String, String)> {
        self.tls_connection().map(tls::describe)
    }

    /// "TLSv1.3 TLS13_AES_256_GCM_SHA384", for the SMTP Received header; `None` before TLS.
    pub fn tls_summary(&self) -> Option<String> {
        self.tls_connection().map(|c| {
            let (version, cipher) = tls::describe(c);
            format!("{version} {cipher}")
        })
    }

    pub async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.write_all(data).await?;
        self.flush().await
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
