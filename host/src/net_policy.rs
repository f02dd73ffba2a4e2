//! Network capabilities: which addresses an app's tasks may listen on or
//! connect to. Deny by default; each grant is a rule
//! `IP[/PREFIX]:PORTS`, kept in a cap-std `Pool` (`cap_primitives::net::Pool`) that answers the
//! checks.
//!
//! Rule syntax: an IPv4 address or CIDR range (`127.0.0.1`, `10.0.0.0/8`),
//! or an IPv6 one in brackets (`[::1]`, `[fd00::/8]`); then `:` and the ports:
//! one (`8080`), an inclusive range (`8000-8099`) or `*` for any. Port 0
//! (bind to a free port) is allowed by `*` and by ranges that start at 0.
//!
//! Rules and addresses are compared in one canonical form, so that no
//! spelling of an address reaches what its rules do not grant
//! (`canonical`): an IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) is
//! the IPv4 address it maps, in a rule and in a guest's call alike; so an
//! IPv6 rule never grants IPv4, and an IPv4 rule grants the mapped spelling
//! of its addresses. Connecting to an unspecified address (`0.0.0.0`, `[::]`)
//! reaches the loopback address on Linux, and is checked as such.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use cap_primitives::ambient_authority;
use cap_primitives::net::Pool;
use ipnet::{IpNet, Ipv4Net};
use wasmtime_wasi::sockets::SocketAddrUse;

/// One grant: a range of addresses and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    net: IpNet,
    ports: (u16, u16),
}

impl FromStr for NetRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("`{text}` is not a network rule like 127.0.0.1:8080 or [::1]/128:* ({why})")
        };
        let (host, ports) = text.rsplit_once(':').ok_or_else(|| bad("no `:PORTS`"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.contains(':') && !text.starts_with('[') {
            return Err(bad("put an IPv6 address in brackets"));
        }
        let net = match host.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(
                host.parse::<std::net::IpAddr>()
                    .map_err(|_| bad("bad address"))?,
            ),
        };
        let port = |p: &str| p.parse::<u16>().map_err(|_| bad("bad port"));
        let ports = match ports {
            "*" => (0, u16::MAX),
            p => match p.split_once('-') {
                Some((a, b)) => (port(a)?, port(b)?),
                None => (port(p)?, port(p)?),
            },
        };
        if ports.0 > ports.1 {
            return Err(bad("the port range is empty"));
        }
        Ok(NetRule {
            net: canonical_net(net),
            ports,
        })
    }
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.net {
            IpNet::V4(net) => write!(f, "{net}")?,
            IpNet::V6(net) => write!(f, "[{net}]")?,
        }
        match self.ports {
            (0, u16::MAX) => write!(f, ":*"),
            (a, b) if a == b => write!(f, ":{a}"),
            (a, b) => write!(f, ":{a}-{b}"),
        }
    }
}

/// What an app may do on the network.
#[derive(Clone, Default)]
pub struct NetPolicy {
    /// Addresses it may bind (TCP listen, UDP bind).
    listen: Pool,
    /// Addresses it may connect or send datagrams to.
    connect: Pool,
    /// Whether its WASI sockets may look host names up (through the host's
    /// resolver: a way out of the sandbox, so off unless granted).
    name_lookup: bool,
}

/// The two uses a rule can grant.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NetUse {
    Listen,
    Connect,
}

impl NetPolicy {
    /// A policy that grants `listen` and `connect`.
    pub fn new(listen: &[NetRule], connect: &[NetRule]) -> Self {
        let pool = |rules: &[NetRule]| {
            let mut pool = Pool::new();
            for rule in rules {
                // The end of the range is exclusive for cap-std.
                let end = rule.ports.1.checked_add(1);
                pool.insert_ip_net_port_range(rule.net, rule.ports.0, end, ambient_authority());
            }
            pool
        };
        NetPolicy {
            listen: pool(listen),
            connect: pool(connect),
            name_lookup: false,
        }
    }

