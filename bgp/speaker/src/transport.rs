//! TCP sockets for BGP: the listener (with an MD5 key per neighbor), outgoing connections
//! (MD5 key, TTL / GTSM and source address set before `connect`), and the per-neighbor options
//! applied to accepted connections.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::config::TransportConfig;
use crate::error::Error;
use crate::sockopt;

fn sock_err(what: &'static str, peer: Option<IpAddr>) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Socket { what, peer, source }
}

/// The outgoing TTL and GTSM minimum for a neighbor: GTSM sends 255 and accepts
/// `256 - hops`; multihop sends its TTL; other eBGP sessions TTL 1; iBGP the system default.
pub fn ttl_policy(t: &TransportConfig, ebgp: bool) -> (Option<u8>, Option<u8>) {
    match (t.ttl_security, t.multihop) {
        (Some(hops), _) => (
            Some(255),
            Some(255u8.saturating_sub(hops).saturating_add(1)),
        ),
        (None, Some(ttl)) => (Some(ttl), None),
        (None, None) if ebgp => (Some(1), None),
        (None, None) => (None, None),
    }
}

/// Apply TTL / GTSM to a connected or connecting socket.
pub fn apply_ttl(
    sock: &impl std::os::fd::AsFd,
    peer: IpAddr,
    t: &TransportConfig,
    ebgp: bool,
) -> Result<(), Error> {
    let (ttl, min) = ttl_policy(t, ebgp);
    if let Some(ttl) = ttl {
        sockopt::set_ttl(sock, ttl).map_err(sock_err("set TTL", Some(peer)))?;
    }
    if let Some(min) = min {
        sockopt::set_min_ttl(sock, peer, min).map_err(sock_err("set IP_MINTTL", Some(peer)))?;
    }
    Ok(())
}

/// Bind the listener (dual stack when the address is `::`).
pub fn listen(addr: SocketAddr) -> Result<TcpListener, Error> {
    let err = |source| Error::Listen { addr, source };
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(err)?;
    sock.set_reuseaddr(true).map_err(err)?;
    if addr.is_ipv6() {
        socket2::SockRef::from(&sock)
            .set_only_v6(false)
            .map_err(err)?;
    }
    sock.bind(addr).map_err(err)?;
    sock.listen(128).map_err(err)
}

/// The GTSM minimum TTL for the listener: the least strict of every neighbor's (0, none,
/// when any neighbor is without GTSM or there are none). Linux checks a listening socket's
/// minimum on the SYN, so when every neighbor uses GTSM a spoofed far-away SYN never gets a
/// handshake; accepted connections then get their own neighbor's minimum.
pub fn listener_min_ttl<'a>(
    neighbors: impl IntoIterator<Item = (&'a TransportConfig, bool)>,
) -> u8 {
    neighbors
        .into_iter()
        .map(|(t, ebgp)| ttl_policy(t, ebgp).1.unwrap_or(0))
        .min()
        .unwrap_or(0)
}

/// Set the listener's minimum TTL / hop limit (0 = none).
pub fn set_listener_min_ttl(l: &TcpListener, min: u8) -> Result<(), Error> {
    sockopt::set_min_ttl_all(l, min).map_err(sock_err("set IP_MINTTL on listener", None))
}

/// Set or clear the MD5 key for `peer` on the listener.
pub fn listener_md5(l: &TcpListener, peer: IpAddr, password: Option<&str>) -> Result<(), Error> {
    sockopt::set_md5_key(l, peer, password.map(str::as_bytes))
        .map_err(sock_err("set TCP_MD5SIG on listener", Some(peer)))
}

/// Connect to a neighbor with its socket options; bounded by `timeout`.
pub async fn connect(
    remote: SocketAddr,
    local: Option<IpAddr>,
    t: &TransportConfig,
    ebgp: bool,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    let peer = Some(remote.ip());
    let sock = match remote {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(sock_err("socket", peer))?;
    if let Some(pw) = &t.password {
        sockopt::set_md5_key(&sock, remote.ip(), Some(pw.as_bytes()))
            .map_err(sock_err("set TCP_MD5SIG", peer))?;
    }
    apply_ttl(&sock, remote.ip(), t, ebgp)?;
    if let Some(l) = local {
        sock.bind(SocketAddr::new(l, 0))
            .map_err(sock_err("bind source address", peer))?;
    }
    let stream = tokio::time::timeout(timeout, sock.connect(remote))
        .await
        .map_err(|_| Error::Socket {
            what: "connect (timed out)",
            peer,
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        })?
        .map_err(sock_err("connect", peer))?;
    stream
        .set_nodelay(true)
        .map_err(sock_err("TCP_NODELAY", peer))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rules() {
        let mut t = TransportConfig::default();
        assert_eq!(ttl_policy(&t, true), (Some(1), None));
        assert_eq!(ttl_policy(&t, false), (None, None));
        t.multihop = Some(3);
        assert_eq!(ttl_policy(&t, true), (Some(3), None));
        t.ttl_security = Some(1);
        assert_eq!(ttl_policy(&t, true), (Some(255), Some(255)));
        t.ttl_security = Some(2);
        assert_eq!(ttl_policy(&t, false), (Some(255), Some(254)));
    }

    #[test]
    fn listener_minimum_is_the_least_strict_neighbor() {
        let gtsm1 = TransportConfig {
            ttl_security: Some(1),
            ..Default::default()
        };
        let gtsm3 = TransportConfig {
            ttl_security: Some(3),
            ..Default::default()
        };
        let plain = TransportConfig::default();
        assert_eq!(listener_min_ttl([]), 0);
        assert_eq!(listener_min_ttl([(&gtsm1, true)]), 255);
        assert_eq!(listener_min_ttl([(&gtsm1, true), (&gtsm3, false)]), 253);
        assert_eq!(listener_min_ttl([(&gtsm1, true), (&plain, true)]), 0);
    }
}
