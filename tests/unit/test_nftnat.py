"""The router's 1:1 NAT (``_modules/nftnat.py``): the table it wants, the drift it
reports against the table nft lists, and the mappings it refuses. The kernel side
(``nft -j``) is tested on the lab's router (tests/lab/test_site_seed.py)."""

import pytest
from salt.exceptions import SaltInvocationError

from tests.unit.checkout import load

SEED = [{"public": "112.2.21.88", "vip": "10.10.24.88"}]


@pytest.fixture(name="nftnat")
def fixture_nftnat():
    return load("nftnat_under_test", "_modules", "nftnat.py")


def test_each_mapping_is_a_dnat_and_an_snat_rule_on_the_wan_interface(nftnat):
    objects = nftnat.desired(SEED, "wan0")
    assert objects[0] == {"table": {"family": "ip", "name": "lvs_nat"}}
    chains = [o["chain"] for o in objects if "chain" in o]
    assert [(c["name"], c["type"], c["hook"], c["prio"]) for c in chains] == [
        ("prerouting", "nat", "prerouting", -100), ("postrouting", "nat", "postrouting", 100)]
    assert [nftnat._text(o) for o in objects if "rule" in o] == [
        "prerouting: iifname wan0 ip daddr 112.2.21.88 dnat to 10.10.24.88",
        "postrouting: oifname wan0 ip saddr 10.10.24.88 snat to 112.2.21.88"]


def test_mappings_are_sorted_by_public_address(nftnat):
    mappings = [{"public": "112.2.21.90", "vip": "10.10.24.90"}, {"public": "112.2.21.89", "vip": "10.10.24.89"}]
    assert nftnat._mappings(mappings) == [("112.2.21.89", "10.10.24.89"), ("112.2.21.90", "10.10.24.90")]


@pytest.mark.parametrize(("mappings", "message"), [
    ([{"public": "112.2.21.88"}], "needs 'public' and 'vip'"),
    (["112.2.21.88"], "needs 'public' and 'vip'"),
    ([{"public": "112.2.21.88", "vip": "fd00::88"}], "must be IPv4 addresses"),
    ([{"public": "112.2.21", "vip": "10.10.24.88"}], "must be IPv4 addresses"),
    ([{"public": "112.2.21.88", "vip": "10.10.24.88"}, {"public": "112.2.21.88", "vip": "10.10.24.89"}],
     "mapped twice"),
    ([{"public": "112.2.21.88", "vip": "10.10.24.88"}] * 2, "mapped twice"),
])
def test_bad_mappings_are_refused_before_nft_runs(nftnat, mappings, message):
    with pytest.raises(SaltInvocationError, match=message):
        nftnat.desired(mappings, "wan0")


def test_no_drift_when_the_table_is_as_wanted(nftnat, monkeypatch):
    monkeypatch.setattr(nftnat, "current", lambda table: nftnat.desired(SEED, "wan0", table))
    assert nftnat.check(SEED, "wan0") == []


def test_a_missing_table_is_one_drift_with_every_line_coming(nftnat, monkeypatch):
    monkeypatch.setattr(nftnat, "current", lambda table: None)
    (record,) = nftnat.check(SEED, "wan0")
    assert (record["kind"], record["object"], record["have"]) == ("nft-table", "ip lvs_nat", None)
    assert len(record["want"]) == 5  # the table, two chains, two rules


def test_a_changed_mapping_shows_only_the_lines_going_and_coming(nftnat, monkeypatch):
    monkeypatch.setattr(nftnat, "current", lambda table: nftnat.desired(SEED, "wan0", table))
    moved = [{"public": "112.2.21.88", "vip": "10.10.24.89"}]
    (record,) = nftnat.check(moved, "wan0")
    assert record["have"] == ["prerouting: iifname wan0 ip daddr 112.2.21.88 dnat to 10.10.24.88",
                              "postrouting: oifname wan0 ip saddr 10.10.24.88 snat to 112.2.21.88"]
    assert record["want"] == ["prerouting: iifname wan0 ip daddr 112.2.21.88 dnat to 10.10.24.89",
                              "postrouting: oifname wan0 ip saddr 10.10.24.89 snat to 112.2.21.88"]


def test_a_chain_policy_changed_by_hand_is_a_drift(nftnat, monkeypatch):
    have = nftnat.desired(SEED, "wan0")
    have[1] = {"chain": {**have[1]["chain"], "policy": "drop"}}
    monkeypatch.setattr(nftnat, "current", lambda table: have)
    (record,) = nftnat.check(SEED, "wan0")
    assert "policy drop" in record["have"][0] and "policy accept" in record["want"][0]


def test_a_difference_the_text_does_not_show_lists_the_whole_table(nftnat, monkeypatch):
    """A rule's comment changed by hand: the same lines as text, yet not as wanted."""
    have = nftnat.desired(SEED, "wan0")
    have[3] = {"rule": {**have[3]["rule"], "comment": "edited"}}
    lines = [nftnat._text(o) for o in nftnat.desired(SEED, "wan0")]
    monkeypatch.setattr(nftnat, "current", lambda table: have)
    (record,) = nftnat.check(SEED, "wan0")
    assert record["want"] == lines and record["have"] == lines


def test_an_nft_that_hangs_is_a_clear_error_not_a_traceback(nftnat, monkeypatch):
    import subprocess  # noqa: PLC0415

    from salt.exceptions import CommandExecutionError  # noqa: PLC0415

    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(nftnat.lvstun.command.subprocess, "run", hang)  # lvstun.command runs nft
    with pytest.raises(CommandExecutionError, match="did not finish in 30 s"):
        nftnat.check(SEED, "wan0")