    /// The same policy, with host-name lookups granted or not.
    pub fn with_name_lookup(mut self, allowed: bool) -> Self {
        self.name_lookup = allowed;
        self
    }

    /// Whether WASI sockets may look host names up.
    pub(crate) fn name_lookup(&self) -> bool {
        self.name_lookup
    }

    /// Whether a WASI socket may use `addr` as `used` says: wasmtime-wasi
    /// asks before each bind, listen, connect, datagram and accept. Binds
    /// and listens are `--listen`'s, connects and datagrams sent
    /// `--connect`'s. The wildcard with port 0 is the implicit bind of
    /// every client socket (at its connect or first datagram) and is
    /// allowed: a TCP socket bound so still needs a rule to listen. Peers
    /// that connect or send to a granted socket are not checked, as with
    /// mtask's own sockets.
    pub(crate) fn check_wasi(&self, addr: SocketAddr, used: SocketAddrUse) -> Result<(), String> {
        use SocketAddrUse::*;
        match used {
            TcpBind | UdpBind if addr.ip().is_unspecified() && addr.port() == 0 => Ok(()),
            TcpBind | TcpListen | UdpBind => self.check(&addr, NetUse::Listen).map(drop),
            TcpConnect | UdpSend => self.check(&addr, NetUse::Connect).map(drop),
            TcpAccept | UdpReceive => Ok(()),
        }
    }

    /// The canonical form of `addr` if the policy allows using it so (the
    /// caller then uses that form, which reaches the same place); the error
    /// says what was refused.
    pub(crate) fn check(&self, addr: &SocketAddr, what: NetUse) -> Result<SocketAddr, String> {
        let (pool, verb, flag) = match what {
            NetUse::Listen => (&self.listen, "binding", "--listen"),
            NetUse::Connect => (&self.connect, "connecting to", "--connect"),
        };
        let canonical = canonical(*addr, what);
        pool.check_addr(&canonical)
            .map(|()| canonical)
            .map_err(|_| format!("{verb} {addr} is not allowed (no {flag} rule grants it)"))
    }
}

