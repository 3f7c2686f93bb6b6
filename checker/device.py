"""`fsgateway-device`: a simulated device. TUF (python-tuf's ngclient) over plain HTTP, as through a CDN.

It trusts only the root metadata it was provisioned with, refreshes
timestamp → snapshot → targets (rejecting expired, rolled-back or badly
signed metadata), reads its model's release index (itself a TUF target),
picks the newest release for its hardware revision and channel, and
downloads it through TUF (length and SHA-256 verified). A release whose
counter is not above the installed one is refused: no rollback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from urllib.parse import quote

from tqdm import tqdm
from tuf.api.exceptions import DownloadError, RepositoryError
from tuf.ngclient import Updater
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from fsgateway.daemon import commandline, lifecycle, progress, validation
from fsgateway.daemon.config import ConfigError


def fail(message: str) -> int:
    return lifecycle.fail("fsgateway-device", message)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsgateway-device", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commandline.add_version(p, "fsgateway-device")
    p.add_argument("--url", required=True, help="base URL of the published tree, e.g. http://cdn.example/bucket/")
    p.add_argument("--root", required=True, help="the root.json the device was provisioned with")
    p.add_argument("--model", required=True)
    p.add_argument("--hw", required=True, help="this device's hardware revision")
    p.add_argument("--channel", default="stable")
    p.add_argument("--state-dir", required=True, help="metadata cache, installed.json, downloaded firmware")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("-P", "--progress", dest="progress", action="store_true", default=None,
                       help="show the firmware download's progress on stderr (default: when stderr is a terminal)")
    shown.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    return p


def newest(index: dict, hw: str, channel: str) -> dict | None:
    candidates = [r for r in index.get("releases", []) if hw in r["hw_revisions"] and r["channel"] == channel]
    return max(candidates, key=lambda r: r["release_counter"], default=None)


class QuotingFetcher(Urllib3Fetcher):
    """Quotes target paths: python-tuf puts them in the URL as they are, and a payload name may hold `?`, `#`,
    `%` or a space, which would cut or change the URL (the server then answers 404 or another object)."""

    def __init__(self, targets_base: str) -> None:
        super().__init__()
        self.targets_base = targets_base

    def _fetch(self, url: str) -> Iterator[bytes]:
        if url.startswith(self.targets_base):
            url = self.targets_base + quote(url[len(self.targets_base):], safe="/")
        return super()._fetch(url)


class CountingFetcher(QuotingFetcher):
    """The quoting fetcher, also counting the bytes it yields into `bar` while one is set."""

    bar: tqdm | None = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        for chunk in super()._fetch(url):
            if self.bar is not None:
                self.bar.update(len(chunk))
            yield chunk


def update(args: argparse.Namespace) -> dict:
    base = args.url.rstrip("/") + "/"
    meta_dir = os.path.join(args.state_dir, "metadata")
    target_dir = os.path.join(args.state_dir, "targets")
    os.makedirs(meta_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    bootstrap = None  # after the first run: the cached root, which follows root rotations
    if not os.path.exists(os.path.join(meta_dir, "root.json")):
        with open(args.root, "rb") as f:
            bootstrap = f.read()
    fetcher = CountingFetcher(base + "releases/")
    updater = Updater(meta_dir, base + "metadata/", target_dir, base + "releases/", fetcher, bootstrap=bootstrap)
    updater.refresh()
    index_info = updater.get_targetinfo(f"{args.model}/index.json")
    if index_info is None:
        return {"result": "no_release", "model": args.model}
    with open(updater.download_target(index_info), "rb") as f:
        index = json.load(f)
    choice = newest(index, args.hw, args.channel)
    if choice is None:
        return {"result": "no_release", "model": args.model, "hw": args.hw}
    info = updater.get_targetinfo(choice["target"])
    custom = (info.custom if info else None) or {}
    if info is None or custom.get("release_counter") != choice["release_counter"] or args.hw not in custom.get(
            "hw_revisions", []):
        raise RepositoryError(f"index entry {choice['target']} disagrees with the signed targets metadata")
    installed_path = os.path.join(args.state_dir, "installed.json")
    installed = {}
    if os.path.exists(installed_path):
        with open(installed_path) as f:
            installed = json.load(f)
    if installed and custom["release_counter"] <= installed["release_counter"]:
        result = "up_to_date" if custom["release_counter"] == installed["release_counter"] else "rollback_refused"
        return {"result": result, "installed": installed, "offered": custom}
    path = updater.find_cached_target(info)
    if path is None:
        with progress.bar(choice["target"], info.length, "B", progress.wanted(args.progress, sys.stderr)) as bar:
            fetcher.bar = bar
            path = updater.download_target(info)
            fetcher.bar = None
    installed = {**custom, "path": path, "sha256": info.hashes["sha256"], "length": info.length}
    with open(installed_path + ".tmp", "w") as f:
        json.dump(installed, f)
    os.replace(installed_path + ".tmp", installed_path)
    return {"result": "updated", "installed": installed}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        validation.check_endpoint(args.url, "--url")
        validation.check_file(args.root, "--root")
    except ConfigError as exc:
        return fail(str(exc))
    try:
        result = update(args)
    except (RepositoryError, DownloadError) as exc:
        return fail(f"update refused: {type(exc).__name__}: {exc}")
    except OSError as exc:
        return fail(str(exc))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
