"""Isolated "test hosts" in Linux network namespaces, so browsers truly cannot reach each other.

Why: two headless Chromium pages on one machine always connect directly (host candidates on the
same interfaces), so a test of the relay fallback would never exercise the fallback. Putting each
browser into its own network namespace makes a direct call impossible at the IP level, while the
host (where signaling and the media relay run) stays reachable from every namespace.

Topology made by :func:`isolated_hosts` (``K`` is a free /24 picked per run)::

    host (root namespace)                            namespace cgt-<token>-<i>
    cgt-<token>-<i>h  10.213.K.1/24  <== veth ==>  cgt-<token>-<i>n  10.213.K.2/24
                                                    lo up, default route via 10.213.K.1

* A namespace reaches *every* address of the host (10.213.K.1, the other veths' 10.213.M.1,
  even eth0's address): a packet for a host address is local delivery, not forwarding.
* A namespace does not reach another namespace (10.213.M.2): that would be forwarding, and an
  iptables chain ``cgt-<token>`` hooked into FORWARD drops everything forwarded in or out of our
  veths (so nothing leaks to the outside either). ``net.ipv4.ip_forward`` is left as it is; when
  it is 0 (as on the development machines) the kernel never forwards anyway and the chain is the
  belt to those braces on machines where it is 1.
* IPv6 is switched off on our veths (both ends): no link-local addresses to gather as candidates
  and no IPv6 path to reason about; our chain is IPv4 only.
* DNS does not work in a namespace (the resolver is not reachable), and anything that looks a
  name up stalls until its own time-out: use IP addresses only (``http.server --bind`` stalls
  in ``getfqdn``).

Names carry a random token and subnets are picked under a lock file (``/run/lock``), so
concurrent runs (other checkouts, other sessions) do not collide. Everything is removed on exit,
also when the test failed, timed out or setup broke half-way: processes still inside a namespace
(a browser never closed) are killed by pid, then links, namespaces and the chain are deleted, and
the removal is verified (:func:`leftovers`; teardown raises if anything remains). Only a run
killed with SIGKILL leaves ``cgt-*`` namespaces, links and chains behind; they do not disturb
later runs (other names; subnets in use are skipped) and, when no run is in progress, go with::

    for ns in $(ip netns list | grep -o '^cgt-[0-9a-f]*-[0-9]*'); do ip netns del $ns; done
    for c in $(iptables -S | grep -o '^-N cgt-[0-9a-f]*' | cut -c4-); do
        iptables -D FORWARD -j $c; iptables -F $c; iptables -X $c; done

(deleting a namespace deletes its veth pair). The lock file ``cgt-subnets.lock`` stays, empty.

Use: the fixture ``netns_hosts`` (tests/conftest.py) yields an :class:`IsolatedHosts` with two
test hosts (:class:`NamespaceHost`); it skips where namespaces cannot be made (not root, no
``ip netns``, no CAP_SYS_ADMIN) and fails instead when ``CI`` is set. For another number of
hosts use ``with isolated_hosts_or_skip(n)`` (same policy) or :func:`isolated_hosts` itself.
tests/test_netns_isolation.py is the worked example::

    async def test_relay_fallback(netns_hosts: IsolatedHosts, tmp_path: Path) -> None:
        a, b = netns_hosts.hosts
        config = '[server]\\nhost = "0.0.0.0"\\n[matchmaking]\\nconnect_timeout_s = 4\\n'
        with chatguard_serve(tmp_path, config) as url:    # tests/test_web_client.py
            port = urlsplit(url).port
            async with (
                chromium_in(a, a.url(port)) as browser_a,  # Chromium inside namespace a
                chromium_in(b, b.url(port)) as browser_b,
            ):
                page_a = await (await browser_a.new_context()).new_page()
                await page_a.goto(a.url(port))  # http://10.213.K.1:PORT/, not 127.0.0.1
                ...  # same for b; Start both; expect data-route="relay", "connected", frames

What the relay fallback test needs:

* Signaling listens on 0.0.0.0 (``chatguard serve --host 0.0.0.0`` or ``[server] host``), and
  each page is loaded from its own gateway address. That origin is not localhost, so it is not a
  secure context over plain HTTP and ``navigator.mediaDevices`` is undefined ("Camera
  unavailable") unless Chromium gets ``--unsafely-treat-insecure-origin-as-secure=ORIGIN``;
  :func:`chromium_in` adds it for the origins it is given.
* The relay worker runs on the host, like signaling, and must listen where the namespaces reach
  it: 0.0.0.0 or each ``host.gateway``, never only 127.0.0.1 (in a namespace 127.0.0.1 is the
  namespace's own loopback). aioice gathers every host interface, so the relay offers 10.213.K.1
  for every K (each reachable from every namespace) and eth0's address (also reachable: local
  delivery); a browser offers only its own 10.213.K.2 (UDP, plus an active-TCP candidate), which
  the relay reaches over the connected veth route. The only path between the two browsers is the
  relay, so a call that connects between namespaces went through it.
* STUN/TURN servers off the machine are unreachable from a namespace (nothing is forwarded):
  keep ``[ice]`` empty or point it at host addresses.
* When no path exists, Chromium's ICE stays "checking" for ~15 s before "failed"; the client's
  own ``matchmaking.connect_timeout_s`` decides when a direct attempt is given up, so keep it
  small (2-4 s) to keep the test fast.
* Chromium takes ~0.8 s to start inside a namespace (as on the host); making two namespaces and
  removing them takes ~0.15 s each way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bench.chromium import CHROMIUM, FLAGS

PREFIX = "cgt-"
SUBNET_BASE = "10.213"
COMMAND_TIMEOUT_S = 10.0
"""Every `ip`/`iptables` call gets this long; they take milliseconds when the machine is sane."""
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
DISABLE_IPV6 = (
    "for f in /proc/sys/net/ipv6/conf/{interface}/disable_ipv6; "
    'do [ -e "$f" ] && echo 1 > "$f"; done; true'
)
"""Shell for one interface (host side) or all of a namespace's; a kernel without IPv6 is fine."""


