//! Links: bridges, veth pairs, macvlan, 802.1q VLAN and dummy links;
//! up/down, rename, MAC, MTU, controller (bridge port), moves between
//! namespaces and deletion (`ip link …`).

use crate::{Error, Namespace, Netlink, Result};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::link::{IpVlanFlags, IpVlanMode, MacVlanMode};
use rtnetlink::{LinkBridge, LinkDummy, LinkIpVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVlan, LinkVxlan};
use std::os::fd::AsRawFd;

/// The kind of a link, as far as cnm cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// Anything else (`lo`, physical devices, …), with the kernel's kind name if any.
    Other(String),
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The kind of link.
    pub kind: LinkKind,
    /// The MAC address, for Ethernet-like links.
    pub mac: Option<[u8; 6]>,
    /// The MTU.
    pub mtu: u32,
    /// Whether the link is administratively up.
    pub up: bool,
    /// Whether the link has a carrier (`LOWER_UP`): a veth has one only
    /// while both ends are up.
    pub carrier: bool,
    /// The index of the bridge this link is a port of.
    pub controller: Option<u32>,
    /// The link's alias (`ip link set X alias …`); cnm marks the bridges it creates with it.
    pub alias: Option<String>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: LinkKind::Other(String::new()),
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            controller: None,
            alias: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Controller(c) => link.controller = Some(c),
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&a);
                    link.mac = Some(mac);
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = match kind {
                                InfoKind::Bridge => LinkKind::Bridge,
                                InfoKind::Veth => LinkKind::Veth,
                                other => LinkKind::Other(other.to_string()),
                            };
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// Flags of a bridge port; `None` leaves the kernel's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortFlags {
    /// Isolated ports cannot reach each other, only the bridge and ports that are not isolated.
    pub isolated: Option<bool>,
    /// A hairpin port may receive frames back out of the port they came in by.
    pub hairpin: Option<bool>,
}

impl BridgePortFlags {
    /// Whether no flag is set (nothing to change).
    pub fn is_empty(&self) -> bool {
        self.isolated.is_none() && self.hairpin.is_none()
    }
}

impl std::fmt::Display for BridgePortFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = |v: bool| if v { "on" } else { "off" };
        let mut sep = "";
        if let Some(v) = self.isolated {
            write!(f, "isolated {}", on(v))?;
            sep = " ";
        }
        if let Some(v) = self.hairpin {
            write!(f, "{sep}hairpin {}", on(v))?;
        }
        Ok(())
    }
}

/// A veth pair to create (`ip link add NAME type veth peer name PEER netns NS`).
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    /// The name of the end that stays in the handle's namespace.
    pub name: &'a str,
    /// The name of the other end.
    pub peer_name: &'a str,
    /// The namespace the peer is created in directly (much cheaper than a
    /// later move); `None` keeps it beside `name`.
    pub peer_namespace: Option<&'a Namespace>,
    /// The MTU of both ends.
    pub mtu: Option<u32>,
    /// The MAC address of the peer.
    pub peer_mac: Option<[u8; 6]>,
    /// The bridge the local end becomes a port of.
    pub controller: Option<u32>,
    /// Whether the local end is brought up in the same request.
    ///
    /// The peer cannot be brought up in that request when it is created in
    /// another namespace (the kernel answers ENOTCONN): bring it up from inside.
    pub up: bool,
}

/// How a macvlan link shares its parent with its siblings (`ip link … type macvlan mode M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacvlanMode {
    /// Siblings talk to each other directly (Docker's default).
    #[default]
    Bridge,
    /// Siblings cannot talk to each other.
    Private,
    /// Traffic between siblings goes out to the switch and back.
    Vepa,
    /// One link takes the parent over.
    Passthru,
}

impl MacvlanMode {
    /// Docker's name of the mode (`macvlan_mode`).
    pub fn name(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

/// How ipvlan links reach their parent's segment (`ip link … type ipvlan mode M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpvlanMode {
    /// Switched at layer 2 on the parent (Docker's default).
    #[default]
    L2,
    /// Routed at layer 3 by the parent's namespace; no ARP or broadcast on the links.
    L3,
    /// As `L3`, with the parent's netfilter hooks seeing the traffic.
    L3s,
}

impl IpvlanMode {
    /// Docker's name of the mode (`ipvlan_mode`).
    pub fn name(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }
}

/// How ipvlan siblings reach each other (`ip link … type ipvlan mode M F`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpvlanFlag {
    /// Siblings talk to each other directly (Docker's default).
    #[default]
    Bridge,
    /// Siblings cannot talk to each other.
    Private,
    /// Traffic between siblings goes out to the switch and back.
    Vepa,
}

