//! `cnm-rootless-way-out`: a rootless controller whose namespace has slirp4netns
//! as its way out, proving by packets that (1) a sandbox reaches a TCP
//! server on the host's loopback, through the gateway's address, and (2) a
//! port the sandbox publishes answers on the host's loopback. "The host" is
//! the network namespace this program starts in. Run by
//! `tests/tests/rootless.rs` with `CNM_TEST_NO_USERNS=1`; as real root it
//! first becomes `nobody`, so the controller is truly unprivileged.
//!
//! Prints `CNM-WAY-OUT outbound OK`, `CNM-WAY-OUT published OK` and
//! `CNM-WAY-OUT unpublished OK` (the host port refuses once the sandbox is gone).

use anyhow::{Context, bail, ensure};
use cnm::driverapi::{PortBinding, Protocol};
use cnm::{Config, Controller, EndpointConfig, IpamConfig, JoinOptions, NetworkConfig, SandboxConfig};
use cnm_driver_bridge::BridgeDriver;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Whether this process is root of the initial user namespace.
fn real_root() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().eq(["0", "0", "4294967295"]))
}

/// An unconnected TCP socket made now, in the namespace this program
/// started in (a socket keeps the namespace it was made in).
fn host_socket() -> anyhow::Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    Ok(socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?)
}

/// Connects `sock` to `addr` (blocking, bounded by the kernel's SYN retries).
fn connect(sock: OwnedFd, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = addr else { return Err(std::io::ErrorKind::Unsupported.into()) };
    nix::sys::socket::connect(sock.as_raw_fd(), &nix::sys::socket::SockaddrIn::from(v4))?;
    Ok(TcpStream::from(sock))
}

