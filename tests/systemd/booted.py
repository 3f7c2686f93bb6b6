"""A real systemd, booted as PID 1 of a new PID and mount namespace, running the shipped units.

`systemd-analyze verify` cannot see what a unit's sandboxing does to a FUSE
mount; only a booted systemd can. The machine running the tests is not booted
with systemd (PID 1 is a VM agent), so each test boots its own: `unshare
--pid --fork --mount` runs /lib/systemd/systemd --system with only the
shipped units in /etc/systemd/system (every unit sysinit.target and
sockets.target would pull in is masked, except journald), private /run and
/var, and the test's own /etc/fsgateway and /usr/local/bin. Its /srv is a bind
of a *shared* host directory, so a mount made at /srv/firmware inside
propagates to the host: the test checks from the host side what developers
would see. systemd runs in its own cgroup, killed with the namespace at the end.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import uuid
from importlib import metadata
from pathlib import Path

import pytest

from tests.support.mount import is_mounted
from tests.support.process import REPO, wait_for

UNITS = ["fsgateway@.service", "fsgateway-checker.service", "fsgateway-syncd.service"]
KEEP = {"systemd-journald.service", "systemd-journald.socket", "systemd-journald-dev-log.socket"}
EXTRA_MASKS = ["systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
               "systemd-udevd-control.socket", "systemd-udevd-kernel.socket", "systemd-tmpfiles-setup.service",
               "systemd-remount-fs.service", "getty.target", "systemd-networkd-wait-online.service"]
CGROUP_ROOTS = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
SRC_INSIDE = "/var/lib/fsgateway-test/src"  # this checkout, as the units see it
SITE_INSIDE = "/var/lib/fsgateway-test/site"  # the test venv's packages, as the units see them


def q(path: Path) -> str:
    return shlex.quote(str(path))


def available() -> str | None:
    """Why a systemd cannot be booted here, or None."""
    for path in ("/lib/systemd/systemd", shutil.which("unshare") or "unshare", shutil.which("nsenter") or "nsenter"):
        if not os.path.exists(path):
            return f"{path} is missing (Debian packages systemd, util-linux)"
    if os.geteuid() != 0:
        return "booting systemd in a namespace needs root"
    return None


class BootedSystemd:
    def __init__(self, tmp: Path, target_wants: list[str]) -> None:
        self.tmp = tmp
        self.srv = tmp / "srv"  # the host side of the namespace's /srv
        self.var = tmp / "var"
        self.etc = tmp / "etc"
        self.units = tmp / "units"
        self.bin = tmp / "bin"
        for d in (self.srv, self.var, self.etc, self.units, self.bin):
            d.mkdir(parents=True, exist_ok=True)
        self.target_wants = target_wants
        self.cgroup = f"fsgateway-test-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen | None = None
        self.pid = 0  # systemd's PID as the host sees it

    # ------------------------------------------------------------------ set-up
    def install(self) -> None:
        for name in UNITS:
            shutil.copy(REPO / "systemd" / name, self.units / name)
        masks = set(EXTRA_MASKS)
        for target in ("sysinit", "sockets", "basic", "timers", "paths", "local-fs", "multi-user"):
            wants = Path(f"/lib/systemd/system/{target}.target.wants")
            masks |= {p.name for p in wants.iterdir()} if wants.is_dir() else set()
        for name in masks - KEEP:
            (self.units / name).symlink_to("/dev/null")
        (self.units / "fsgateway-test.target").write_text(
            "[Unit]\nDescription=the units under test\nWants=" + " ".join(self.target_wants) + "\n")
        self.install_commands()

    def install_commands(self) -> None:
        """/usr/local/bin/COMMAND as `make install` links it, from a venv the sandboxed units can read.

        The test venv's interpreter may live under /root (pyenv), which ProtectHome= hides from the
        checker and syncd; so the namespace gets a venv of the system python3 at /var/lib/fsgateway-test
        that imports this checkout and the test venv's packages (same Python minor version).
        """
        inside = Path("/var/lib/fsgateway-test/venv")
        venv = self.var / inside.relative_to("/var")
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
        site = venv / f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
        # The checkout and the test venv's packages are bound in at boot (`boot`): where they really are (/tmp,
        # /root, /home) may be hidden from the units by PrivateTmp= or ProtectHome=.
        (site / "fsgateway-test.pth").write_text(f"{SRC_INSIDE}\n{SITE_INSIDE}\n")
        for ep in metadata.distribution("fsgateway").entry_points.select(group="console_scripts"):
            module, func = ep.value.split(":")
            script = venv / "bin" / ep.name
            script.write_text(f"#!{inside}/bin/python\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
            script.chmod(0o755)
            (self.bin / ep.name).symlink_to(inside / "bin" / ep.name)

    def boot(self) -> None:
        # The host side of /srv: a shared mount, so that mounts made under it in the namespace come back out.
        subprocess.run(["mount", "--bind", str(self.srv), str(self.srv)], check=True)
        subprocess.run(["mount", "--make-shared", str(self.srv)], check=True)
        script = "\n".join([
            "set -e",
            *[f"if [ -d {root} ]; then mkdir -p {root}/{self.cgroup} && echo $$ > {root}/{self.cgroup}/cgroup.procs; fi"
              for root in CGROUP_ROOTS],
            # Nothing made in here may reach the host (whose / may be shared, as on a systemd host): every
            # mount is made private in this namespace, except the shared /srv bind, which is the point.
            f"findmnt -rno TARGET | while read -r t; do [ \"$t\" = {q(self.srv)} ] ||"
            " mount --make-private \"$t\" 2>/dev/null || true; done",
            # /etc: an overlay, so that /etc/fsgateway exists in the namespace only
            f"mkdir -p {q(self.tmp / 'etc-work')} && mount -t overlay overlay"
            f" -o lowerdir=/etc,upperdir={q(self.etc)},workdir={q(self.tmp / 'etc-work')} /etc",
            f"mount --bind {q(self.units)} /etc/systemd/system",
            f"mount --bind {q(self.bin)} /usr/local/bin",
            f"mount --bind {q(self.var)} /var",
            f"mkdir -p {SRC_INSIDE} {SITE_INSIDE}",
            f"mount --bind {q(REPO)} {SRC_INSIDE}",
            f"mount --bind {q(sysconfig.get_paths()['purelib'])} {SITE_INSIDE}",
            f"mount --bind {q(self.srv)} /srv",
            "mount -t tmpfs tmpfs /run",
            "exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            " /lib/systemd/systemd --system --unit=fsgateway-test.target --log-target=journal --show-status=no",
        ])
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--propagation", "unchanged",
                                      "--mount-proc", "--kill-child", "sh", "-c", script],
                                     stdout=open(self.tmp / "boot.log", "ab"), stderr=subprocess.STDOUT)

        def systemd_pid() -> int:
            if self.proc.poll() is not None:
                pytest.fail(f"the namespace exited: {(self.tmp / 'boot.log').read_text()[-2000:]}")
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids and os.path.realpath(f"/proc/{pids[0]}/exe").endswith("/systemd"):
                return int(pids[0])
            return 0

        self.pid = wait_for(systemd_pid, 30, "systemd to start in the namespace")
        wait_for(lambda: self.systemctl("is-system-running", check=False).stdout.strip() in
                 ("running", "degraded"), 60, "systemd to finish booting")

    def shutdown(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid or self.proc.pid, 9)  # PID 1 of the namespace: the kernel kills the rest
            self.proc.wait(timeout=60)
        mnt = self.srv / "firmware"
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False, capture_output=True)
        if is_mounted(self.srv):
            subprocess.run(["umount", "-l", str(self.srv)], check=False, capture_output=True)
        for root in CGROUP_ROOTS:  # empty once every process is gone; children first
            base = Path(root, self.cgroup)
            for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()

    # ------------------------------------------------------------------ inside
    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", *args], capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(args)}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("systemctl", "--no-pager", *args, check=check)

    def prop(self, unit: str, name: str) -> str:
        return self.systemctl("show", "-P", name, unit).stdout.strip()

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit, check=False).stdout
