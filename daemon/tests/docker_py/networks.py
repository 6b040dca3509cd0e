"""docker-py (the Docker SDK for Python) against cnmd, the way its users
drive networks: run by daemon/tests/docker_py.rs in two stages around the
packet checks. Prints one JSON object of what the Rust test checks next.

usage: networks.py SOCKET up|down
"""

import json
import sys
import time

import docker
from docker.types import IPAMConfig, IPAMPool


def check(cond, what):
    if not cond:
        raise SystemExit(f"docker-py: {what}")


def up(client):
    api = client.api
    check(api.ping() is True, "ping")
    version = client.version()
    check(version["ApiVersion"], f"version: {version}")
    info = client.info()
    check(len(info["ID"]) == 36 and info["ID"] == client.info()["ID"], f"info's ID: {info}")
    check(info["Containers"] == 2 and info["Images"] == 0 and isinstance(info["Debug"], bool), f"info: {info}")
    check(info["Swarm"]["LocalNodeState"] == "inactive", f"info's Swarm: {info}")
    try:
        client.swarm.leave()
        check(False, "swarm leave succeeded")
    except docker.errors.APIError as e:
        check(e.status_code == 503 and "not part of a swarm" in str(e), f"swarm leave: {e}")

    started = int(time.time())
    # IPAMPool with only a subnet sends "IPRange": null, "Gateway": null.
    plain = client.networks.create(
        "py-plain",
        driver="bridge",
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="10.233.1.0/24")]),
        labels={"team": "py"},
    )
    full = client.networks.create(
        "py-full",
        driver="bridge",
        ipam=IPAMConfig(
            driver="default",
            pool_configs=[
                IPAMPool(
                    subnet="10.233.2.0/24",
                    iprange="10.233.2.128/25",
                    gateway="10.233.2.254",
                    aux_addresses={"router": "10.233.2.200"},
                )
            ],
        ),
        options={"com.docker.network.bridge.name": "brpyfull", "com.example.kept": "yes"},
        labels={"team": "py", "tier": "full"},
    )
    internal = client.networks.create("py-internal", internal=True)
    six = client.networks.create(
        "py-six",
        enable_ipv6=True,
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="10.233.3.0/24"), IPAMPool(subnet="fd00:233:3::/64")]),
    )

    full.reload()
    pool = full.attrs["IPAM"]["Config"][0]
    check(pool["Subnet"] == "10.233.2.0/24", f"subnet: {pool}")
    check(pool["IPRange"] == "10.233.2.128/25", f"range: {pool}")
    check(pool["Gateway"] == "10.233.2.254", f"gateway: {pool}")
    check(pool["AuxiliaryAddresses"] == {"router": "10.233.2.200"}, f"aux: {pool}")
    check(full.attrs["Options"]["com.docker.network.bridge.name"] == "brpyfull", f"options: {full.attrs}")
    # An option that is not the bridge's is kept and shown, as dockerd keeps it.
    check(full.attrs["Options"]["com.example.kept"] == "yes", f"kept option: {full.attrs}")
    try:
        client.networks.create("py-typo", options={"com.docker.network.bridge.nmae": "x"})
        check(False, "a typo in the bridge's own options was accepted")
    except docker.errors.APIError as e:
        check(e.status_code == 400 and "com.docker.network.bridge.nmae" in str(e), f"typo: {e}")
    check(client.networks.get("py-internal").attrs["Internal"] is True, "internal")
    check(client.networks.get(six.id).attrs["EnableIPv6"] is True, "ipv6")
    labelled = sorted(n.name for n in client.networks.list(filters={"label": "team=py"}))
    check(labelled == ["py-full", "py-plain"], f"label filter: {labelled}")
    named = [n.name for n in client.networks.list(names=["py-internal"])]
    check(named == ["py-internal"], f"name filter: {named}")
    by_id = [n.name for n in client.networks.list(ids=[plain.id])]
    check(by_id == ["py-plain"], f"id filter: {by_id}")

    # Sandboxes stand for containers: connect with an address and aliases.
    full.connect("web", ipv4_address="10.233.2.130", aliases=["www"])
    full.connect("cli")
    plain.connect("web")
    six.connect("cli", ipv6_address="fd00:233:3::10")
    full.reload()
    members = {c["Name"]: c["IPv4Address"] for c in full.attrs["Containers"].values()}
    check(members.get("web") == "10.233.2.130/24", f"web's address: {members}")
    try:
        full.connect("web")
        check(False, "a second connect succeeded")
    except docker.errors.APIError as e:
        check(e.status_code in (403, 409), f"second connect: {e}")
    try:
        client.networks.get("py-nope")
        check(False, "a missing network was found")
    except docker.errors.NotFound:
        pass
    try:
        client.networks.create("py-plain")
        check(False, "a duplicate name was accepted")
    except docker.errors.APIError as e:
        check(e.status_code == 409, f"duplicate: {e}")
    # The events of what was just done, replayed (since/until) and filtered.
    created = [
        e["Actor"]["Attributes"]["name"]
        for e in client.events(
            since=started, until=int(time.time()), decode=True, filters={"type": "network", "event": "create"}
        )
    ]
    check(created == ["py-plain", "py-full", "py-internal", "py-six"], f"create events: {created}")
    cli_ip = members["cli"].split("/")[0]
    return {"web": "10.233.2.130", "cli": cli_ip, "internal": internal.id}


def down(client):
    full = client.networks.get("py-full")
    full.disconnect("web")
    try:
        client.networks.get("py-plain").remove()
        check(False, "a network in use was removed")
    except docker.errors.APIError as e:
        check(e.status_code == 403 and "active endpoints" in str(e), f"remove in use: {e}")
    client.networks.get("py-plain").disconnect("web", force=True)
    full.disconnect("cli")
    client.networks.get("py-six").disconnect("cli")
    client.networks.get("py-internal").remove()
    pruned = client.networks.prune(filters={"label": "team=py"})
    deleted = sorted(pruned["NetworksDeleted"] or [])
    check(deleted == ["py-full", "py-plain"], f"prune: {pruned}")
    client.networks.get("py-six").remove()
    left = sorted(n.name for n in client.networks.list())
    return {"left": left}


def main():
    sock, stage = sys.argv[1], sys.argv[2]
    client = docker.DockerClient(base_url=f"unix://{sock}", version="auto")
    print(json.dumps(up(client) if stage == "up" else down(client)))


if __name__ == "__main__":
    main()
