"""Names with spaces, `+`, `%` and non-ASCII through listings, and keys over the S3 limit of 1,024 bytes."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from fsgateway.store.client import decode_key
from tests.support.s3 import user_keys

NAMES = ["TOYOTA TRUCK 8.2.2", "a+b", "100% done", "pc%41", "ünï cödé ✓", "sp ace+plus%25"]


@pytest.mark.parametrize(("raw", "key"), [
    ("a+b.txt", "a b.txt"), ("a%20b.txt", "a b.txt"), ("p%2Bq", "p+q"), ("pc%2541", "pc%41"),
    ("%C3%A9+%C3%BC", "é ü"), ("%FF", "\udcff"), ("plain/key.bin", "plain/key.bin"), ("ünï ✓", "ünï ✓"), ("", ""),
    ("a%2Fb%2Fc.txt", "a/b/c.txt"), ("d%2F%252F%2f", "d/%2F/"), ("%C3%2F", "\udcc3/"),
])
def test_listing_keys_are_form_decoded(raw, key):
    """SeaweedFS lists a space as `+`, RGW as `%20`; both send a literal `+` as `%2B`."""
    assert decode_key(raw) == key


def test_names_from_another_tool_list_and_open(mount, s3):
    for name in NAMES:
        s3.put_object(Bucket=mount.bucket, Key=f"{name}/{name}.txt", Body=name.encode())
        s3.put_object(Bucket=mount.bucket, Key=name, Body=b"top " + name.encode())
    top = sorted(os.listdir(mount.path))
    assert top == sorted(NAMES)  # each directory shadows the file of the same name
    for name in NAMES:
        assert os.listdir(mount.path / name) == [f"{name}.txt"]
        assert (mount.path / name / f"{name}.txt").read_bytes() == name.encode()


def test_cp_r_mv_rm_rf_of_a_tree_with_such_names(mount, s3, tmp_path):
    src = tmp_path / "src"
    for name in NAMES:
        (src / name / "sub dir").mkdir(parents=True)
        (src / name / "sub dir" / f"{name}.bin").write_bytes(name.encode() * 3)
        (src / name / f"x {name}").write_bytes(b"x")
    subprocess.run(["cp", "-r", str(src), str(mount.path / "tree one")], check=True)
    expected = ["tree one/", *(k for n in NAMES for k in (
        f"tree one/{n}/", f"tree one/{n}/sub dir/", f"tree one/{n}/sub dir/{n}.bin", f"tree one/{n}/x {n}"))]
    assert sorted(user_keys(s3, mount.bucket)) == sorted(expected)
    subprocess.run(["mv", str(mount.path / "tree one"), str(mount.path / "tree+two")], check=True)
    for name in NAMES:
        assert (mount.path / "tree+two" / name / "sub dir" / f"{name}.bin").read_bytes() == name.encode() * 3
    assert not (mount.path / "tree one").exists()
    subprocess.run(["rm", "-rf", str(mount.path / "tree+two")], check=True)
    assert not (mount.path / "tree+two").exists()
    assert user_keys(s3, mount.bucket) == []


def test_key_over_1024_bytes_is_enametoolong_at_once(mount, s3):
    deep = mount.path
    parts = []
    while len("/".join(parts).encode()) < 1024 - 250:
        parts.append(f"{len(parts):03d}" + "d" * 200)
        deep = deep / parts[-1]
    os.makedirs(deep)
    used = len("/".join(parts).encode()) + 1  # the key of a name in `deep` starts with this
    room = 1024 - used
    (deep / ("f" * room)).write_bytes(b"fits")  # exactly 1,024 bytes of key
    assert s3.get_object(Bucket=mount.bucket, Key="/".join(parts) + "/" + "f" * room)["Body"].read() == b"fits"
    for op in (lambda p: p.write_bytes(b"x"), os.mkdir, os.stat, lambda p: os.symlink("t", p),
               lambda p: os.rename(deep / ("f" * room), p)):
        with pytest.raises(OSError) as e:
            op(deep / ("g" * (room + 1)))
        assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:  # the directory's own marker key would be 1,025 bytes
        os.mkdir(deep / ("h" * room))
    assert e.value.errno == errno.ENAMETOOLONG
    (mount.path / "short").mkdir()
    with pytest.raises(OSError) as e:  # a directory whose deepest key would get too long
        os.rename(mount.path / parts[0], mount.path / "short" / ("r" * 200))
    assert e.value.errno == errno.ENAMETOOLONG
    assert (deep / ("f" * room)).read_bytes() == b"fits"
