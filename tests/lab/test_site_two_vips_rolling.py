"""Rolling the two directors of the two_vips site (``salt-run lvs.rolling
targets=director,director2``) under load: one at a time out of the router's group, its
role applied again, its table whole, back in the group; no request fails and every
long-lived download through either director gets every byte."""

from lvs_lab import load

BOTH = ("director", "director2")


def test_rolling_both_directors_under_load_fails_no_request_and_breaks_no_download(two_vips):
    lab = two_vips
    lab.wait_director_group(BOTH, 60)
    longs = load.start_downloads(lab, 10, 60)
    steady = load.start_steady(lab, 60, 0.1)
    result = lab.salt_run("lvs.rolling", "targets=director,director2", "action=lvs.director", "timeout=120",
                          timeout=600)
    print(f"rolling of both directors (lvs.director): {result}")
    assert result["done"] == list(BOTH), result
    assert [r for r in steady.result(timeout=400) if not r[2]] == []
    assert [d for d in longs.result(timeout=400) if not d["ok"]] == []
    lab.wait_director_group(BOTH, 60)
