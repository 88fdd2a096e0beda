"""The CLI's answers when a service is not there: one line naming it, exit status 2, no traceback."""

import socket

from argus.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cameras_list_without_hbase_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ARGUS_PORT_HBASE_THRIFT", str(_closed_port()))
    assert main(["cameras", "list"]) == 2
    out = capsys.readouterr()
    assert "HBase is unreachable" in out.err and "Traceback" not in out.err + out.out
    assert "argus stack status" in out.err