impl IpvlanFlag {
    /// Docker's name of the flag (`ipvlan_flag`).
    pub fn name(self) -> &'static str {
        match self {
            IpvlanFlag::Bridge => "bridge",
            IpvlanFlag::Private => "private",
            IpvlanFlag::Vepa => "vepa",
        }
    }
}

/// Checks that `name` is a valid interface name.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > crate::MAX_IFNAME_LEN
        || name.contains(['/', ':', ' ', '\0'])
        || name == "."
        || name == ".."
    {
        return Err(Error::Invalid(format!(
            "invalid interface name {name:?}: 1 to 15 characters, no '/', ':' or spaces"
        )));
    }
    Ok(())
}

impl Netlink {
    /// The link named `name`, if it exists (`ip link show NAME`).
    pub async fn link_get(&self, name: &str) -> Result<Option<Link>> {
        check_name(name)?;
        let req = self.handle.link().get().match_name(name).execute();
        match self.get_one(|| format!("ip link show {name}"), req).await {
            Ok(mut v) => Ok(v.pop().map(Link::from_message)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link with index `index`, if it exists.
    pub async fn link_get_index(&self, index: u32) -> Result<Option<Link>> {
        let req = self.handle.link().get().match_index(index).execute();
        match self.get_one(|| format!("ip link show index {index}"), req).await {
            Ok(mut v) => Ok(v.pop().map(Link::from_message)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace (`ip link show`).
    pub async fn link_list(&self) -> Result<Vec<Link>> {
        let req = self.handle.link().get();
        let msgs = self.dump(|| "ip link show".to_string(), move || req.execute()).await?;
        Ok(msgs.into_iter().map(Link::from_message).collect())
    }

    /// Creates a bridge (`ip link add NAME type bridge`), with an optional
    /// MTU, MAC and alias, and returns it.
    pub async fn link_add_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        alias: Option<&str>,
    ) -> Result<Link> {
        check_name(name)?;
        let mut builder = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = mac {
            builder = builder.address(mac.to_vec());
        }
        let req = self.handle.link().add(builder.build()).execute();
        self.call(|| format!("ip link add {name} type bridge"), req).await?;
        let link =
            self.link_get(name).await?.ok_or_else(|| Error::NotFound(format!("bridge {name} after creation")))?;
        if let Some(alias) = alias {
            // The kernel ignores IFLA_IFALIAS in a link creation request: set it afterwards.
            let msg = LinkUnspec::new_with_index(link.index).alias(alias).build();
            self.link_set(|| format!("ip link set {name} alias {alias}"), msg).await?;
            return Ok(Link { alias: Some(alias.to_string()), ..link });
        }
        Ok(link)
    }

    /// Creates a veth pair as `spec` describes; returns the local end.
    pub async fn link_create_veth(&self, spec: &VethSpec<'_>) -> Result<Link> {
        self.link_add_veth(spec).await?;
        self.link_get(spec.name).await?.ok_or_else(|| Error::NotFound(format!("new veth {}", spec.name)))
    }

    /// Creates a veth pair (see [`Netlink::link_create_veth`], which also returns the local end).
    pub async fn link_add_veth(&self, spec: &VethSpec<'_>) -> Result<()> {
        check_name(spec.name)?;
        check_name(spec.peer_name)?;
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(spec.peer_name.to_string());
        if let Some(mtu) = spec.mtu {
            peer = peer.mtu(mtu);
        }
        if let Some(mac) = spec.peer_mac {
            peer = peer.address(mac.to_vec());
        }
        if let Some(ns) = spec.peer_namespace {
            peer = peer.setns_by_fd(ns.fd().as_raw_fd());
        }
        let mut local = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(spec.name.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
        if let Some(mtu) = spec.mtu {
            local = local.mtu(mtu);
        }
        if let Some(controller) = spec.controller {
            local = local.controller(controller);
        }
        if spec.up {
            local = local.up();
        }
        let req = self.handle.link().add(local.build()).execute();
        self.call(|| format!("ip link add {} type veth peer name {}", spec.name, spec.peer_name), req).await
    }

    async fn link_set(&self, op: impl FnOnce() -> String, msg: LinkMessage) -> Result<()> {
        let req = self.handle.link().set(msg).execute();
        self.call(op, req).await
    }

    /// Brings a link up (`ip link set dev X up`).
    pub async fn link_set_up(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.link_set(|| format!("ip link set index {index} up"), msg).await
    }

    /// Brings a link down.
    pub async fn link_set_down(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.link_set(|| format!("ip link set index {index} down"), msg).await
    }

    /// Makes a link a port of bridge `controller` (`ip link set X master BR`).
    pub async fn link_set_controller(&self, index: u32, controller: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).controller(controller).build();
        self.link_set(|| format!("ip link set index {index} master {controller}"), msg).await
    }

    /// Sets a bridge port's flags (`ip link set X type bridge_slave isolated
    /// on hairpin on`); flags left `None` keep their value.
    pub async fn link_set_bridge_port(&self, index: u32, flags: BridgePortFlags) -> Result<()> {
        let mut b = rtnetlink::LinkBridgePort::new(index);
        if let Some(v) = flags.isolated {
            b = b.isolated(v);
        }
        if let Some(v) = flags.hairpin {
            b = b.hairpin(v);
        }
        let req = self.handle.link().set_port(b.build()).execute();
        self.call(|| format!("ip link set index {index} type bridge_slave {flags}"), req).await
    }

    /// Takes a link out of service in one request: down, and marked with `alias`.
    pub async fn link_retire(&self, index: u32, alias: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().alias(alias).build();
        self.link_set(|| format!("ip link set index {index} down alias {alias}"), msg).await
    }

    /// Takes a link out of service in one request: down, marked with
    /// `alias`, and moved to link group `group` (so that one
    /// [`Netlink::link_del_group`] deletes every retired link at once).
    pub async fn link_retire_to_group(&self, index: u32, alias: &str, group: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().alias(alias).link_group(group).build();
        self.link_set(|| format!("ip link set index {index} down alias {alias} group {group}"), msg).await
    }

    /// Marks a link with `alias` and moves it to link group `group`, leaving
    /// it up: for a link that already carries nothing (a bridge without
    /// ports or addresses), where taking it down would only cost the kernel
    /// a grace period.
    pub async fn link_mark_to_group(&self, index: u32, alias: &str, group: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).alias(alias).link_group(group).build();
        self.link_set(|| format!("ip link set index {index} alias {alias} group {group}"), msg).await
    }

    /// Deletes every link of link group `group` in one request (`ip link del
    /// group N`): the kernel waits for one RCU grace period for all of them.
    /// No link in the group is fine.
    pub async fn link_del_group(&self, group: u32) -> Result<()> {
        let mut req = self.handle.link().del(0);
        req.message_mut().attributes.push(LinkAttribute::Group(group));
        match self.call(|| format!("ip link del group {group}"), req.execute()).await {
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    /// Sets the MTU of a link.
    pub async fn link_set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.link_set(|| format!("ip link set index {index} mtu {mtu}"), msg).await
    }

    /// Renames a (down) link and optionally sets its MAC and brings it up, in one request.
    pub async fn link_configure(&self, index: u32, name: Option<&str>, mac: Option<[u8; 6]>, up: bool) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(index);
        if let Some(name) = name {
            check_name(name)?;
            b = b.name(name.to_string());
        }
        if let Some(mac) = mac {
            b = b.address(mac.to_vec());
        }
        if up {
            b = b.up();
        }
        self.link_set(|| format!("ip link set index {index} name {name:?} up {up}"), b.build()).await
    }

    /// Moves a link into namespace `ns`, optionally renaming it in the same request.
    pub async fn link_move(&self, index: u32, ns: &Namespace, new_name: Option<&str>) -> Result<()> {
        let mut b = LinkUnspec::new_with_index(index).setns_by_fd(ns.fd().as_raw_fd());
        if let Some(name) = new_name {
            check_name(name)?;
            b = b.name(name.to_string());
        }
        self.link_set(|| format!("ip link set index {index} netns {:?}", ns.path()), b.build()).await
    }

    /// Creates a macvlan link named `name` on the link `parent` (an index),
    /// down, with `mac` if given (`ip link add NAME link PARENT type macvlan mode M`).
    pub async fn link_add_macvlan(
        &self,
        name: &str,
        parent: u32,
        mode: MacvlanMode,
        mac: Option<[u8; 6]>,
    ) -> Result<()> {
        check_name(name)?;
        let kernel_mode = match mode {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        let mut b = LinkMacVlan::new(name, parent, kernel_mode);
        if let Some(mac) = mac {
            b = b.address(mac.to_vec());
        }
        let req = self.handle.link().add(b.build()).execute();
        self.call(|| format!("ip link add {name} link index {parent} type macvlan mode {}", mode.name()), req).await
    }

    /// Creates an ipvlan link named `name` on the link `parent` (an index),
    /// down (`ip link add NAME link PARENT type ipvlan mode M F`). The mode
    /// and flag belong to the parent's whole ipvlan port: the last link
    /// made sets them for all its siblings.
    pub async fn link_add_ipvlan(&self, name: &str, parent: u32, mode: IpvlanMode, flag: IpvlanFlag) -> Result<()> {
        check_name(name)?;
        let kernel_mode = match mode {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        };
        let kernel_flag = match flag {
            IpvlanFlag::Bridge => IpVlanFlags::empty(),
            IpvlanFlag::Private => IpVlanFlags::Private,
            IpvlanFlag::Vepa => IpVlanFlags::Vepa,
        };
        let req =
            self.handle.link().add(LinkIpVlan::new(name, parent, kernel_mode).flag(kernel_flag).build()).execute();
        let op = || format!("ip link add {name} link index {parent} type ipvlan mode {} {}", mode.name(), flag.name());
        self.call(op, req).await
    }

    /// Creates an 802.1q VLAN link `name` with id `vlan` on `parent`, up
    /// (`ip link add NAME link PARENT type vlan id VLAN`).
    pub async fn link_add_vlan(&self, name: &str, parent: u32, vlan: u16) -> Result<()> {
        check_name(name)?;
        let req = self.handle.link().add(LinkVlan::new(name, parent, vlan).up().build()).execute();
        self.call(|| format!("ip link add {name} link index {parent} type vlan id {vlan}"), req).await
    }

    /// [`Netlink::link_add_vlan`], then the link marked with `alias` (who
    /// made it: a restarted process tells its own links from the user's by
    /// the mark). The kernel ignores an alias in a creating request, so the
    /// mark is a second one; if it fails, the link is deleted again. A
    /// crash between the two leaves an unmarked link, taken for the user's.
    pub async fn link_add_vlan_marked(&self, name: &str, parent: u32, vlan: u16, alias: &str) -> Result<()> {
        self.link_add_vlan(name, parent, vlan).await?;
        let marked = async {
            let link = self.link_get(name).await?.ok_or_else(|| Error::NotFound(format!("link {name}")))?;
            let msg = LinkUnspec::new_with_index(link.index).alias(alias).build();
            self.link_set(|| format!("ip link set {name} alias {alias}"), msg).await
        };
        if let Err(e) = marked.await {
            let _ = self.link_del_by_name(name).await;
            return Err(e);
        }
        Ok(())
    }

    /// Creates a VXLAN link `name` with id `vni` (down): UDP `port`, source
    /// address `local`, no learning, answering ARP from its neighbour table
    /// (`ip link add NAME type vxlan id VNI local IP dstport PORT nolearning proxy`).
    /// Its UDP socket lives in the namespace it is created in.
    pub async fn link_add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: std::net::Ipv4Addr,
        port: u16,
        mtu: u32,
    ) -> Result<()> {
        check_name(name)?;
        let msg = LinkVxlan::new(name, vni).local(local).port(port).learning(false).proxy(true).mtu(mtu).build();
        let req = self.handle.link().add(msg).execute();
        self.call(|| format!("ip link add {name} type vxlan id {vni} local {local} dstport {port}"), req).await
    }

    /// Creates a dummy link `name`, up (`ip link add NAME type dummy`).
    pub async fn link_add_dummy(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let req = self.handle.link().add(LinkDummy::new(name).up().build()).execute();
        self.call(|| format!("ip link add {name} type dummy"), req).await
    }

    /// Deletes a link (`ip link del`). Deleting one end of a veth removes both.
    pub async fn link_del(&self, index: u32) -> Result<()> {
        let req = self.handle.link().del(index).execute();
        self.call(|| format!("ip link del index {index}"), req).await
    }

    /// Deletes the link named `name` if it exists; returns whether it existed.
    pub async fn link_del_by_name(&self, name: &str) -> Result<bool> {
        match self.link_get(name).await? {
            None => Ok(false),
            Some(link) => match self.link_del(link.index).await {
                Ok(()) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            },
        }
    }
}
