"""How the lab maps a site onto engines, addresses and device names."""

import os

import yaml

import lvstun.site
from lvs_lab import lab as lab_mod
from lvs_lab import plan, traffic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _seed_site():
    with open(os.path.join(REPO, "pillar", "lvs", "seed.sls"), encoding="utf-8") as fh:
        return lvstun.site.parse(yaml.safe_load(fh))


def test_seed_site_becomes_uml_hosts_router_namespace_and_client():
    hosts = plan.build(_seed_site())
    assert {n: (h.engine, h.role, h.minion) for n, h in hosts.items()} == {
        "router": ("netns", "router", True),
        "director": ("uml", "director", True),
        "rs1": ("uml", "realserver", True),
        "rs2": ("uml", "realserver", True),
        "rs3": ("uml", "realserver", True),
        "client": ("netns", "client", False),
    }
    assert hosts["rs3"].lan_address == "10.10.24.23/24"
    assert hosts["director"].gateway == "10.10.24.1"
    assert hosts["client"].lan_address == "112.2.21.1/24"
    assert hosts["client"].gateway == "112.2.21.88"
    mgmt = [h.mgmt_ip for h in hosts.values() if h.minion]
    assert len(set(mgmt)) == len(mgmt) and plan.MASTER_ADDRESS not in mgmt


def test_device_names_fit_the_kernel_limit_and_are_unique():
    hosts = plan.build(_seed_site())
    names = [h.tap(net) for h in hosts.values() for net in ("lan", "mgmt")]
    assert len(set(names)) == len(names)
    assert all(len(name) <= 15 for name in names)


def test_director_counters_are_read_from_iptables_save():
    save = "\n".join(
        [
            "*mangle",
            "[12:720] -A PREROUTING -j LVSLAB_PROBE",
            "[30:1800] -A LVSLAB_PROBE -d 10.10.24.88/32 -p tcp -m comment --comment requests -m tcp --dport 80",
            "[0:0] -A LVSLAB_PROBE -s 10.10.24.88/32 -p tcp -m comment --comment responses -m tcp --sport 80",
            "[31:2480] -A LVSLAB_PROBE_OUT -p ipencap -m comment --comment ipip",
            "COMMIT",
        ]
    )
    assert traffic.read_counters(save) == {"requests": (30, 1800), "responses": (0, 0), "ipip": (31, 2480)}


def _service(scheduler, weights, flags=(), persistent=0):
    backends = tuple(lvstun.site.Backend(mid, f"10.0.0.{i}", 80, w) for i, (mid, w) in enumerate(weights.items()))
    return lvstun.site.Service("web", "10.0.0.88", "10.0.0.88", "tcp", 80, scheduler, backends, tuple(flags),
                                persistent, netmask=None, check={}, floor=1, sorry=None, sorry_backend=None,
                                encap=lvstun.site.Encap.default())


def test_share_rule_follows_the_scheduler():
    weights = {"rs1": 1, "rs2": 3}
    assert traffic.share_rule(_service("rr", weights))[0] == traffic.EQUAL
    assert traffic.share_rule(_service("wrr", weights))[0] == traffic.WEIGHTED
    for name in ("sh", "dh", "mh"):
        assert traffic.share_rule(_service(name, weights))[0] == traffic.ONE
    assert traffic.share_rule(_service("sh", weights, flags=["sh-port"]))[0] == traffic.ANY
    assert traffic.share_rule(_service("mh", weights, flags=["mh-port"]))[0] == traffic.ANY
    assert traffic.share_rule(_service("wlc", weights, persistent=300))[0] == traffic.ONE
    for name in ("lc", "wlc", "sed", "nq", "fo", "ovf", "lblc", "lblcr", "twos"):
        rule, text = traffic.share_rule(_service(name, weights))
        assert rule == traffic.ANY and text.startswith(f"{name}:")


def test_rr_ignores_weights_other_than_zero():
    """The issue's case: rr over weights 1 and 3 answers 20/20 of 40, and that is right."""
    backends = _service("rr", {"rs1": 1, "rs2": 3, "rs3": 0}).backends
    assert traffic.expected_shares(traffic.EQUAL, backends, 40) == {"rs1": 20, "rs2": 20}
    assert traffic.shares_hold(traffic.EQUAL, {"rs1": 20, "rs2": 20}, backends, 40)
    assert not traffic.shares_hold(traffic.WEIGHTED, {"rs1": 20, "rs2": 20}, backends, 40)
    assert traffic.shares_hold(traffic.WEIGHTED, {"rs1": 10, "rs2": 30}, backends, 40)
    assert not traffic.shares_hold(traffic.EQUAL, {"rs1": 20, "rs2": 19, "rs3": 1}, backends, 40)  # weight 0