/// As real root, before becoming `nobody`: where `/dev/net/tun` is root's
/// alone (machines without udev; Debian's udev makes it 0666, as slirp4netns
/// needs), this process gets a mount namespace of its own with a 0666 node
/// of the same device in its place. The machine's node is left as it is.
fn usable_tun_for_nobody() -> anyhow::Result<()> {
    use nix::mount::{MsFlags, mount};
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/net/tun").context("/dev/net/tun")?.permissions().mode();
    if mode & 0o006 == 0o006 {
        return Ok(());
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("a mount namespace of our own")?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
    let dir = std::env::temp_dir().join(format!("cnm-way-out-tun-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))?;
    let node = dir.join("tun");
    mknod(&node, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(10, 200)).context("mknod tun")?;
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666))?;
    mount(Some(&node), "/dev/net/tun", None::<&str>, MsFlags::MS_BIND, None::<&str>).context("bind the node")?;
    // The bind keeps the node alive: the tmpfs and its mount point (a
    // directory of the machine's /tmp) go now.
    nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).context("detach the tmpfs")?;
    std::fs::remove_dir(&dir).context("remove the tmpfs's mount point")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if real_root() {
        usable_tun_for_nobody()?;
        nix::unistd::setgroups(&[]).context("drop supplementary groups")?;
        nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).context("become group nogroup")?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).context("become nobody")?;
        // A change of user makes the process undumpable, and its /proc
        // files root's: it could not write its own uid_map.
        nix::sys::prctl::set_dumpable(true).context("make the process dumpable again")?;
    }
    // In the host's namespace, before leaving it: a server on its
    // loopback, a free port to publish, and sockets to reach that port later.
    let server = TcpListener::bind("127.0.0.1:0").context("listen on the host's loopback")?;
    let server_port = server.local_addr()?.port();
    let published = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let clients: Vec<OwnedFd> = (0..2).map(|_| host_socket()).collect::<anyhow::Result<_>>()?;

    let userns = cnm::rootless::enter_with(cnm::rootless::WayOut::Slirp4netns)
        .context("enter a user namespace with slirp4netns")?;
    eprintln!("rootless as uid {} with slirp4netns", userns.outer_uid);
    let server_thread = std::thread::spawn(move || -> std::io::Result<String> {
        let (mut s, peer) = server.accept()?;
        s.write_all(b"host loopback")?;
        Ok(peer.to_string())
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let dir = tempfile::Builder::new().prefix("cnm-way-out-").tempdir()?;
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.53\n")?;
        let config = Config::new(dir.path().join("data"))
            .exec_root(dir.path().join("run"))
            .host_resolv_conf(dir.path().join("resolv.conf"))
            .rootless(true);
        let ctrl = cnm_tests::with_defaults(Controller::builder(config))
            .driver_on_host(|host| BridgeDriver::new(host.clone()))
            .build()
            .await?;
        let net_config =
            NetworkConfig { ipv4: vec![IpamConfig::subnet("10.213.7.0/24".parse()?)], ..Default::default() };
        let net = ctrl.new_network("bridge", "way-out", net_config).await?;
        // The gateway slirp4netns gave the namespace: its address leads to the host's loopback.
        let host_nl = cnm::osl::Netlink::connect(&cnm::osl::Namespace::current()?, cnm::osl::DEFAULT_DEADLINE).await?;
        let gateway = host_nl
            .route_list(false)
            .await?
            .into_iter()
            .find(|r| r.destination.prefix_len() == 0)
            .and_then(|r| r.gateway)
            .context("slirp4netns set no default route")?;

        // (1) Outbound: a sandbox reaches the host's loopback server.
        let a = ctrl.new_sandbox("a", SandboxConfig::default()).await?;
        let ep = net.create_endpoint("a", EndpointConfig::default()).await?;
        ep.join(&a, JoinOptions::default()).await?;
        let answer = cnm::osl::probe::tcp_exchange(
            &a.namespace()?,
            SocketAddr::new(gateway, server_port),
            Vec::new(),
            Duration::from_secs(5),
        )
        .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let routes = host_nl.route_list(false).await?;
                let links = host_nl.link_list().await?;
                bail!(
                    "from the sandbox to the host's loopback through {gateway}: {e}; routes {routes:?}; links {links:?}"
                )
            }
        };
        ensure!(answer == b"host loopback", "the host's server answered {answer:?}");
        let peer = server_thread.join().map_err(|_| anyhow::anyhow!("server thread"))??;
        println!("CNM-WAY-OUT outbound OK (sandbox -> {gateway}:{server_port} -> host 127.0.0.1, seen from {peer})");

        // (2) Published: port `published` on the host reaches the sandbox's port 8080.
        let binding = PortBinding {
            proto: Protocol::Tcp,
            ip: None,
            port: 8080,
            host_ip: None,
            host_port: published,
            host_port_end: 0,
        };
        let b = ctrl.new_sandbox("b", SandboxConfig { port_bindings: vec![binding], ..Default::default() }).await?;
        let ep = net.create_endpoint("b", EndpointConfig::default()).await?;
        ep.join(&b, JoinOptions::default()).await?;
        let _web = cnm_tests::peer_echo_server(&b.namespace()?, "0.0.0.0:8080".parse()?, 1).await;
        let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), published);
        let mut clients = clients.into_iter();
        // The forward is in place when the join returns: one connection.
        let mut s = connect(clients.next().context("a host socket")?, target)
            .with_context(|| format!("connect to the published port {target} on the host"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut seen = String::new();
        s.read_to_string(&mut seen)?;
        ensure!(!seen.is_empty(), "the sandbox's server answered nothing");
        println!("CNM-WAY-OUT published OK (host 127.0.0.1:{published} -> sandbox :8080, which saw {seen})");

        // Gone with the sandbox: the host's port refuses.
        b.delete().await?;
        match connect(clients.next().context("a host socket")?, target) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => bail!("the host port {published} is still forwarded after the sandbox went: {other:?}"),
        }
        println!("CNM-WAY-OUT unpublished OK");
        cnm_tests::remove_all(&ctrl).await;
        Ok(())
    })
}
