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


# /proc/net/tcp6 lines, cut after the state (the rest is not read)
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 880000FD000000000000000088000000:0050 0E0210200000000000000000A2000000:BC6A 01 00000000:00000000
   2: 880000FD000000000000000089000000:0050 0E0210200000000000000000A2000000:BC6B 06 00000000:00000000
"""


def test_ipv6_connections_count_too(tmp_path):
    (tmp_path / "tcp").write_text(PROC_NET_TCP)
    (tmp_path / "tcp6").write_text(PROC_NET_TCP6)
    # fd00:88::88 established; :: listens; fd00:88::89 in TIME_WAIT
    assert lvstun.tun.addresses_in_use([str(tmp_path / "tcp"), str(tmp_path / "tcp6")]) == {
        "10.10.24.88", "10.10.24.21", "fd00:88::88"}


def test_the_kernels_own_table_names_a_connected_ipv6_socket():
    # /proc/net/tcp6 as this kernel writes it: a connection over ::1 is found as ::1.
    import socket  # noqa: PLC0415

    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as err:  # pragma: no cover: a host without IPv6 on lo
        import pytest  # noqa: PLC0415

        pytest.skip(f"no IPv6 loopback here: {err}")
    with server, socket.create_connection(server.getsockname()[:2]):
        accepted, _ = server.accept()
        with accepted:
            assert "::1" in lvstun.tun.addresses_in_use()