def test_one_and_any_rules():
    backends = _service("sh", {"rs1": 1, "rs2": 3, "rs3": 0}).backends
    assert traffic.expected_shares(traffic.ONE, backends, 10) is None
    assert traffic.shares_hold(traffic.ONE, {"rs2": 10}, backends, 10)
    assert not traffic.shares_hold(traffic.ONE, {"rs1": 5, "rs2": 5}, backends, 10)
    assert not traffic.shares_hold(traffic.ONE, {"rs3": 10}, backends, 10)
    assert traffic.shares_hold(traffic.ANY, {"rs1": 9, "rs2": 1}, backends, 10)
    assert not traffic.shares_hold(traffic.ANY, {"rs1": 9, "rs3": 1}, backends, 10)
    assert not traffic.shares_hold(traffic.ANY, {}, backends, 10)


def test_host_env_values_stay_values_when_the_guest_sources_them(tmp_path):
    """A minion id or path with quotes or $( ) must not run anything in the guest's init."""
    import subprocess  # noqa: PLC0415

    from lvs_lab.system import shell_assignments  # noqa: PLC0415

    marker = tmp_path / "ran"
    evil = f"rs1'; touch {marker}; echo '$(touch {marker})\nx"
    env_file = tmp_path / "host.env"
    env_file.write_text(shell_assignments({"LAB_NAME": evil, "LAB_BIND": "/a b"}))
    out = subprocess.run(["sh", "-c", f'. {env_file}; printf "%s|%s" "$LAB_NAME" "$LAB_BIND"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == f"{evil}|/a b" and not marker.exists()


def test_private_keys_are_created_owner_only(tmp_path):
    import os  # noqa: PLC0415
    import stat  # noqa: PLC0415

    from lvs_lab.system import write_new  # noqa: PLC0415

    path = tmp_path / "minion.pem"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_new(str(path), "secret", 0o400)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o400 and path.read_text() == "secret"


def _site(name):
    with open(os.path.join(REPO, "pillar", "lvs", f"{name}.sls"), encoding="utf-8") as fh:
        return lvstun.site.parse(yaml.safe_load(fh))


def test_a_further_site_gets_its_own_bridge_and_client_and_numbers_on():
    first = plan.build(_site("seed"))
    second = plan.build(_site("second"), key="second", first_index=max(h.index for h in first.values()) + 1)
    assert not set(first) & set(second)
    assert {h.bridge for h in first.values() if h.role != "client"} == {plan.LAN_BRIDGE}
    bridges = {h.bridge for h in second.values() if h.role != "client"}
    assert len(bridges) == 1 and plan.LAN_BRIDGE not in bridges
    assert "client-second" in second and second["client-second"].role == "client"
    assert {h.site for h in second.values()} == {"second"} and {h.site for h in first.values()} == {None}
    both = [*first.values(), *second.values()]
    for unique in (lambda h: h.index, lambda h: h.tap("lan"), lambda h: h.mac("lan")):
        assert len({unique(h) for h in both}) == len(both)
    mgmt = [h.mgmt_ip for h in both if h.minion]
    assert len(set(mgmt)) == len(mgmt) and plan.MASTER_ADDRESS not in mgmt
    # The same addresses as the first site: each on a network of its own.
    assert second["b-rs1"].lan_address == first["rs1"].lan_address


def test_with_a_further_site_each_sites_minions_are_its_top_target(tmp_path):
    """Salt itself compiles each minion's pillar from the lab's top file: the seed's
    minions get the seed, the second site's get theirs, and no target is '*'."""
    lab = lab_mod.Lab(state_dir=str(tmp_path))
    lab.pillar_dir = os.path.join(REPO, "pillar")
    lab.site_name = "seed"
    lab.hosts = plan.build(_site("seed"))
    lab.reset_pillar()
    with open(tmp_path / "pillar" / "top.sls", encoding="utf-8") as fh:
        assert list(yaml.safe_load(fh)["base"]) == ["*"]
    lab.hosts.update(plan.build(_site("second"), key="second", first_index=len(lab.hosts)))
    lab._serve_top()
    with open(tmp_path / "pillar" / "top.sls", encoding="utf-8") as fh:
        targets = yaml.safe_load(fh)["base"]
    assert "*" not in targets and len(targets) == 2
    assert lab.extra_sites == ["second"]
    assert lab.site().name == "seed" and lab.site("second").name == "second"
    assert sorted(lab.site("second").hosts) == ["b-director", "b-rs1", "b-rs2"]
