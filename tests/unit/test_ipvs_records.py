"""IPVS records as plain data: specs, flags, listing, ipvsadm-save round trips."""

import pytest

import lvstun.ipvs as rec


@pytest.mark.parametrize(
    "spec,key",
    [
        ("tcp:10.10.24.88:80", {"af": 4, "protocol": "tcp", "address": "10.10.24.88", "port": 80, "fwmark": None}),
        ("UDP:10.0.0.1:53", {"af": 4, "protocol": "udp", "address": "10.0.0.1", "port": 53, "fwmark": None}),
        ("sctp:[2001:db8::88]:9", {"af": 6, "protocol": "sctp", "address": "2001:db8::88", "port": 9, "fwmark": None}),
        ("fwmark:5", {"af": 4, "protocol": None, "address": None, "port": None, "fwmark": 5}),
        ("fwmark6:0x10", {"af": 6, "protocol": None, "address": None, "port": None, "fwmark": 16}),
    ],
)
def test_service_specs_parse_and_print_back(spec, key):
    assert rec.parse_service(spec) == key
    assert rec.parse_service(rec.service_spec(key)) == key


@pytest.mark.parametrize(
    "spec,message",
    [
        ("10.10.24.88:80", "protocol '10.10.24.88' is not one of"),
        ("tcp:10.10.24.888:80", "is not an IP address"),
        ("tcp:10.10.24.88:70000", "port 70000 is out of range"),
        ("tcp:10.10.24.88", "must be address:port"),
        ("tcp:2001:db8::1:80", "must be address:port ([address]:port for IPv6)"),
        ("fwmark:0", "fwmark must be 1 to 4294967295"),
        ("fwmark:x", "fwmark 'x' is not a number"),
        ("icmp:1.2.3.4:0", "protocol 'icmp' is not one of"),
        ("nothing", "must be PROTOCOL:ADDRESS:PORT or fwmark:N"),
    ],
)
def test_bad_service_specs_say_why(spec, message):
    with pytest.raises(rec.SpecError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        rec.parse_service(spec)


def test_scheduler_flags_by_name_and_alias():
    assert rec.sched_flags_value(["mh-port", "mh-fallback"]) == 0x18
    assert rec.sched_flags_names(0x18 | rec.SVC_F_HASHED | rec.SVC_F_PERSISTENT) == ["sched1", "sched2"]
    with pytest.raises(rec.SpecError, match="scheduler flag 'fast'"):
        rec.sched_flags_value(["fast"])


@pytest.mark.parametrize("weight", [-1, 65536, "3", True, 1.5])
def test_weights_are_checked(weight):
    with pytest.raises(rec.SpecError, match="weight"):
        rec.check_weight(weight)


SAVE = """\
-A -t 10.10.24.88:80 -s rr
-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i -w 1
-a -t 10.10.24.88:80 -r 10.10.24.22:80 -i -w 10
-A -u 10.10.24.89:53 -s mh -b sched1,sched2 -p 300
-a -u 10.10.24.89:53 -r 10.10.24.23:53 -i --tun-type gue --tun-port 6080 --tun-csum -w 0 -x 100 -y 10
-a -u 10.10.24.89:53 -r 10.10.24.24:53 -i --tun-type gre --tun-nocsum -w 1
-A -f 7 -s wlc
-a -f 7 -r 10.10.24.21:0 -g -w 3
"""


def test_ipvsadm_save_round_trip():
    services = rec.from_save(SAVE)
    assert [rec.service_spec(s) for s in services] == ["tcp:10.10.24.88:80", "udp:10.10.24.89:53", "fwmark:7"]
    gue = services[1]["destinations"][0]
    assert (gue["forward"], gue["tun_type"], gue["tun_port"], gue["weight"], gue["u_threshold"]) == (
        "tunnel", "gue", 6080, 0, 100)
    assert gue["tun_flags"] == ["csum"] and services[1]["destinations"][1]["tun_flags"] == []
    assert services[1]["persistent"] == 300 and services[1]["flags"] == ["sched1", "sched2"]
    assert rec.to_save(services) == SAVE
    # weight 10 is not weight 1 (the old Salt module's substring match confused them)
    assert [d["weight"] for d in services[0]["destinations"]] == [1, 10]


def test_a_tunnel_line_as_ipvsadm_save_prints_it_is_read_with_its_checksum_flag():
    """ipvsadm-save puts the tunnel's options after the weight, its checksum flag
    without a value (--tun-nocsum is the default, no flag in the kernel)."""
    text = ("-A -u 10.10.24.89:53 -s rr\n"
            "-a -u 10.10.24.89:53 -r 10.10.24.21:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum\n"
            "-a -u 10.10.24.89:53 -r 10.10.24.22:53 -i -w 2 --tun-type gre --tun-nocsum\n")
    first, second = rec.from_save(text)[0]["destinations"]
    assert (first["tun_type"], first["tun_port"], first["tun_flags"], first["weight"]) == ("gue", 6080, ["remcsum"], 1)
    assert (second["tun_type"], second["tun_flags"], second["weight"]) == ("gre", [], 2)


@pytest.mark.parametrize(
    "text,message",
    [
        ("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i", "line 1: server for tcp:10.0.0.1:80, which no earlier -A line adds"),
        ("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2 -i", "line 2: destination '10.0.0.2'"),
        ("-A -x 10.0.0.1:80", "line 1: no service"),
        ("-A -t 10.0.0.1:80 -s rr -b turbo", "line 1: scheduler flag 'turbo'"),
        ("-E -t 10.0.0.1:80", "line 1: unknown command '-E'"),
        ("-A -t 10.0.0.1:80 -s", "line 1: option -s needs a value"),
    ],
)
def test_bad_save_text_names_the_line(text, message):
    with pytest.raises(rec.SpecError) as err:
        rec.from_save(text)
    assert str(err.value).startswith(message)


def test_listing_looks_like_ipvsadm():
    services = rec.from_save(SAVE)
    for svc in services:
        for dest in svc["destinations"]:
            dest.update(active=2, inactive=5)
    text = rec.format_listing(services)
    assert "TCP  10.10.24.88:80 rr" in text
    assert "  -> 10.10.24.22:80" in text and "Tunnel  10     2          5" in text
    assert "UDP  10.10.24.89:53 mh (sched1,sched2) persistent 300" in text
    assert "FWM  7 wlc" in text and "Route   3" in text