class NetnsError(RuntimeError):
    """Setting up or tearing down the namespaces failed; the message has the command's stderr."""


def _run(argv: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run a setup command; failures raise with its stderr, since that says what is wrong.

    iptables is tried up to three times: with nf_tables a concurrent change by another user of
    the machine can make a transaction fail, and a failed one changed nothing.
    """
    attempts = 3 if argv[0] == "iptables" else 1
    for attempt in range(attempts):
        try:
            result = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise NetnsError(f"{' '.join(argv)}: no answer in {timeout_s} s") from None
        if result.returncode == 0:
            return result.stdout
        if attempt + 1 < attempts:
            time.sleep(0.2)
    raise NetnsError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")


def _iptables(*args: str) -> list[str]:
    """An iptables command line (filter table) that waits for the xtables lock, which is
    shared with every other user of iptables on the machine."""
    return ["iptables", "-w", "5", *args]


def forwarding_enabled() -> bool:
    """Whether the host forwards IPv4 at all. Read, never changed: with 0 the kernel drops
    forwarded packets before our chain sees them; with 1 our chain is what isolates."""
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


def dropped_packets(chain: str) -> int:
    """Packets our FORWARD chain has dropped so far (its rules' counters)."""
    listing = _run(_iptables("-L", chain, "-v", "-n", "-x"))
    return sum(int(line.split()[0]) for line in listing.splitlines()[2:] if line.strip())


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian packages iproute2, iptables)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed"
    try:
        _run(["ip", "netns", "list"])
        _run(_iptables("-S", "FORWARD"))
    except (NetnsError, OSError) as exc:
        return f"`ip netns` / iptables unusable: {exc}"
    return None


def _skip_or_fail(reason: str) -> NoReturn:
    """Skip on a developer's machine; in CI, fail loudly instead (the same policy as
    tests/browser.py for Chromium), so the isolation tests never vanish unnoticed."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must be able to run network-namespace tests: {reason}")
    pytest.skip(reason)


def require_netns() -> None:
    """Skip (fail in CI) where namespaces cannot be made: not root, tools missing."""
    reason = unavailable_reason()
    if reason is not None:
        _skip_or_fail(reason)


@dataclass(frozen=True)
class NamespaceHost:
    """One test host: a namespace with a veth link to the host and its own /24."""

    namespace: str
    subnet: int
    host_interface: str
    interface: str
    chromium: Path
    """Executable wrapper that runs /usr/bin/chromium inside this namespace (for Playwright)."""

    @property
    def address(self) -> str:
        """This test host's own address (its ICE host candidate)."""
        return f"{SUBNET_BASE}.{self.subnet}.2"

    @property
    def gateway(self) -> str:
        """The host's address on this link: where this test host reaches signaling and relay."""
        return f"{SUBNET_BASE}.{self.subnet}.1"

    def url(self, port: int, path: str = "/") -> str:
        """A URL on the host as seen from this namespace."""
        return f"http://{self.gateway}:{port}{path}"

    def command(self, *argv: str) -> list[str]:
        """`argv` prefixed so that it runs inside this namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def python(self, code: str, *args: str, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        """Run Python code (this interpreter, so the venv's packages) with `args` in the
        namespace; return its stdout. Raises :class:`NetnsError` if it fails or overruns."""
        return _run(self.command(sys.executable, "-c", code, *args), timeout_s)


@dataclass(frozen=True)
class IsolatedHosts:
    """What :func:`isolated_hosts` made; `hosts` are mutually unreachable."""

    token: str
    chain: str
    hosts: tuple[NamespaceHost, ...]


@contextmanager
def _subnet_lock() -> Iterator[None]:
    """Held while subnets are picked and their host-side addresses added: after that the
    addresses themselves say "taken" to every later run, so one lock file serves all."""
    fd = os.open(LOCK_DIR / f"{PREFIX}subnets.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NetnsError("another run holds the subnet lock too long") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def _free_subnets(count: int) -> list[int]:
    """`count` values of K whose 10.213.K.0/24 the host uses for nothing (call under the lock)."""
    in_use = _run(["ip", "-4", "-o", "addr", "show"]) + _run(["ip", "-4", "route", "show"])
    start = secrets.randbelow(254)
    free = []
    for offset in range(254):
        k = (start + offset) % 254 + 1
        if not re.search(rf"\b{re.escape(SUBNET_BASE)}\.{k}\.\d+\b", in_use):
            free.append(k)
            if len(free) == count:
                return free
    raise NetnsError(f"no {count} free {SUBNET_BASE}.K.0/24 subnets")


def _write_chromium_wrapper(directory: Path, namespace: str) -> Path:
    """Playwright starts `executable_path` with its own arguments and a pipe for the DevTools
    protocol; `exec` keeps one process (Playwright's kill reaches Chromium) and the pipe."""
    wrapper = directory / f"chromium-{namespace}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o700)
    return wrapper


def _alive(pid: int) -> bool:
    """Running (a zombie counts as ended: its parent, not us, has yet to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_in(namespace: str) -> list[int]:
    """The processes running in `namespace`."""
    return [int(pid) for pid in _run(["ip", "netns", "pids", namespace]).split()]


def _kill_processes_in(namespace: str) -> None:
    """Processes still inside one of our namespaces were started by this run (a browser whose
    test failed before closing it); end them by pid, or the namespace outlives its name."""
    try:
        pids = pids_in(namespace)
    except NetnsError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.05)
        if not pids:
            return


def leftovers(token: str = "") -> list[str]:
    """Namespaces, links and iptables chains with our prefix (and `token`, when given) that
    still exist; empty after a clean teardown."""
    mark = f"{PREFIX}{token}"
    found: list[str] = []
    for line in _run(["ip", "netns", "list"]).splitlines():
        if line.startswith(mark):
            found.append(f"netns {line.split()[0]}")
    for line in _run(["ip", "-o", "link", "show"]).splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(mark):
            found.append(f"link {name}")
    for line in _run(_iptables("-S")).splitlines():
        if mark in line:
            found.append(f"iptables {line}")
    return found


@contextmanager
def isolated_hosts(count: int = 2) -> Iterator[IsolatedHosts]:
    """Make `count` namespaces that reach the host but not each other; remove them on exit.

    Tests use :func:`isolated_hosts_or_skip` (or the ``netns_hosts`` fixture), which first
    checks that this machine can make namespaces at all.
    """
    if not 1 <= count <= 9:
        raise ValueError("1 to 9 test hosts")
    token = secrets.token_hex(3)[:5]  # interface names are at most 15 characters
    chain = f"{PREFIX}{token}"
    undo: list[list[str]] = []  # commands that remove what was made, run in reverse
    namespaces: list[str] = []
    with tempfile.TemporaryDirectory(prefix=chain) as tmp:
        try:
            hosts = []
            with _subnet_lock():
                for i, k in enumerate(_free_subnets(count), start=1):
                    ns, host_if, ns_if = f"{chain}-{i}", f"{chain}-{i}h", f"{chain}-{i}n"
                    _run(["ip", "netns", "add", ns])
                    namespaces.append(ns)
                    undo.append(["ip", "netns", "del", ns])
                    _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if])
                    undo.append(["ip", "link", "del", host_if])  # takes the peer with it
                    _run(["ip", "link", "set", ns_if, "netns", ns])
                    _run(["sh", "-c", DISABLE_IPV6.format(interface=host_if)])
                    _run(["ip", "addr", "add", f"{SUBNET_BASE}.{k}.1/24", "dev", host_if])
                    _run(["ip", "link", "set", host_if, "up"])
                    inside = ["ip", "-n", ns]
                    _run([*inside, "link", "set", "lo", "up"])
                    _run([*inside, "addr", "add", f"{SUBNET_BASE}.{k}.2/24", "dev", ns_if])
                    _run([*inside, "link", "set", ns_if, "up"])
                    _run([*inside, "route", "add", "default", "via", f"{SUBNET_BASE}.{k}.1"])
                    _run(
                        ["ip", "netns", "exec", ns, "sh", "-c", DISABLE_IPV6.format(interface="*")]
                    )
                    wrapper = _write_chromium_wrapper(Path(tmp), ns)
                    hosts.append(NamespaceHost(ns, k, host_if, ns_if, wrapper))
            _run(_iptables("-N", chain))
            undo.append(_iptables("-X", chain))
            undo.append(_iptables("-F", chain))
            for host in hosts:
                _run(_iptables("-A", chain, "-i", host.host_interface, "-j", "DROP"))
                _run(_iptables("-A", chain, "-o", host.host_interface, "-j", "DROP"))
            _run(_iptables("-I", "FORWARD", "-j", chain))
            undo.append(_iptables("-D", "FORWARD", "-j", chain))
            yield IsolatedHosts(token, chain, tuple(hosts))
        finally:
            errors = []
            for ns in namespaces:
                _kill_processes_in(ns)
            for argv in reversed(undo):
                try:
                    _run(argv)
                except NetnsError as exc:
                    errors.append(str(exc))
            remaining = leftovers(token)
            if remaining or errors:
                raise NetnsError(f"cleanup incomplete: {remaining} {errors}")


@contextmanager
def isolated_hosts_or_skip(count: int = 2) -> Iterator[IsolatedHosts]:
    """:func:`isolated_hosts` for tests: skip (fail in CI) when the machine cannot make them.

    Root is not always enough: a container without CAP_SYS_ADMIN passes :func:`require_netns`
    and fails at ``ip netns add`` (mount --make-shared /run/netns); that is a missing capability
    too, not a bug in the test.
    """
    require_netns()
    with contextlib.ExitStack() as stack:
        try:
            hosts = stack.enter_context(isolated_hosts(count))
        except NetnsError as exc:
            _skip_or_fail(f"cannot make network namespaces here: {exc}")
        yield hosts


@asynccontextmanager
async def chromium_in(
    host: NamespaceHost, *secure_origins: str, extra_args: Sequence[str] = ()
) -> AsyncIterator[Browser]:
    """Headless Chromium running inside `host`'s namespace, with the usual test flags.

    `secure_origins` (e.g. ``host.url(port)``) are treated as secure contexts so that pages
    served over plain HTTP from a non-localhost address may open the fake camera.
    """
    args = [*FLAGS, "--no-proxy-server", *extra_args]
    origins = [origin.rstrip("/") for origin in secure_origins]
    if origins:
        args.append("--unsafely-treat-insecure-origin-as-secure=" + ",".join(origins))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(host.chromium), headless=True, args=args, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_client(browser: Browser, host: NamespaceHost, port: int) -> Page:
    """The web client served on `port`, opened in a new context of `browser` (running in
    `host`), from the host address `host` reaches it at."""
    page: Page = await (await browser.new_context()).new_page()
    await page.goto(host.url(port), timeout=15_000)
    return page


def block_udp(host: NamespaceHost) -> None:
    """Drop every UDP packet into and out of `host`, as a school or office network that lets
    only TCP through. The rules live in the namespace's own tables and go with it."""
    for chain in ("INPUT", "OUTPUT"):
        _run(host.command(*_iptables("-A", chain, "-p", "udp", "-j", "DROP")))


def udp_blocked_hosts(hosts: IsolatedHosts) -> tuple[NamespaceHost, NamespaceHost]:
    """Both test hosts with UDP dropped, checked against an echo server on each: from the
    host, TCP still answers and UDP does not (the positive control is that TCP does)."""
    a, b = hosts.hosts
    for host in (a, b):
        with echo_server(host) as port:
            assert probe(None, host.address, port) == {"tcp": True, "udp": True}
            block_udp(host)
            result = probe(None, host.address, port)
        assert (result["tcp"], result["udp"]) == (True, False), result
    return a, b


PROBE = """
import json, socket, sys
address, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
result = {}
try:
    with socket.create_connection((address, port), timeout=timeout) as tcp:
        tcp.sendall(b"ping")
        result["tcp"] = tcp.recv(4) == b"ping"
except OSError as exc:
    result["tcp"] = False
    result["tcp_error"] = repr(exc)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
    udp.settimeout(timeout)
    try:
        udp.sendto(b"ping", (address, port))  # EPERM where this machine's own rules drop it
        result["udp"] = udp.recvfrom(16)[0] == b"ping"
    except OSError as exc:
        result["udp"] = False
        result["udp_error"] = repr(exc)
print(json.dumps(result))
"""

ECHO_SERVER = """
import select, socket, sys, time
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 0)); tcp.listen()
port = tcp.getsockname()[1]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", port))
print(port, flush=True)
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    ready, _, _ = select.select([tcp, udp], [], [], 0.2)
    if udp in ready:
        data, peer = udp.recvfrom(16); udp.sendto(data, peer)
    if tcp in ready:
        conn, _ = tcp.accept(); conn.settimeout(1)
        try:
            conn.sendall(conn.recv(4))
        except OSError:
            pass
        conn.close()
"""


def probe(
    source: NamespaceHost | None, address: str, port: int, timeout_s: float = 1.0
) -> dict[str, object]:
    """Can `source` (None: the host) reach `address`:`port` over TCP and UDP (an echo each)?"""
    argv = [sys.executable, "-c", PROBE, address, str(port), str(timeout_s)]
    if source is not None:
        argv = source.command(*argv)
    result: dict[str, object] = json.loads(_run(argv, timeout_s * 2 + COMMAND_TIMEOUT_S))
    return result


@contextmanager
def echo_server(where: NamespaceHost, lifetime_s: float = 60.0) -> Iterator[int]:
    """A TCP+UDP echo server on all of `where`'s addresses; yields its port."""
    with subprocess.Popen(
        where.command(sys.executable, "-c", ECHO_SERVER, str(lifetime_s)),
        stdout=subprocess.PIPE,
        text=True,
    ) as process:  # leaving the block closes the pipe
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], COMMAND_TIMEOUT_S)
            if not ready:
                raise NetnsError("echo server did not start")
            yield int(process.stdout.readline())
        finally:
            process.kill()
            process.wait(timeout=COMMAND_TIMEOUT_S)


GATHER_CANDIDATES_JS = """
async (timeoutMs) => {
  const pc = new RTCPeerConnection();
  const candidates = [];
  pc.onicecandidate = (event) => {
    if (event.candidate && event.candidate.candidate) candidates.push(event.candidate.candidate);
  };
  pc.createDataChannel("probe");
  const done = new Promise((resolve) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
    setTimeout(resolve, timeoutMs);
  });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") await done;
  pc.close();
  return candidates;
}
"""


async def local_candidates(page: Page, timeout_s: float = 5.0) -> list[str]:
    """The ICE candidates a fresh RTCPeerConnection on `page` gathers (no STUN/TURN servers).

    Bounded by `timeout_s`: with no usable interface Chromium never finishes gathering."""
    found = await page.evaluate(GATHER_CANDIDATES_JS, timeout_s * 1000)
    return [str(candidate) for candidate in found]


def candidate_addresses(candidates: Sequence[str]) -> set[str]:
    """The connection addresses (5th field) of `a=candidate` lines."""
    return {candidate.split()[4] for candidate in candidates if len(candidate.split()) > 4}


REMOTE_CANDIDATES_JS = """
async () => {
  const pc = window.chatguard && window.chatguard.pc;
  if (!pc) return [];
  const addresses = [];
  (await pc.getStats()).forEach((report) => {
    if (report.type === "remote-candidate") addresses.push(report.address);
  });
  return addresses;
}
"""


async def wait_for_remote_candidate(page: Page, address: str, timeout_s: float = 3.0) -> None:
    """Wait until the web client's current call knows `address` as a remote ICE candidate:
    the peers were told where the other is, so a call that still fails could not get there."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [str(a) for a in await page.evaluate(REMOTE_CANDIDATES_JS)]
        if address in found:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"remote candidates {found}, expected {address} among them")
        await asyncio.sleep(0.05)


@contextmanager
def one_to_one_nat(host: NamespaceHost) -> Iterator[str]:
    """Put `host` behind a simulated 1:1 NAT, as a cloud machine sits behind its public IP;
    yields that "public" address (an unused address of the host's own /24).

    In this machine's tables: UDP to the public address is DNATed to the host's address, UDP
    the host sends here is SNATed to the public address, and UDP to the host's own address
    that was not translated is dropped, so from this machine only the public address reaches
    it over UDP. This machine also takes UDP from the host only as replies to what it sent
    there (a stateful firewall, as in front of nearly every client): without that, a peer
    would learn the public address from the host's own checks (peer-reflexive) and connect
    whether or not the address was announced. TCP is left alone (the worker inside still
    dials signaling). Every rule carries a comment naming the namespace and is deleted on exit.
    """
    public = f"{SUBNET_BASE}.{host.subnet}.200"
    tag = ["-m", "comment", "--comment", host.namespace]
    rules = [
        ["-t", "nat", "OUTPUT", "-d", public, "-p", "udp", *tag, "-j", "DNAT",
         "--to-destination", host.address],
        ["-t", "nat", "INPUT", "-s", host.address, "-p", "udp", *tag, "-j", "SNAT",
         "--to-source", public],
        ["OUTPUT", "-d", host.address, "-p", "udp", "-m", "conntrack", "!", "--ctstate",
         "DNAT,SNAT", *tag, "-j", "DROP"],
        ["INPUT", "-s", host.address, "-p", "udp", "-m", "conntrack", "--ctstate", "NEW",
         *tag, "-j", "DROP"],
    ]  # fmt: skip
    added: list[list[str]] = []

    def command(action: str, rule: list[str]) -> list[str]:
        table, rest = (rule[:2], rule[2:]) if rule[0] == "-t" else ([], rule)
        return _iptables(*table, action, *rest)

    try:
        for rule in rules:
            _run(command("-A", rule))
            added.append(rule)
        yield public
    finally:
        for rule in reversed(added):
            _run(command("-D", rule))
