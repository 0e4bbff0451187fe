"""``salt-run lvs.status`` as tables (the ``lvs_status`` outputter), from the runner's data."""

from tests.unit.checkout import load

outputter = load("lvs_status_outputter", "_output", "lvs_status.py")

DATA = {
    "directors": {
        "director": {"state": "up", "answered": True, "active": 3, "inactive": 12, "inpkts": 4410, "inbytes": 301977},
        "director2": {"state": "drained", "answered": True, "active": 0, "inactive": 2, "inpkts": 8, "inbytes": 480},
    },
    "services": {
        "web": {"spec": "tcp:10.10.24.88:80", "backends": {
            "rs1": {"address": "10.10.24.21:80", "pillar_weight": 2, "health": "up", "held": [], "maintenance": False,
                    "sorry": False,
                    "live": {"director": {"weight": 2, "active": 2, "inactive": 7, "conns": 300, "inbytes": 20100},
                             "director2": {"weight": 2, "active": 0, "inactive": 1, "conns": 4, "inbytes": 240}}},
            "rs2": {"address": "10.10.24.22:80", "pillar_weight": 1, "health": "down", "held": ["web"],
                    "maintenance": True, "sorry": False, "path_down": ["director"],
                    "live": {"director": {"weight": 0, "active": 1, "inactive": 5, "conns": 90, "inbytes": 6000},
                             "director2": "missing"}},
        }},
    },
}


def test_the_status_reads_as_tables_with_a_column_group_per_director():
    lines = outputter.render(DATA).splitlines()
    assert lines[0] == "Directors"
    assert lines[1].split() == ["Name", "State", "ActiveConn", "InActConn", "InPkts", "InBytes"]
    assert lines[2].split() == ["director", "up", "3", "12", "4410", "301977"]
    assert lines[3].split() == ["director2", "drained", "0", "2", "8", "480"]
    assert lines[5] == "TCP  10.10.24.88:80  web"
    header = lines[6].split("  ")
    assert [h.strip() for h in header if h.strip()][:5] == ["-> Backend", "Address", "Pillar", "Health", "Maint"]
    assert "director W" in lines[6] and "director2 InBytes" in lines[6]
    assert lines[7].split() == ["rs1", "10.10.24.21:80", "2", "up", "-", "2", "2", "7", "300", "20100",
                                "2", "0", "1", "4", "240"]
    assert lines[8].split() == ["rs2", "10.10.24.22:80", "1", "down", "(held:", "web)", "(path", "down", "on",
                                "director)", "drained",
                                "0", "1", "5", "90", "6000", "missing"]
    # Columns line up: every row's cells start where the header's do.
    assert lines[7].index("10.10.24.21:80") == lines[6].index("Address")
    assert len({len(line) for line in lines[6:8]}) == 1


def test_each_site_is_printed_apart_under_its_name():
    text = outputter.output({"eu": DATA, "us": DATA})
    assert text.splitlines()[0] == "Site eu" and "\n\nSite us\nDirectors\n" in text
    assert text.count("Directors") == 2
    assert outputter.output({"eu": {"error": "invalid LVS site pillar: ..."}}) == \
        "Site eu\nERROR: invalid LVS site pillar: ..."


def test_other_data_is_printed_as_it_is():
    assert outputter.output("an error") == "an error"
    assert outputter.output({"eu": "an error"}) == "{'eu': 'an error'}"
