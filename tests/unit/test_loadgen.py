"""rap.loadgen against a real HTTP backend on loopback: both loops, think time, bounds, errors."""

from __future__ import annotations

import socket
import threading

import pytest

from rap import loadgen
from rap.localcluster import backend


@pytest.fixture(scope="module")
def url():
    server = backend.serve("127.0.0.1", 0, backend.State("web-1-1", "node-1", 0.0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_loop_answers_name_the_pod_and_node(url):
    samples = loadgen.run(url, "closed", concurrency=3, duration=0.5, max_requests=60)
    assert 0 < len(samples) <= 60
    assert all(s.status == 200 and s.pod == "web-1-1" and s.node == "node-1" for s in samples)
    assert all(s.latency_ms > 0 and s.start >= 0 for s in samples)


def test_closed_loop_stops_at_max_requests(url):
    samples = loadgen.run(url, "closed", concurrency=4, duration=30, max_requests=25)
    assert len(samples) == 25


def test_think_time_spaces_each_workers_requests(url):
    # Each worker pauses 100 ms after every answer, so in 0.5 s one worker can
    # start at most 5 requests (at 0, >=0.1, >=0.2, >=0.3, >=0.4 s), whatever
    # the machine's speed; without think time it sends far more.
    paced = loadgen.run(url, "closed", concurrency=1, duration=0.5, max_requests=1000, think_ms=100)
    assert 1 <= len(paced) <= 5
    starts = [s.start for s in paced]
    assert all(b - a >= 0.1 for a, b in zip(starts, starts[1:]))
    free = loadgen.run(url, "closed", concurrency=1, duration=0.5, max_requests=1000)
    assert len(free) > 2 * len(paced)


def test_open_loop_sends_rate_times_duration_on_schedule(url):
    samples = loadgen.run(url, "open", rate=40, duration=0.5, max_requests=1000)
    assert len(samples) == 20
    assert [round(s.start, 6) for s in samples] == [round(i / 40, 6) for i in range(20)]
    assert all(s.status == 200 for s in samples)


def test_a_refused_connection_is_a_sample_with_an_error_not_a_crash():
    samples = loadgen.run(f"http://127.0.0.1:{_closed_port()}/", "closed", concurrency=1, duration=0.2,
                          max_requests=3, timeout=1)
    assert len(samples) == 3
    assert all(s.status == 0 and "ConnectionRefused" in s.error for s in samples)


def test_a_connection_closed_without_a_byte_is_an_empty_response_sample():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)

        def close_each():
            for _ in range(2):
                conn, _ = srv.accept()
                conn.recv(4096)  # the request read, so that close sends a FIN, not a reset
                conn.close()

        threading.Thread(target=close_each, daemon=True).start()
        samples = loadgen.run(f"http://127.0.0.1:{srv.getsockname()[1]}/", "closed", concurrency=1, duration=1,
                              max_requests=2, timeout=2)
    assert [(s.status, s.error.split(":")[0]) for s in samples] == [(0, "EmptyResponse")] * 2


@pytest.mark.parametrize("argv, words", [
    (["--think-ms", "-1"], "--think-ms"),
    (["--think-ms", str(loadgen.MAX_THINK_MS + 1)], "--think-ms"),
    (["--duration", "0"], "--duration"),
    (["--max-requests", "0"], "--max-requests"),
    (["--concurrency", "0"], "--concurrency"),
])
def test_bad_options_name_the_option(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        loadgen.main(["--url", "http://127.0.0.1:1/", *argv])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_cli_writes_json_lines(url, tmp_path):
    out = tmp_path / "s.jsonl"
    assert loadgen.main(["--url", url, "--mode", "closed", "--concurrency", "1", "--think-ms", "20",
                         "--duration", "0.3", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert 1 <= len(lines) <= 15 and all('"status": 200' in line for line in lines)