/// The one spelling of `addr` that rules are matched against: an
/// IPv4-mapped IPv6 address is its IPv4 address, and the destination of a
/// connect to an unspecified address is the loopback address it reaches.
pub(crate) fn canonical(addr: SocketAddr, what: NetUse) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let ip = match (what, ip) {
        (NetUse::Connect, IpAddr::V4(v4)) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        (NetUse::Connect, IpAddr::V6(v6)) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        (_, ip) => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// A rule's network in canonical form: an IPv6 range inside the
/// IPv4-mapped block (`::ffff:0:0/96`) is the IPv4 range it maps.
fn canonical_net(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    match (
        v6.network().to_ipv4_mapped(),
        v6.prefix_len().checked_sub(96),
    ) {
        (Some(v4), Some(prefix)) => IpNet::V4(
            Ipv4Net::new(v4, prefix)
                .expect("a prefix of at most 32")
                .trunc(),
        ),
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rules(list: &[&str]) -> Vec<NetRule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[test]
    fn rules_parse_and_print_back() {
        for text in [
            "127.0.0.1/32:8080",
            "10.0.0.0/8:1000-2000",
            "[::1/128]:*",
            "0.0.0.0/0:*",
        ] {
            assert_eq!(text.parse::<NetRule>().unwrap().to_string(), text);
        }
        assert_eq!(
            "127.0.0.1:80".parse::<NetRule>().unwrap().to_string(),
            "127.0.0.1/32:80"
        );
        assert_eq!(
            "[::1]:80".parse::<NetRule>().unwrap().to_string(),
            "[::1/128]:80"
        );
        for bad in [
            "127.0.0.1",
            "::1:80",
            "127.0.0.1:http",
            "10.0.0.0/40:1",
            "1.2.3.4:9-8",
            "host:80",
        ] {
            assert!(bad.parse::<NetRule>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn checks_follow_the_rules_and_deny_the_rest() {
        let policy = NetPolicy::new(
            &rules(&["127.0.0.0/8:8000-8010", "[::1]:*"]),
            &rules(&["10.1.0.0/16:443"]),
        );
        assert!(
            policy
                .check(&addr("127.0.0.5:8010"), NetUse::Listen)
                .is_ok()
        );
        assert!(
            policy
                .check(&addr("127.0.0.5:8011"), NetUse::Listen)
                .is_err()
        );
        assert!(policy.check(&addr("[::1]:0"), NetUse::Listen).is_ok());
        assert!(policy.check(&addr("10.1.2.3:443"), NetUse::Connect).is_ok());
        assert!(policy.check(&addr("10.1.2.3:443"), NetUse::Listen).is_err());
        let denied = policy
            .check(&addr("10.2.0.1:443"), NetUse::Connect)
            .unwrap_err();
        assert_eq!(
            denied,
            "connecting to 10.2.0.1:443 is not allowed (no --connect rule grants it)"
        );
        assert!(
            NetPolicy::default()
                .check(&addr("127.0.0.1:80"), NetUse::Listen)
                .is_err()
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4_both_ways() {
        // An IPv6-only grant does not reach IPv4 through the mapped spelling.
        let v6 = NetPolicy::new(&rules(&["[::/0]:*"]), &rules(&["[::/0]:*"]));
        for use_ in [NetUse::Listen, NetUse::Connect] {
            assert!(v6.check(&addr("[::ffff:127.0.0.1]:80"), use_).is_err());
            assert!(v6.check(&addr("[::1]:80"), use_).is_ok());
        }
        // An IPv4 grant covers the mapped spelling of its addresses, and the
        // socket gets the IPv4 address.
        let v4 = NetPolicy::new(&rules(&["127.0.0.1:*"]), &rules(&["127.0.0.0/8:80"]));
        assert_eq!(
            v4.check(&addr("[::ffff:127.0.0.1]:0"), NetUse::Listen),
            Ok(addr("127.0.0.1:0"))
        );
        assert_eq!(
            v4.check(&addr("[::ffff:127.0.0.9]:80"), NetUse::Connect),
            Ok(addr("127.0.0.9:80"))
        );
        assert!(
            v4.check(&addr("[::ffff:10.0.0.1]:80"), NetUse::Connect)
                .is_err()
        );
        // A rule written in the mapped spelling is the IPv4 rule.
        assert_eq!(
            "[::ffff:10.0.0.0/104]:*"
                .parse::<NetRule>()
                .unwrap()
                .to_string(),
            "10.0.0.0/8:*"
        );
        let mapped = NetPolicy::new(&[], &rules(&["[::ffff:10.0.0.0/104]:*"]));
        assert!(mapped.check(&addr("10.1.2.3:80"), NetUse::Connect).is_ok());
        assert!(
            mapped
                .check(&addr("[::ffff:10.1.2.3]:80"), NetUse::Connect)
                .is_ok()
        );
        assert!(mapped.check(&addr("11.0.0.1:80"), NetUse::Connect).is_err());
    }

    #[test]
    fn connecting_to_an_unspecified_address_is_connecting_to_loopback() {
        // `0.0.0.0:*` reads like "nothing in particular", but a connect to
        // 0.0.0.0 reaches 127.0.0.1: it is checked as loopback.
        let policy = NetPolicy::new(&rules(&["0.0.0.0:*"]), &rules(&["0.0.0.0:*", "[::]:*"]));
        assert!(policy.check(&addr("0.0.0.0:80"), NetUse::Connect).is_err());
        assert!(policy.check(&addr("[::]:80"), NetUse::Connect).is_err());
        assert!(policy.check(&addr("0.0.0.0:80"), NetUse::Listen).is_ok());
        let loopback = NetPolicy::new(&[], &rules(&["127.0.0.1:80", "[::1]:80"]));
        assert_eq!(
            loopback.check(&addr("0.0.0.0:80"), NetUse::Connect),
            Ok(addr("127.0.0.1:80"))
        );
        assert_eq!(
            loopback.check(&addr("[::]:80"), NetUse::Connect),
            Ok(addr("[::1]:80"))
        );
    }
}
