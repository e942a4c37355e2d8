"""Relay benchmark: the measuring arithmetic, and a tiny smoke run. Never asserts timings."""

from __future__ import annotations

import json
import math
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest

from bench.chat_load import STARTUP_GRACE_S, media_seconds
from bench.media_peer import (
    FrameTracker,
    abs_send_time,
    extension_value,
    latency_from_abs_send_time,
    next_keyframe,
    requests_keyframe,
)
from bench.procfs import (
    cpu_pressure_us_from_psi,
    cpu_seconds_from_stat,
    percent_of_core,
    rss_kib_from_status,
    run_delay_s_from_schedstat,
)
from bench.relay_cases import check_transport, transports
from bench.relay_clip import read_barcode, stamp_barcode, vp8_picture_id
from bench.results import RelayResult
from bench.service import ServiceError, endpoints_from_target, free_port_run
from chatguard import cli
from signaling.route_policy import Route
from tests.support.server import RunningServer, make_config, run_server


def test_cpu_seconds_reads_utime_and_stime_after_the_command_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    stat = "4242 (python (relay) x) S 1 2 3 4 5 6 7 8 9 10 250 150 7 7 20 0 3"
    assert cpu_seconds_from_stat(stat, 100) == pytest.approx(4.0)
    assert percent_of_core(4.0, 4.5, 2.0) == pytest.approx(25.0)
    assert math.isnan(percent_of_core(1.0, 2.0, 0.0))


def test_rss_is_read_from_status() -> None:
    status = "Name:\tpython\nVmPeak:\t  9000 kB\nVmRSS:\t  51234 kB\nThreads:\t3\n"
    assert rss_kib_from_status(status) == 51234
    with pytest.raises(ValueError):
        rss_kib_from_status("Name:\tx\n")


