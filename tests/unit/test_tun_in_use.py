"""Which addresses carry TCP connections (a stale VIP stays while one is open)."""

import lvstun.tun

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 58180A0A:0050 01150270:BC6A 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 59180A0A:0050 01150270:BC6B 06 00000000:00000000 00:00000000 00000000     0        0 0 3
   3: 15180A0A:9C40 01180A0A:0016 08 00000000:00000000 00:00000000 00000000     0        0 4 1
"""


def test_established_and_closing_sockets_count_listen_and_time_wait_do_not(tmp_path):
    path = tmp_path / "tcp"
    path.write_text(PROC_NET_TCP)
    # 10.10.24.88 established, 10.10.24.21 in CLOSE_WAIT; 0.0.0.0 listens; .89 in TIME_WAIT
    assert lvstun.tun.addresses_in_use(str(path)) == {"10.10.24.88", "10.10.24.21"}


def test_no_proc_file_means_nothing_in_use(tmp_path):
    assert lvstun.tun.addresses_in_use(str(tmp_path / "missing")) == set()
