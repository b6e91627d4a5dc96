//! Socket options that neither std, tokio nor socket2 wrap: TCP MD5 signatures (RFC 2385,
//! `TCP_MD5SIG`) and the GTSM minimum TTL / hop count (RFC 5082, `IP_MINTTL`,
//! `IPV6_MINHOPCOUNT`). The only unsafe code of the crate lives here: one `setsockopt` call.

#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// `TCP_MD5SIG_MAXKEYLEN` from `linux/tcp.h`.
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct __kernel_sockaddr_storage`: 128 bytes, 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct SockaddrStorage([u8; 128]);

/// `struct tcp_md5sig` from `linux/tcp.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct TcpMd5Sig {
    tcpm_addr: SockaddrStorage,
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: libc::c_int,
    tcpm_key: [u8; MD5_MAX_KEY_LEN],
}

/// Encode `addr` as a `sockaddr_in` (on an IPv4 socket) or `sockaddr_in6` (on an IPv6
/// socket; IPv4 addresses become IPv4-mapped, which is how the kernel keys them there).
fn sockaddr(addr: IpAddr, v6_socket: bool) -> SockaddrStorage {
    let mut s = [0u8; 128];
    match (addr, v6_socket) {
        (IpAddr::V4(a), false) => {
            s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            s[4..8].copy_from_slice(&a.octets());
        }
        (a, _) => {
            let v6 = match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            s[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            s[8..24].copy_from_slice(&v6.octets());
        }
    }
    SockaddrStorage(s)
}

fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to a live, initialised `T` of `len` bytes for the duration of the
    // call; the kernel only reads that many bytes and keeps no reference to them. `fd` is a
    // socket descriptor owned by the caller's socket object, which outlives the call.
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_v6_socket(fd: &impl AsFd) -> bool {
    socket2::SockRef::from(fd)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|a| a.is_ipv6())
}

/// Set (or with `None`, delete) the TCP MD5 key for segments to and from `peer`. On a
/// listener this covers connections accepted from `peer`; on an outgoing socket it must be
/// set before `connect`.
pub fn set_md5_key(sock: &impl AsFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key of {} bytes exceeds {MD5_MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    let mut sig = TcpMd5Sig {
        tcpm_addr: sockaddr(peer, is_v6_socket(sock)),
        tcpm_flags: 0,
        tcpm_prefixlen: 0,
        tcpm_keylen: key.len() as u16,
        tcpm_ifindex: 0,
        tcpm_key: [0; MD5_MAX_KEY_LEN],
    };
    sig.tcpm_key[..key.len()].copy_from_slice(key);
    let r = setsockopt(
        sock.as_fd().as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_MD5SIG,
        &sig,
    );
    match r {
        // Deleting a key that was never set is success.
        Err(e) if key.is_empty() && e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// GTSM (RFC 5082): drop segments from `peer` whose TTL / hop limit is below `min`. On an
/// IPv6 socket both the IPv6 and (for IPv4-mapped peers) the IPv4 option are set.
pub fn set_min_ttl(sock: &impl AsFd, peer: IpAddr, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min);
    let fd = sock.as_fd().as_raw_fd();
    if is_v6_socket(sock) {
        let r6 = setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v);
        let r4 = setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v);
        match peer {
            IpAddr::V4(_) => r4,
            IpAddr::V6(_) => r6,
        }
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v)
    }
}

/// The minimum TTL and hop limit for segments from anyone (a listener serving IPv4 and IPv6
/// neighbors): on an IPv6 socket both options are set, on an IPv4 socket the IPv4 one.
pub fn set_min_ttl_all(sock: &impl AsFd, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min);
    let fd = sock.as_fd().as_raw_fd();
    if is_v6_socket(sock) {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v)?;
    }
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v)
}

/// `struct sock_filter` (classic BPF instruction).
#[repr(C)]
#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// Drop, in the kernel, the route-monitor notifications of routes added with our route
/// `protocol` (`RTM_NEWROUTE` whose `rtm_protocol` matches): the monitor does not need our
/// own writes, and at a million routes parsing them costs more than writing them.
/// Deletions and everyone else's routes still come through.
pub fn drop_own_route_adds(fd: RawFd, protocol: u8) -> io::Result<()> {
    // Classic BPF loads halfwords in network order; nlmsg_type is in host order.
    let new_route = u32::from(u16::from_be_bytes(libc::RTM_NEWROUTE.to_ne_bytes()));
    let prog = [
        // A = nlmsg_type (offset 4)
        SockFilter {
            code: 0x28,
            jt: 0,
            jf: 0,
            k: 4,
        },
        // if A != RTM_NEWROUTE goto accept
        SockFilter {
            code: 0x15,
            jt: 0,
            jf: 2,
            k: new_route,
        },
        // A = rtm_protocol (16-byte nlmsghdr + 5)
        SockFilter {
            code: 0x30,
            jt: 0,
            jf: 0,
            k: 21,
        },
        // if A == protocol goto drop
        SockFilter {
            code: 0x15,
            jt: 1,
            jf: 0,
            k: u32::from(protocol),
        },
        // accept
        SockFilter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: u32::MAX,
        },
        // drop
        SockFilter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // The kernel copies the program during the call; `prog` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// The outgoing TTL / hop limit of every segment.
pub fn set_ttl(sock: &impl AsFd, ttl: u8) -> io::Result<()> {
    let s = socket2::SockRef::from(sock);
    if is_v6_socket(sock) {
        s.set_unicast_hops_v6(u32::from(ttl))?;
        // For IPv4-mapped peers; not every kernel accepts it on an IPv6 socket.
        let _ = s.set_ttl_v4(u32::from(ttl));
        Ok(())
    } else {
        s.set_ttl_v4(u32::from(ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layout_matches_the_kernel() {
        // 128 (address) + 1 + 1 + 2 + 4 + 80 = 216 bytes.
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn the_route_monitor_filter_attaches() {
        // SAFETY: plain socket(2); the descriptor is owned below and closed on drop.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) };
        assert!(fd >= 0, "netlink socket");
        // SAFETY: `fd` was just returned by socket(2) and is not owned elsewhere.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        drop_own_route_adds(owned.as_raw_fd(), 80).expect("SO_ATTACH_FILTER");
    }

    #[test]
    fn md5_and_minttl_on_loopback_sockets() {
        let l4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind v4");
        set_md5_key(&l4, "127.0.0.2".parse().expect("addr"), Some(b"secret")).expect("md5 v4");
        set_md5_key(&l4, "127.0.0.2".parse().expect("addr"), None).expect("md5 delete");
        set_min_ttl(&l4, "127.0.0.2".parse().expect("addr"), 255).expect("minttl v4");
        set_ttl(&l4, 255).expect("ttl v4");
        set_min_ttl_all(&l4, 0).expect("minttl all v4");
        if let Ok(l6) = std::net::TcpListener::bind("[::1]:0") {
            set_md5_key(&l6, "::2".parse().expect("addr"), Some(b"secret")).expect("md5 v6");
            set_md5_key(&l6, "127.0.0.2".parse().expect("addr"), Some(b"x")).expect("mapped");
            set_min_ttl(&l6, "::2".parse().expect("addr"), 254).expect("minhop v6");
            set_min_ttl_all(&l6, 255).expect("minttl all v6");
        }
    }
}