def test_cpu_pressure_is_read_from_psi() -> None:
    psi = (
        "some avg10=69.64 avg60=53.58 avg300=33.70 total=372617454\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    assert cpu_pressure_us_from_psi(psi) == 372617454
    assert run_delay_s_from_schedstat("310073393 3131923000 45\n") == pytest.approx(3.131923)
    with pytest.raises(ValueError):
        cpu_pressure_us_from_psi("full avg10=0.00 total=0\n")


def test_frame_tracker_counts_only_gapless_frames() -> None:
    t = FrameTracker()
    # first frame: its start may have been missed, not counted
    assert not t.on_packet(65534, False)
    assert not t.on_packet(65535, True)
    # a whole frame across the sequence number wrap
    assert not t.on_packet(0, False)
    assert t.on_packet(1, True)
    # a frame with a lost packet (seq 3)
    assert not t.on_packet(2, False)
    assert not t.on_packet(4, True)
    # the next one is whole again
    assert t.on_packet(5, True)
    assert (t.frames, t.incomplete) == (2, 2)


def test_picture_id_is_read_from_the_vp8_descriptor() -> None:
    short = bytes([0x90, 0x80, 0x05]) + b"vp8"  # X, I; 7-bit picture id 5
    long = bytes([0x90, 0x80, 0x80 | 0x01, 0x02]) + b"vp8"  # 15-bit picture id 258
    assert vp8_picture_id(short, 0) == 5
    assert vp8_picture_id(long, 0) == 258
    assert vp8_picture_id(bytes([0x10, 0x00, 0x05]), 0) is None  # no extension byte


def _rtp_with_send_time(ext_id: int, value: bytes, other_first: bool = False) -> bytes:
    elements = (bytes([0x10, 0x7F]) if other_first else b"") + bytes([ext_id << 4 | 2]) + value
    elements += bytes(-len(elements) % 4)
    header = struct.pack("!BBHII", 0x90, 0x80 | 96, 7, 9000, 0x1234)
    return header + struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements + b"payload"


def test_latency_comes_from_the_send_time_carried_in_the_packet() -> None:
    sent = 1234.567890
    packet = _rtp_with_send_time(3, abs_send_time(sent))
    value = extension_value(packet, 3)
    assert value is not None and len(value) == 3
    latency = latency_from_abs_send_time(int.from_bytes(value, "big"), sent + 0.0042)
    assert latency == pytest.approx(0.0042, abs=1e-5)  # 6.18 fixed point: 3.8 µs steps
    # found behind another element, absent under another id or without extensions
    assert extension_value(_rtp_with_send_time(3, value, other_first=True), 3) == value
    assert extension_value(packet, 4) is None
    assert extension_value(struct.pack("!BBHII", 0x80, 96, 7, 9000, 1) + bytes(20), 3) is None
    truncated = struct.pack("!BBHIIHH", 0x90, 96, 7, 9000, 1, 0xBEDE, 5) + bytes(4)
    assert extension_value(truncated, 3) is None


def test_send_time_latency_survives_the_64_second_wrap() -> None:
    sent = 64.0 * 1000 - 0.001  # just before a wrap
    value = int.from_bytes(abs_send_time(sent), "big")
    assert latency_from_abs_send_time(value, sent + 0.003) == pytest.approx(0.003, abs=1e-5)


def test_keyframe_requests_are_found_in_compound_rtcp() -> None:
    receiver_report = bytes([0x80, 201, 0, 1]) + bytes(4)
    pli = bytes([0x81, 206, 0, 2]) + bytes(8)
    fir = bytes([0x84, 206, 0, 4]) + bytes(16)
    remb = bytes([0x8F, 206, 0, 2]) + bytes(8)
    assert requests_keyframe(receiver_report + pli)
    assert requests_keyframe(receiver_report + fir)
    assert not requests_keyframe(receiver_report + remb)
    assert next_keyframe(0, 60, 120) == 0 and next_keyframe(1, 60, 120) == 60
    assert next_keyframe(100, 60, 120) == 0  # wraps at the clip's end


def test_call_time_counts_from_first_frame_or_after_the_grace() -> None:
    # a call paired at 10 s, first frame at 10.5 s: counted from 10.5 within the window
    assert media_seconds(10.0, 12.0, 10.0, 10.5) == pytest.approx(1.5)
    # no frame at all: counted from the end of the grace, so a stalled call shows as 0 fps
    assert media_seconds(10.0, 20.0, 10.0, None) == pytest.approx(10.0 - STARTUP_GRACE_S)
    assert media_seconds(10.0, 12.0, 10.0, None) == 0.0
    # a window that starts mid-call counts from its own start; no call, no time
    assert media_seconds(15.0, 16.0, 10.0, 10.5) == pytest.approx(1.0)
    assert media_seconds(15.0, 16.0, None, None) == 0.0


def test_target_urls_name_the_client_socket_and_stats() -> None:
    for url in ("http://relay.example:8080", "ws://relay.example:8080/ws"):
        endpoints = endpoints_from_target(url)
        assert endpoints.ws_url == "ws://relay.example:8080/ws"
        assert endpoints.stats_url == "http://relay.example:9090/stats"
        assert endpoints.ready_url == "http://relay.example:8080/readyz"
        assert not endpoints.is_local
    assert endpoints_from_target("https://chat.example").ws_url == "wss://chat.example/ws"
    admin = endpoints_from_target("http://relay.example:8080", "http://10.0.0.5:9100/")
    assert admin.stats_url == "http://10.0.0.5:9100/stats"
    assert endpoints_from_target("http://127.0.0.1:9").is_local
    with pytest.raises(ValueError, match="--target"):
        endpoints_from_target("relay.example:8080")


def test_a_run_of_free_ports_is_free() -> None:
    first = free_port_run(3)
    for port in range(first, first + 3):
        with socket.socket() as probe:
            probe.bind(("0.0.0.0", port))


def test_barcode_round_trip() -> None:
    img = np.full((480, 640, 3), 90, dtype=np.uint8)
    for value in (0, 1, 77, 255):
        stamp_barcode(img, value)
        assert read_barcode(img[:, :, 0]) == value


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@pytest.mark.timeout(240)
def test_smoke_run_measures_the_service_and_the_naive_relay_and_writes_json(
    tmp_path: Path,
) -> None:
    """Two pairs through a `chatguard serve` it starts, Next pressed inside the run, audio."""
    out = tmp_path / "relay.json"
    args = ["--pairs", "2", "--naive-pairs", "1", "--duration", "6", "--warmup", "1"]
    args += ["--clip-seconds", "2", "--next-after", "1.5:2.5", "--micro", "--json", str(out)]
    assert cli.main(["bench", "relay", *args]) == 0
    result = json.loads(out.read_text())
    msgspec.json.decode(out.read_bytes(), type=RelayResult)  # what it wrote is its schema
    assert result["versions"]["aiortc"].startswith("1.16")
    assert result["clip"]["bitrate_bps"] > 0 and result["clip"]["audio"]
    assert result["micro_hub_us_per_packet"] > 0
    assert result["micro_hub_without_uplink_estimate_us_per_packet"] > 0
    assert result["micro_uplink_estimate_us_per_packet"] > 0
    forward, naive = result["cases"]
    assert (forward["relay"], naive["relay"]) == ("forward", "naive")
    for case in (forward, naive):
        assert case["delivered_fps"]["streams"] >= 2 and case["delivered_fps"]["mean"] > 0
        assert case["direct_fps"]["mean"] > 0
        latency = case["latency_ms"]
        assert latency["relayed"]["count"] > 0 and latency["direct"]["count"] > 0
        assert latency["relayed"]["p50_ms"] > 0 and latency["added"]["p99_ms"] is not None
        assert case["relay_cpu_percent_of_core"] > 0 and case["relay_cpu_percent_per_stream"] > 0
        assert case["relay_rss_kib"]["loaded"] > 0 and case["relay_runqueue_wait_percent"] >= 0
        assert "memory_per_session_kib" in case and case["loadgen_srtp_errors"] == 0
    assert forward["peers_connected"] == "4/4" and naive["peers_connected"] == "4/4"
    # random chat: pairs pressed Next and met again, on the relay route, and media flowed
    assert forward["routes"] == {"relay": forward["calls"]["started"]}
    assert forward["calls"]["nexts"] >= 1 and forward["calls"]["started"] > 2
    assert forward["switch_ms"]["count"] >= 1 and forward["errors"] == []
    packets = forward["packets"]["relayed"]
    assert packets["sent"] > 0 and packets["audio_sent"] > 0 and packets["audio_packets"] > 0
    assert forward["packet_loss"]["relayed"]["video"] < 0.5
    assert forward["relay_cpu_measured_by"] == "/proc"
    assert forward["service_stats"]["relay_workers"][0]["pid"] > 0
    assert naive["packet_loss"]["relayed"]["video"] is None


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@pytest.mark.timeout(120)
def test_transport_both_carries_frames_over_udp_and_over_tcp_legs_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One pair over UDP, then over ICE-TCP, through a `chatguard serve` it starts."""
    out = tmp_path / "relay.json"
    # 3 s: a stream's rate is judged over >= 1 s of call time inside whole 1 s report windows
    args = ["--transport", "both", "--pairs", "1", "--duration", "3", "--warmup", "0.5"]
    args += ["--no-naive", "--next-after", "off", "--clip-seconds", "1", "--json", str(out)]
    assert cli.main(["bench", "relay", *args]) == 0
    udp, tcp = json.loads(out.read_text())["cases"]
    assert (udp["transport"], tcp["transport"]) == ("udp", "tcp")
    # the legs really were TCP: every user's nominated ICE pair (checked by the run, too)
    assert udp["legs_by_transport"] == {"udp": 2} and tcp["legs_by_transport"] == {"tcp": 2}
    for case in (udp, tcp):
        assert case["peers_connected"] == "2/2" and case["errors"] == []
        assert case["delivered_fps"]["streams"] == 2 and case["delivered_fps"]["mean"] > 0
        assert case["latency_ms"]["relayed"]["count"] > 0 and case["loadgen_srtp_errors"] == 0
        assert case["relay_cpu_percent_per_stream"] > 0
    printed = capsys.readouterr().out
    assert "ICE over UDP and over TCP, same loads" in printed
    assert "forward tcp" in printed and "forward udp" in printed


def test_legs_on_another_transport_than_asked_are_an_error() -> None:
    check_transport("tcp", {"tcp": 4})
    with pytest.raises(ServiceError, match=r"asked for tcp legs.*ice_tcp_port"):
        check_transport("tcp", {"tcp": 3, "udp": 1})
    assert transports("both") == ("udp", "tcp") and transports("tcp") == ("tcp",)


def test_both_transports_cannot_be_searched(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "relay", "--search", "--transport", "both"]) == 2
    assert "--search measures one transport" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
def test_an_unreachable_target_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--target", "http://127.0.0.1:9", "--connect-timeout", "1", "--pairs", "1"]
    assert cli.main(["bench", "relay", *args, "--no-naive", "--json", "/dev/null"]) == 1
    err = capsys.readouterr().err
    assert "chatguard bench relay: ws://127.0.0.1:9/ws is not reachable within 1 s" in err


@pytest.fixture
def relay_deployment() -> Iterator[RunningServer]:
    """A running service (real uvicorn, one relay worker process) the bench did not start."""
    yield from run_server(make_config(relay={"workers": 1}), Route.RELAY)


@pytest.mark.slow
@pytest.mark.exclusive  # a benchmark: never two at once on this machine
@pytest.mark.timeout(120)
def test_target_mode_drives_a_running_deployment_and_reads_its_stats(
    relay_deployment: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "relay.json"
    target = f"http://{relay_deployment.host}:{relay_deployment.port}"
    args = ["--target", target, "--admin", relay_deployment.admin_url]
    args += ["--pairs", "1", "--duration", "3", "--warmup", "0.5"]
    args += ["--no-naive", "--next-after", "off", "--clip-seconds", "1", "--json", str(out)]
    assert cli.main(["bench", "relay", *args]) == 0
    (case,) = json.loads(out.read_text())["cases"]
    assert case["relay_cpu_measured_by"] == "/stats" and case["relay_cpu_percent_of_core"] >= 0
    assert case["relay_rss_kib"]["loaded"] > 0
    assert case["delivered_fps"]["streams"] == 2 and case["delivered_fps"]["min"] > 20
    assert case["peers_connected"] == "2/2" and case["errors"] == []
    assert case["service_stats"]["relay_workers"][0]["legs"] >= 0
